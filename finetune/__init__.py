"""PEFT fine-tuning on augmented data, and the answer to "did augmentation help?".

* :func:`finetune` — train (LoRA, IA3, prompt/prefix tuning, or frozen embeddings + logistic
  regression) and save the adapter with its classification head, tokenizer and manifest;
* :class:`Predictor` — reload a saved run and predict / score / generate;
* :func:`finetune.evaluate.evaluate` — the same recipe on seed-only vs seed + augmented data over k
  repeats (import it from :mod:`finetune.evaluate`: ``finetune.evaluate`` is that module, so
  ``from finetune import evaluate`` gives the module, not the function);
* :func:`load_training_data` — an expand output as a ``datasets.Dataset``;
* :mod:`finetune.recipes` — the Recipe protocol (defaults, fit, save, load, predict, score) and the
  registry of the classifier, sft, embedding and setfit recipes that the above dispatch to.

torch, transformers and peft are imported inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .data import load_training_data

__all__ = ["TrainConfig", "Predictor", "finetune", "load_training_data"]

# not "evaluate": the submodule of that name becomes the package attribute once anything imports it,
# so a lazy function export would be the function in one process and the module in another
_LAZY = {"TrainConfig": ".config", "Predictor": ".predict", "finetune": ".train"}

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig
    from .predict import Predictor
    from .train import finetune


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'finetune' has no attribute {name!r}")
