"""A trained model, in memory right after training or reloaded from its folder, behind one interface.

``Predictor.load(out)`` reads ``out/manifest.json`` (task, method, labels, backbone) and hands the
folder to the method's recipe (:mod:`finetune.recipes`), which rebuilds the backbone and applies the
saved adapter (or the embedding head, on the saved body for ``setfit``); ``predict`` / ``score`` /
``generate`` then run the recipe's code that scored the test set at the end of training, so the
metrics reproduce exactly. :func:`predict_file` is ``augment predict``: a saved model on a file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from augment.config import DataConfig
from augment.errors import ConfigError
from augment.record import CLASSIFICATION, INSTRUCTION

from .data import Examples, read_examples
from .recipes import Recipe, recipe_for

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
METRICS = "metrics.json"


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The manifest of a folder written by ``augment finetune``, checked."""
    mpath = Path(out) / MANIFEST
    if not mpath.exists():
        raise ConfigError(f"{out}: not a model folder written by `augment finetune` (no {MANIFEST})")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{mpath}: malformed JSON ({exc.msg})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "finetune":
        raise ConfigError(f"{mpath}: not a finetune manifest")
    return manifest


@dataclass
class Predictor:
    """A trained model and what its recipe needs to use it."""

    task: str
    method: str
    labels: list[str] = field(default_factory=list)
    model: Any = None  # peft model (the PEFT recipes)
    tokenizer: Any = None
    head: Any = None  # EmbeddingHead (embedding and setfit recipes)
    max_length: int = 128

    @property
    def recipe(self) -> Recipe:
        return recipe_for(self.task, self.method)

    @classmethod
    def load(cls, out: str | Path, *, manifest: dict[str, Any] | None = None) -> Predictor:
        """The model saved in ``out`` (``manifest``: its manifest, when already read)."""
        out = Path(out)
        manifest = manifest if manifest is not None else read_manifest(out)
        return recipe_for(manifest["task"], manifest["method"]).load(out, manifest)

    # -- classification ---------------------------------------------------------------------------
    def logits(self, examples: Examples) -> np.ndarray:
        if self.task != CLASSIFICATION:
            raise ConfigError("logits are for classification models")
        return self.recipe.logits(self, examples)

    def predict(self, examples: Examples) -> list[dict[str, Any]]:
        """One dict per row: id, predicted label, its probability, and the gold label if known."""
        if self.task != CLASSIFICATION:
            raise ConfigError("use generate() for instruction models")
        return self.recipe.predict(self, examples)

    def score(self, examples: Examples) -> dict[str, Any]:
        """Metrics on labelled rows: accuracy and macro-F1 (classification), response loss (SFT)."""
        return self.recipe.score(self, examples)

    # -- instruction ------------------------------------------------------------------------------
    def generate(self, examples: Examples, *, max_new_tokens: int = 128) -> list[dict[str, Any]]:
        if self.task != INSTRUCTION:
            raise ConfigError("generate() is for instruction models")
        return self.recipe.predict(self, examples, max_new_tokens=max_new_tokens)


# -- augment predict --------------------------------------------------------------------------------
@dataclass
class PredictResult:
    """What ``augment predict`` found: the rows it predicted, and the metrics when the file has labels
    (or outputs), with the test metrics recorded at training time when the file is that run's test."""

    examples: Examples
    task: str
    rows: list[dict[str, Any]] | None  # labels (classification) or generated answers; None: none made
    metrics: dict[str, Any] | None = None
    recorded: dict[str, Any] | None = None

    @property
    def reproduces(self) -> bool | None:
        """Whether the metrics equal the ones recorded at training time (None: nothing to compare)."""
        if self.metrics is None or self.recorded is None:
            return None
        return all(self.recorded.get(k) == self.metrics.get(k) for k in self.recorded)


def predict_file(
    model_dir: str | Path,
    data: str | Path,
    *,
    columns: DataConfig | None = None,
    generate: bool = False,
    max_new_tokens: int = 128,
) -> PredictResult:
    """Reload the model saved in ``model_dir`` and run it on ``data``: labels for a classifier, greedy
    answers for an instruction model when ``generate``; metrics when every row has a label (output)."""
    manifest = read_manifest(model_dir)
    predictor = Predictor.load(model_dir, manifest=manifest)
    examples = read_examples(data, columns, task=predictor.task, require_labels=False)
    if predictor.task == CLASSIFICATION:
        labelled = all(r.label is not None for r in examples.rows)
    else:
        labelled = all(r.fields.get("output") for r in examples.rows)
    metrics = predictor.score(examples) if labelled else None
    rows = None
    if predictor.task == CLASSIFICATION or generate:
        rows = predictor.recipe.predict(predictor, examples, max_new_tokens=max_new_tokens)
    recorded = None
    test = ((manifest.get("data") or {}).get("test") or {}).get("path")
    if metrics is not None and test and Path(test).resolve() == Path(data).resolve():
        recorded = (manifest.get("metrics") or {}).get("test")
    return PredictResult(examples, predictor.task, rows, metrics, recorded)
