"""Embedding caches: :class:`CachedEmbedder` embeds each text once per run (in memory); the
persistent store below embeds it once per model, across runs.

Pool labelling, the filters, the recipe's proxy learner and ``augment finetune --method embedding``
all embed the same texts again and again (a rerun on the same pool, or `augment evaluate` after
`augment expand`). With a 300M-parameter embedder on a CPU that is minutes per run; reading a vector
back is microseconds. Vectors live in one SQLite file per model configuration under
``<cache>/embeddings/``, keyed by the SHA-1 of the text, stored as float32 bytes.

The file name is derived from everything that changes a vector: the model id (which names the
local path of a packaged copy), its revision, the prompt and the maximum sequence length. Set
``AUGMENT_EMBED_CACHE=0`` to turn the cache off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CHUNK = 1024  # texts per embedding call (and between two writes to the store)


def chunks(texts: Sequence[str]) -> list[list[str]]:
    """The distinct ``texts`` in the fixed order and calls every embedding goes through: by length,
    then text (little padding per call), ``CHUNK`` per call. A vector's last bits depend on the texts
    it was embedded beside (padding, matrix shapes), so the local run, the Ray executor's actors and
    the on-disk store all embed the same texts in the same calls, and get the same bytes."""
    distinct = sorted(dict.fromkeys(texts), key=lambda t: (len(t), t))
    return [distinct[i : i + CHUNK] for i in range(0, len(distinct), CHUNK)]


def _progress(total: int):
    """A bar (or log lines off a terminal) when there is more than one chunk to embed."""
    import contextlib

    from .progress import progress

    if total <= CHUNK:
        return contextlib.nullcontext(_Quiet())
    return progress(total, "embed", "text")


class _Quiet:
    def update(self, n: int = 1) -> None:
        pass


def enabled() -> bool:
    return os.environ.get("AUGMENT_EMBED_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def model_key(embedder: Any) -> str:
    """What identifies the vectors an embedder gives (not its Python object)."""
    parts = [
        str(getattr(embedder, "model_id", "?")),
        str(getattr(embedder, "revision", None)),
        str(getattr(embedder, "prompt_name", None)),
        str(getattr(embedder, "max_seq_length", None) or getattr(getattr(embedder, "_model", None), "max_seq_length", None)),
    ]
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def _text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class EmbeddingStore:
    """text -> float32 vector for one model configuration, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vec (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
        self._db.commit()

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        keys = {_text_key(t): t for t in texts}
        items = list(keys.items())
        with self._lock:
            for i in range(0, len(items), 500):
                chunk = items[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT k, v FROM vec WHERE k IN ({marks})", [k for k, _ in chunk])
                for k, v in rows:
                    out[keys[bytes(k)]] = np.frombuffer(v, dtype=np.float32).copy()
        return out

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        rows = [
            (_text_key(t), np.ascontiguousarray(v, dtype=np.float32).tobytes())
            for t, v in zip(texts, vectors, strict=True)
        ]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO vec (k, v) VALUES (?, ?)", rows)
            self._db.commit()


class PersistentEmbedder:
    """Wraps an embedder: vectors come from the store when known, and new ones are added to it."""

    def __init__(self, inner: Any, store: EmbeddingStore) -> None:
        self.inner = inner
        self.store = store
        for name in ("model_id", "revision", "prompt_name"):
            setattr(self, name, getattr(inner, name, None))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return self.inner.encode([])
        found = self.store.get_many(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            # the fixed calls of chunks(), stored chunk by chunk so an interrupted run keeps what it
            # embedded
            with _progress(len(missing)) as bar:
                for part in chunks(missing):
                    vecs = np.asarray(self.inner.encode(part), dtype=np.float32)
                    self.store.put_many(part, vecs)
                    found.update(zip(part, vecs, strict=True))
                    bar.update(len(part))
        return np.stack([found[t] for t in texts])


def persistent(embedder: Any, root: Path | None = None) -> Any:
    """``embedder`` backed by the on-disk store (or unchanged when the cache is turned off)."""
    if not enabled():
        return embedder
    if root is None:
        from .cache import cache_dir

        root = cache_dir()
    try:
        store = EmbeddingStore(root / "embeddings" / f"{model_key(embedder)}.sqlite")
    except (OSError, sqlite3.Error) as exc:  # a read-only cache folder: run without it
        logger.warning("embedding cache unavailable (%s); embedding without it", exc)
        return embedder
    return PersistentEmbedder(embedder, store)


class CachedEmbedder:
    """Embeds each distinct text once per run (pseudo-labelling and the filters share vectors).
    Embedders read at most ``io.LONG_TEXT`` characters of a text (a ``long_texts`` data note)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.revision = inner.revision
        self._cache: dict[str, Any] = {}

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct texts of ``texts`` that have no vector yet, in first-seen order."""
        return list(dict.fromkeys(t for t in texts if t not in self._cache))

    def add(self, texts: Sequence[str], vectors: Any) -> None:
        """Vectors embedded elsewhere by the same model (the Ray executor's embedder actors)."""
        self._cache.update(zip(texts, vectors, strict=True))

    def encode(self, texts: Sequence[str]):
        import numpy as np

        missing = self.missing(texts)
        for part in chunks(missing):  # the same calls as the Ray executor's actors make
            self._cache.update(zip(part, self.inner.encode(part), strict=True))
        if not texts:
            return self.inner.encode([])
        return np.stack([self._cache[t] for t in texts])
