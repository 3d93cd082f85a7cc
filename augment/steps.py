"""The registry of steps: every augmentation method and every filter, found by name.

A step file declares a config dataclass (each field with ``metadata["help"]``; range checks in
``__post_init__`` raising :class:`ConfigError` with the field name first) and registers
``name -> (config class, step class)``, as peft's ``register_peft_method`` does::

    @dataclass
    class ShoutConfig:
        times: int = field(default=1, metadata={"help": "how many exclamation marks"})

    @register_method("shout", ShoutConfig, summary="appends exclamation marks")
    class Shout(SeedMethod): ...

The config file's ``methods.params.<name>`` and ``-P name.key=value`` are validated against the
config class (types, unknown keys with close-match hints, ranges); ``augment list`` prints every step
with its parameters, defaults and help from the same metadata.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

KINDS = ("method", "filter")


@dataclass(frozen=True)
class StepSpec:
    """One registered step: its kind, name, typed config and the class (or factory) that builds it."""

    kind: str
    name: str
    config: type
    factory: Callable[..., Any]  # factory(name, config) -> step
    summary: str = ""

    def parameters(self) -> list[dict[str, Any]]:
        """Each config field: name, type, default and help (what `augment list` prints)."""
        rows = []
        for f in dataclasses.fields(self.config):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = f.default_factory()  # type: ignore[misc]
            else:
                default = None
            rows.append(
                {
                    "name": f.name,
                    "type": f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)),
                    "default": default,
                    "help": f.metadata.get("help", ""),
                }
            )
        return rows


_REGISTRY: dict[tuple[str, str], StepSpec] = {}


def _register(kind: str, name: str, config: type, summary: str) -> Callable[[Any], Any]:
    if name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"step names are lower-case snake_case, got {name!r}")
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{kind} {name!r}: the config must be a dataclass, got {config!r}")

    def decorator(factory: Any) -> Any:
        if (kind, name) in _REGISTRY:
            raise ValueError(f"{kind} {name!r} is registered twice")
        _REGISTRY[(kind, name)] = StepSpec(kind, name, config, factory, summary)
        return factory

    return decorator


def register_method(name: str, config: type, *, summary: str = "") -> Callable[[Any], Any]:
    """Class decorator (or call with a factory): registers an augmentation method."""
    return _register("method", name, config, summary)


def register_filter(name: str, config: type, *, summary: str = "") -> Callable[[Any], Any]:
    """Class decorator (or call with a factory): registers a filter."""
    return _register("filter", name, config, summary)


def _load_builtins(kind: str) -> None:
    """Import the package of a kind's built-in steps (importing registers them)."""
    import importlib

    importlib.import_module(f"augment.{kind}s")


def specs(kind: str) -> list[StepSpec]:
    """Every registered step of a kind, by name."""
    _load_builtins(kind)
    return sorted((s for (k, _), s in _REGISTRY.items() if k == kind), key=lambda s: s.name)


def names(kind: str) -> list[str]:
    return [s.name for s in specs(kind)]


def spec(kind: str, name: str) -> StepSpec:
    """The spec of ``name``; an unknown name is a ConfigError with a close-match hint."""
    _load_builtins(kind)
    if (kind, name) not in _REGISTRY:
        known = names(kind)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown {kind} {name!r}{hint}; available: {', '.join(known)}")
    return _REGISTRY[(kind, name)]


def build_config(kind: str, name: str, params: dict[str, Any] | None, where: str | None = None) -> Any:
    """The step's config from a plain mapping, validated: types and unknown keys by the config
    loader, ranges by the dataclass. Messages name the key, e.g. ``methods.params.swap.aug_p``."""
    from .config import _build

    s = spec(kind, name)
    where = where or (f"methods.params.{name}" if kind == "method" else f"filters.{name}")
    known = [f.name for f in dataclasses.fields(s.config)]
    for key in params or {}:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listed = ", ".join(known) or "none"
            raise ConfigError(f"{where}: unknown parameter {key!r}{hint}; {name} has: {listed}")
    try:
        return _build(s.config, dict(params or {}), f"{where}.")
    except ConfigError as exc:
        msg = str(exc)
        if msg.startswith(where) or msg.startswith("unknown config key"):
            raise
        raise ConfigError(f"{where}.{msg}") from None


def build(kind: str, name: str, params: dict[str, Any] | Any | None = None) -> Any:
    """Build a step from a mapping (validated) or from an already built config."""
    s = spec(kind, name)
    config = params if isinstance(params, s.config) else build_config(kind, name, params)
    return s.factory(name, config)
