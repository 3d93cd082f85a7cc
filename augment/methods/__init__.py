"""Augmentation methods, found by name. Importing this package registers the built-in ones.

A method is one file: a config dataclass and a class registered with ``@register_method`` (see
:mod:`augment.methods.base` for the contract and a small example)."""

from __future__ import annotations

from . import contextual as _contextual  # noqa: F401  (registers contextual)
from . import lexical as _lexical  # noqa: F401  (registers swap, delete, insert, ...)
from . import pseudo_label as _pseudo_label  # noqa: F401  (registers pseudo_label)
from . import rewrite as _rewrite  # noqa: F401  (registers backtranslate, paraphrase)
from . import self_instruct as _self_instruct  # noqa: F401  (registers self_instruct)
from .base import (
    Method,
    Outcome,
    PoolLabeller,
    SeedMethod,
    available_methods,
    build_method,
    candidate_seed,
    register_method,
)

__all__ = [
    "Method",
    "Outcome",
    "PoolLabeller",
    "SeedMethod",
    "available_methods",
    "build_method",
    "candidate_seed",
    "register_method",
]
