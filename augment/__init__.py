"""augment-engine: turn a small labelled dataset into a larger, filtered training set with lineage.

Heavy libraries (torch, transformers, nlpaug, sentence-transformers) are imported only when a step
needs them, so importing this package and running ``augment --help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AugmentError",
    "ConfigError",
    "DataError",
    "BackendError",
    "ExpandConfig",
    "ExpandResult",
    "Record",
    "expand",
    "load_records",
    "load_embedder",
    "__version__",
]

_LAZY = {
    "AugmentError": ".errors",
    "ConfigError": ".errors",
    "DataError": ".errors",
    "BackendError": ".errors",
    "ExpandConfig": ".config",
    "ExpandResult": ".pipeline",
    "Record": ".record",
    "expand": ".pipeline",
    "load_records": ".io",
    "load_embedder": ".embedders",
}

if TYPE_CHECKING:  # pragma: no cover
    from .config import ExpandConfig
    from .embedders import load_embedder
    from .errors import AugmentError, BackendError, ConfigError, DataError
    from .io import load_records
    from .pipeline import ExpandResult, expand
    from .record import Record


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'augment' has no attribute {name!r}")
