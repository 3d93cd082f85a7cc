"""Similarity band to the parent: faithful to the seed it came from, but not a copy of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..record import Record
from .base import FilterContext, Verdict


@dataclass
class SimilarityBandFilter:
    min_similarity: float = 0.6
    max_similarity: float = 0.995
    name: str = "similarity"
    needs_embeddings: bool = True

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        out = []
        for cand in candidates:
            parent = ctx.parent_of(cand)
            if parent is None:  # nothing to compare with (e.g. a pool row): the band does not apply
                out.append(Verdict(True, None))
                continue
            cos = float(np.dot(ctx.candidate_vectors[cand.id], ctx.seed_vectors[ctx.seed_index[parent.id]]))
            sim = round(float(ctx.calibrate(cos)), 4)
            if sim < self.min_similarity:
                out.append(
                    Verdict(False, sim, "below_min", f"{sim:.3f} < {self.min_similarity} (cosine {cos:.3f})")
                )
            elif sim > self.max_similarity:
                out.append(
                    Verdict(False, sim, "above_max", f"{sim:.3f} > {self.max_similarity} (cosine {cos:.3f})")
                )
            else:
                out.append(Verdict(True, sim))
        return out
