"""Diversity selection to a per-label budget by k-center greedy.

Per label, the seeds of that label start as the selected set; then, up to ``budget`` times, the
candidate farthest (in embedding distance) from everything selected so far is taken. The result
covers the label's region of the embedding space instead of piling up near a few seeds. The score
is a candidate's distance to the selected set when it was taken (or, if not taken, at the end).
``budget = None`` keeps every candidate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..record import Record
from ..steps import register_filter
from .base import FilterContext, FilterStep, Verdict


@dataclass
class DiversityConfig:
    per_class_budget: int | None = field(
        default=None, metadata={"help": "keep at most this many per label (k-center greedy)"}
    )

    def __post_init__(self) -> None:
        if self.per_class_budget is not None and self.per_class_budget < 1:
            raise ConfigError(f"per_class_budget must be >= 1, got {self.per_class_budget}")


@register_filter(
    "diversity", DiversityConfig, summary="at most per_class_budget rows per label, chosen by k-center greedy"
)
class DiversityFilter(FilterStep):
    default_position = 70

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        budget = self.config.per_class_budget
        if budget is None:
            return [Verdict(True, None) for _ in candidates]
        groups: dict[str | None, list[int]] = defaultdict(list)
        for i, c in enumerate(candidates):
            groups[c.label].append(i)
        verdicts: list[Verdict | None] = [None] * len(candidates)
        for label, idx in groups.items():
            x = np.stack([ctx.candidate_vectors[candidates[i].id] for i in idx])
            seeds = [j for j, s in enumerate(ctx.seeds) if s.label == label]
            if seeds:
                dist = 1.0 - (x @ ctx.seed_vectors[seeds].T).max(axis=1)
            else:
                dist = np.full(len(x), np.inf)
            taken = np.zeros(len(x), bool)
            for _ in range(min(budget, len(x))):
                masked = np.where(taken, -np.inf, dist)
                j = int(np.argmax(masked))
                verdicts[idx[j]] = Verdict(True, round(float(min(dist[j], 2.0)), 4))
                taken[j] = True
                dist = np.minimum(dist, 1.0 - x @ x[j])
            for j in np.flatnonzero(~taken):
                d = round(float(min(dist[j], 2.0)), 4)
                verdicts[idx[j]] = Verdict(False, d, "over_budget", f"label {label!r} reached {budget}")
        return [v for v in verdicts if v is not None]
