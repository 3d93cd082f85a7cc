"""PEFT fine-tuning on augmented data, and the answer to "did augmentation help?".

* :func:`finetune` — train (LoRA, IA3, prompt/prefix tuning, or frozen embeddings + logistic
  regression) and save the adapter with its classification head, tokenizer and manifest;
* :class:`Predictor` — reload a saved run and predict / score / generate;
* :func:`evaluate` — the same recipe on seed-only vs seed + augmented data over k repeats;
* :func:`load_training_data` — an expand output as a ``datasets.Dataset``;
* :mod:`finetune.recipes` — the Recipe protocol (defaults, fit, save, load, predict, score) and the
  registry of the classifier, sft, embedding and setfit recipes that the above dispatch to.

torch, transformers and peft are imported inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .data import load_training_data

__all__ = ["TrainConfig", "Predictor", "evaluate", "finetune", "load_training_data"]

_LAZY = {"TrainConfig": ".config", "Predictor": ".predict", "evaluate": ".evaluate", "finetune": ".train"}

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig
    from .evaluate import evaluate
    from .predict import Predictor
    from .train import finetune


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'finetune' has no attribute {name!r}")
