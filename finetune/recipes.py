"""The fine-tuning recipes behind one protocol, and the registry that finds one by task and method.

A :class:`Recipe` trains one kind of model and then owns it: its defaults (the model for a language,
the hyper-parameters for a data size), ``fit`` (train in memory), ``save`` (into the output folder;
what it returns is the recipe's section of ``manifest.json``), ``load`` (back from that folder), and
``predict`` / ``score`` (labels and metrics, or generated answers and the response loss). The
orchestrators (:mod:`finetune.train`, :class:`finetune.predict.Predictor`, :mod:`finetune.evaluate`)
ask the registry for the recipe and never switch on method names.

Built in, one module each (each registers itself when imported):

* ``classifier`` — :mod:`finetune.classifier`: PEFT sequence classification (lora, ia3, prompt);
* ``sft`` — :mod:`finetune.sft`: PEFT instruction tuning (lora, ia3, prefix, prompt);
* ``embedding`` — :mod:`finetune.embedding`: frozen sentence embeddings + a logistic-regression head;
* ``setfit`` — :mod:`finetune.setfit`: the embedder tuned on pairs first, then the same head.

A new recipe is one module with a class that implements the protocol and calls :func:`register`,
plus its name in :data:`BUILTIN` (and its method in :data:`finetune.config.METHODS`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from augment.classifiers import softmax
from augment.errors import ConfigError
from augment.record import CLASSIFICATION

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig
    from .data import Examples
    from .predict import Predictor
    from .train import Plan

BUILTIN = ("classifier", "sft", "embedding", "setfit")  # modules of finetune/, in lookup order


@dataclass
class Fitted:
    """A model trained in memory, as a recipe's ``fit`` returns it."""

    predictor: Predictor
    plan: Plan
    model_info: dict[str, Any]  # the manifest's "model": spec, path, description
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    is_main: bool = True  # False on the other ranks of a distributed run
    trainer: Any = None


@runtime_checkable
class Recipe(Protocol):
    """How one kind of model is trained, saved, reloaded and used."""

    name: str  # e.g. "classifier"; also the registry key
    task: str  # "classification" or "instruction"
    methods: tuple[str, ...]  # the --method values it trains
    manifest_key: str  # its section of manifest.json ("head", "sft", "embedding")

    def default_model(self, method: str, language: str) -> str:
        """The model spec ``--model auto`` stands for."""
        ...

    def defaults(self, config: TrainConfig, *, n_rows: int) -> TrainConfig:
        """``config`` (task and method set) with the unset hyper-parameters filled in."""
        ...

    def fit(
        self, train: Examples, dev: Examples | None, plan: Plan, work_dir: Path, weights: Sequence[float]
    ) -> Fitted:
        """Train in memory (checkpoints, if any, under ``work_dir``)."""
        ...

    def save(self, predictor: Predictor, out: Path) -> dict[str, Any]:
        """Write the trained parts into ``out``; returns the manifest section."""
        ...

    def load(self, out: Path, manifest: dict[str, Any]) -> Predictor:
        """Rebuild the model that :meth:`save` wrote, from ``out`` and its manifest."""
        ...

    def predict(self, predictor: Predictor, examples: Examples, **options: Any) -> list[dict[str, Any]]:
        """One dict per row: the predicted label (classification) or the generated answer."""
        ...

    def score(self, predictor: Predictor, examples: Examples) -> dict[str, Any]:
        """Metrics on rows with labels (or outputs)."""
        ...


_REGISTRY: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add a recipe under its name (a second registration of a name replaces the first)."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"{recipe!r} does not implement the Recipe protocol")
    _REGISTRY[recipe.name] = recipe
    return recipe


def recipes() -> dict[str, Recipe]:
    """Every registered recipe by name, the built-in ones first."""
    for module in BUILTIN:
        importlib.import_module(f"{__package__}.{module}")
    # in BUILTIN order whichever module was imported first, then the others as registered
    rank = {name: i for i, name in enumerate(BUILTIN)}
    return dict(sorted(_REGISTRY.items(), key=lambda item: rank.get(item[0], len(rank))))


def methods_for(task: str) -> tuple[str, ...]:
    """The methods that train a model for ``task``, in registry order."""
    return tuple(m for r in recipes().values() if r.task == task for m in r.methods)


def recipe_for(task: str, method: str) -> Recipe:
    """The recipe that trains ``method`` on ``task`` data."""
    for r in recipes().values():
        if r.task == task and method in r.methods:
            return r
    from .config import check_method

    check_method(task, method)  # raises, saying why
    raise ConfigError(f"no recipe trains {method!r} on {task} data")  # pragma: no cover


class Classifies:
    """What the classification recipes share: a subclass gives ``logits(predictor, examples)``
    (rows x labels), and gets label predictions and the metrics from them."""

    task = CLASSIFICATION

    def logits(self, predictor: Predictor, examples: Examples) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def predict(self, predictor: Predictor, examples: Examples, **options: Any) -> list[dict[str, Any]]:
        """One dict per row: id, text, predicted label, its probability, and the gold label if known."""
        proba = softmax(self.logits(predictor, examples).astype(np.float64))
        out = []
        for r, p in zip(examples.rows, proba, strict=True):
            k = int(p.argmax())
            row = {
                "id": r.id,
                "text": r.fields["text"],
                "label": predictor.labels[k],
                "confidence": float(p[k]),
            }
            if r.label is not None:
                row["gold"] = r.label
            out.append(row)
        return out

    def score(self, predictor: Predictor, examples: Examples) -> dict[str, Any]:
        """Accuracy, macro-F1 and per-class F1 of the predictions against the rows' labels."""
        import logging

        from augment.errors import DataError

        from .metrics import classification_metrics

        missing = [r.id for r in examples.rows if r.label is None]
        if missing:
            raise DataError(f"{examples.path}: {len(missing)} rows have no label to score against")
        unknown = sorted({r.label for r in examples.rows} - set(predictor.labels))
        if unknown:
            logging.getLogger("finetune.predict").warning(
                "%s: labels the model never saw: %s", examples.path, ", ".join(unknown)
            )
        pred = self.predict(predictor, examples)
        return classification_metrics([r.label for r in examples.rows], [p["label"] for p in pred])
