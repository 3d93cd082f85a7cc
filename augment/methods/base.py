"""What every augmentation method provides, and the registry that finds methods by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..errors import ConfigError
from ..record import Record, stable_hash


class Method(Protocol):
    """Turns seed records into candidate records.

    ``generate`` returns, for each seed in ``batch``, up to ``n`` candidates. A candidate that failed
    to come out (the method returned its input, or nothing) is returned too, with a ``rejection`` of
    stage ``generate``: nothing is dropped silently.
    """

    name: str
    backend: str
    model: str | None
    model_revision: str | None

    def params(self) -> dict[str, Any]: ...

    def setup(self, seeds: Sequence[Record], language: str) -> None: ...

    def generate(self, batch: Sequence[Record], field: str, n: int, run_seed: int) -> list[Record]: ...


MethodFactory = Callable[[str, dict[str, Any]], Method]
_REGISTRY: dict[str, MethodFactory] = {}


def register(name: str, factory: MethodFactory) -> None:
    if name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"method names are lower-case snake_case, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"method {name!r} is registered twice")
    _REGISTRY[name] = factory


def available_methods() -> list[str]:
    return sorted(_REGISTRY)


def build_method(name: str, params: dict[str, Any]) -> Method:
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown method {name!r}{hint}; available: {', '.join(available_methods())}")
    return _REGISTRY[name](name, params)


def candidate_seed(run_seed: int, method: str, parent_id: str, index: int) -> int:
    """The random seed of one candidate: independent of batch size and batch order."""
    return int(stable_hash(run_seed, method, parent_id, index, length=8), 16)
