"""Where the engine keeps what it builds once: WordNet's copy, GGUF dequantisations, CTranslate2
conversions, cached LLM responses and the packaged model weights (``models/``, see
:mod:`augment.packaged` and :mod:`augment.packaged_gguf`). The one definition of the cache root:
import :func:`cache_dir` from here."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$AUGMENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/augment-engine`` (default ``~/.cache/augment-engine``)."""
    root = os.environ.get("AUGMENT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "augment-engine"
    )
    return Path(root)
