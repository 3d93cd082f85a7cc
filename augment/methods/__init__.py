"""Augmentation methods, found by name. Importing this package registers the built-in ones."""

from __future__ import annotations

from . import contextual as _contextual  # noqa: F401  (registers contextual)
from . import lexical as _lexical  # noqa: F401  (registers swap, delete, insert, ...)
from . import pseudo_label as _pseudo_label  # noqa: F401  (registers pseudo_label)
from . import rewrite as _rewrite  # noqa: F401  (registers backtranslate, paraphrase)
from . import self_instruct as _self_instruct  # noqa: F401  (registers self_instruct)
from .base import Method, available_methods, build_method, register

__all__ = ["Method", "available_methods", "build_method", "register"]
