"""Similarity band to the parent: faithful to the seed it came from, but not a copy of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..record import Record
from ..steps import register_filter
from .base import FilterContext, FilterStep, Verdict


@dataclass
class SimilarityConfig:
    min_similarity: float = field(
        default=0.6, metadata={"help": "drop candidates less similar than this to their parent"}
    )
    max_similarity: float = field(
        default=0.995, metadata={"help": "drop candidates more similar than this to their parent"}
    )

    def __post_init__(self) -> None:
        if not self.min_similarity < self.max_similarity:
            raise ConfigError(
                "min_similarity must be below max_similarity, got "
                f"{self.min_similarity} >= {self.max_similarity}"
            )


@register_filter(
    "similarity", SimilarityConfig, summary="calibrated similarity to the parent: faithful, but not a copy"
)
class SimilarityBandFilter(FilterStep):
    default_position = 30

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        lo, hi = self.config.min_similarity, self.config.max_similarity
        out = []
        for cand in candidates:
            parent = ctx.parent_of(cand)
            if parent is None:  # nothing to compare with (e.g. a pool row): the band does not apply
                out.append(Verdict(True, None))
                continue
            cos = float(np.dot(ctx.candidate_vectors[cand.id], ctx.seed_vectors[ctx.seed_index[parent.id]]))
            sim = round(float(ctx.calibrate(cos)), 4)
            if sim < lo:
                out.append(Verdict(False, sim, "below_min", f"{sim:.3f} < {lo} (cosine {cos:.3f})"))
            elif sim > hi:
                out.append(Verdict(False, sim, "above_max", f"{sim:.3f} > {hi} (cosine {cos:.3f})"))
            else:
                out.append(Verdict(True, sim))
        return out
