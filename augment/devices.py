"""Where a model runs: CUDA when there is a GPU, then Apple's MPS, else the CPU."""

from __future__ import annotations

from .errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(requested: str | None = "auto") -> str:
    """``auto`` (or None) picks the fastest device present; an explicit one is checked, not guessed."""
    import torch

    req = (requested or "auto").lower()
    if req == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    base = req.split(":")[0]
    if base not in DEVICES:
        raise ConfigError(f"unknown device {requested!r}; use one of {', '.join(DEVICES)}")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r} was asked for, but torch sees no CUDA GPU")
    if base == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {requested!r} was asked for, but MPS is not available")
    return req
