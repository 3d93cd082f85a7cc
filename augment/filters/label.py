"""Label consistency: a classifier trained on the seeds must agree with the candidate's label.

The judge is independent of how the candidate was made: a calibrated embedding classifier (by
default logistic regression) fitted on the seeds alone. The score is the margin
``P(intended label) - max P(other label)``; a candidate is kept when it is at least ``margin``.
Rows without labels (instruction data) pass with no score. Pseudo-labelled pool rows get their
margin recorded but are never dropped here: their label came from the same kind of seed classifier,
and how many of them to keep is the pseudo-labeller's gate or the recipe's choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..classifiers import EmbeddingClassifier, margin_for
from ..record import PSEUDO_LABELLED, Record
from .base import FilterContext, Verdict


@dataclass
class LabelConsistencyFilter:
    margin: float = 0.1
    classifier: str = "logreg"
    seed: int = 0
    name: str = "label"
    needs_embeddings: bool = True
    _model: EmbeddingClassifier | None = field(default=None, repr=False)

    def _fit(self, ctx: FilterContext) -> EmbeddingClassifier | None:
        labels = [s.label for s in ctx.seeds]
        if any(lbl is None for lbl in labels) or len(set(labels)) < 2:
            return None
        if self._model is None:
            self._model = EmbeddingClassifier(self.classifier, seed=self.seed).fit(ctx.seed_vectors, labels)
        return self._model

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        model = self._fit(ctx)
        if model is None:
            return [Verdict(True, None) for _ in candidates]
        x = np.stack([ctx.candidate_vectors[c.id] for c in candidates])
        proba = model.predict_proba(x)
        margins = margin_for(proba, model.classes, [c.label or "" for c in candidates])
        out = []
        for cand, m, p in zip(candidates, margins, proba, strict=True):
            m = round(float(m), 4)
            if m >= self.margin or cand.origin == PSEUDO_LABELLED:
                out.append(Verdict(True, m))
            else:
                predicted = model.classes[int(p.argmax())]
                detail = (
                    f"unknown label {cand.label!r}"
                    if cand.label not in model.classes
                    else f"margin {m:.3f} < {self.margin}; the seed classifier says {predicted!r} ({p.max():.2f})"
                )
                out.append(Verdict(False, m, "disagrees", detail))
        return out
