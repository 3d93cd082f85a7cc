"""Label consistency: a classifier trained on the seeds must agree with the candidate's label.

The judge is independent of how the candidate was made: a calibrated embedding classifier (by
default logistic regression) fitted on the seeds alone. The score is the margin
``P(intended label) - max P(other label)``; a candidate is kept when it is at least ``margin``.
Rows without labels (instruction data) pass with no score. Pseudo-labelled pool rows get their
margin recorded but are never dropped here: their label came from the same kind of seed classifier,
and how many of them to keep is the pseudo-labeller's gate or the recipe's choice.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..classifiers import KINDS, EmbeddingClassifier, margin_for
from ..errors import ConfigError
from ..record import PSEUDO_LABELLED, Record
from ..steps import register_filter
from .base import FilterContext, FilterStep, Verdict


@dataclass
class LabelConfig:
    label_margin: float = field(
        default=0.1, metadata={"help": "P(label) - max P(other) from a seed classifier, at least"}
    )
    label_classifier: str = field(default="logreg", metadata={"help": "logreg, prototype or knn"})

    def __post_init__(self) -> None:
        if self.label_classifier not in KINDS:
            close = difflib.get_close_matches(self.label_classifier, KINDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"label_classifier must be one of {', '.join(KINDS)}, got {self.label_classifier!r}{hint}"
            )


@register_filter(
    "label", LabelConfig, summary="a classifier trained on the seeds must agree with the candidate's label"
)
class LabelConsistencyFilter(FilterStep):
    default_position = 50

    def __init__(self, name: str, config: Any) -> None:
        super().__init__(name, config)
        self._model: EmbeddingClassifier | None = None  # fitted on the first call's seeds, then reused

    def _fit(self, ctx: FilterContext) -> EmbeddingClassifier | None:
        labels = [s.label for s in ctx.seeds]
        if any(lbl is None for lbl in labels) or len(set(labels)) < 2:
            return None
        if self._model is None:
            self._model = EmbeddingClassifier(self.config.label_classifier, seed=self.seed).fit(
                ctx.seed_vectors, labels
            )
        return self._model

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        model = self._fit(ctx)
        if model is None or not candidates:
            return [Verdict(True, None) for _ in candidates]
        x = np.stack([ctx.candidate_vectors[c.id] for c in candidates])
        proba = model.predict_proba(x)
        margins = margin_for(proba, model.classes, [c.label or "" for c in candidates])
        margin = self.config.label_margin
        out = []
        for cand, m, p in zip(candidates, margins, proba, strict=True):
            m = round(float(m), 4)
            if m >= margin or cand.origin == PSEUDO_LABELLED:
                out.append(Verdict(True, m))
            else:
                predicted = model.classes[int(p.argmax())]
                detail = (
                    f"unknown label {cand.label!r}"
                    if cand.label not in model.classes
                    else f"margin {m:.3f} < {margin}; the seed classifier says {predicted!r} ({p.max():.2f})"
                )
                out.append(Verdict(False, m, "disagrees", detail))
        return out
