"""Novelty against the seeds: 1 - the highest calibrated similarity to any seed (the parent too).

Every candidate gets the score, so users can sort by it; with ``min_novelty`` > 0 the least novel
are dropped (0 keeps everything, the default: the similarity band and dedup already drop copies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..record import Record
from ..steps import register_filter
from .base import FilterContext, FilterStep, Verdict


@dataclass
class NoveltyConfig:
    min_novelty: float = field(default=0.0, metadata={"help": "1 - max similarity to any seed"})


@register_filter("novelty", NoveltyConfig, summary="1 - the highest calibrated similarity to any seed")
class NoveltyFilter(FilterStep):
    default_position = 60

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        min_novelty = self.config.min_novelty
        if not len(ctx.seed_vectors) or not candidates:
            return [Verdict(True, None) for _ in candidates]
        x = np.stack([ctx.candidate_vectors[c.id] for c in candidates])
        best = np.empty(len(x))
        for start in range(0, len(x), 8192):
            best[start : start + 8192] = (x[start : start + 8192] @ ctx.seed_vectors.T).max(axis=1)
        novelty = 1.0 - ctx.calibrate(best)
        out = []
        for nov in novelty:
            nov = round(float(nov), 4)
            if nov < min_novelty:
                out.append(Verdict(False, nov, "not_novel", f"{nov:.3f} < {min_novelty}"))
            else:
                out.append(Verdict(True, nov))
        return out
