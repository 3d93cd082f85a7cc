"""Exact and near-duplicate removal against the seeds and among the candidates.

Exact: the same text once case, width, spacing and punctuation are ignored (works for any script).
Near: calibrated embedding similarity at or above the threshold to a seed other than the parent (the
similarity band judges the parent) or to a candidate kept earlier in generation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..language import normalise
from ..record import Record
from .base import FilterContext, Verdict


@dataclass
class DedupFilter:
    near_duplicate: float = 0.985
    name: str = "dedup"
    needs_embeddings: bool = True

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        seed_keys: dict[str, str] = {}
        for s in ctx.seeds:
            seed_keys.setdefault(normalise(s.fields.get(ctx.field, "")), s.id)
        kept_keys: dict[str, str] = {}
        dim = ctx.seed_vectors.shape[1] if ctx.seed_vectors.size else 0
        kept_vecs = np.zeros((max(len(candidates), 1), dim), np.float32)
        kept_ids: list[str] = []
        out = []
        for cand in candidates:
            key = normalise(cand.fields.get(ctx.field, ""))
            if key in seed_keys:
                out.append(Verdict(False, 1.0, "exact_seed", f"same text as seed {seed_keys[key]}"))
                continue
            if key in kept_keys:
                out.append(Verdict(False, 1.0, "exact_candidate", f"same text as {kept_keys[key]}"))
                continue
            vec = ctx.candidate_vectors[cand.id]
            seed_sims = ctx.calibrate(ctx.seed_vectors @ vec)
            for pid in cand.parent_ids:
                if pid in ctx.seed_index:
                    seed_sims[ctx.seed_index[pid]] = -np.inf
            best_seed = int(np.argmax(seed_sims)) if len(seed_sims) else -1
            s_seed = float(seed_sims[best_seed]) if best_seed >= 0 else -np.inf
            s_cand, best_cand = -np.inf, -1
            if kept_ids:
                cand_sims = ctx.calibrate(kept_vecs[: len(kept_ids)] @ vec)
                best_cand = int(np.argmax(cand_sims))
                s_cand = float(cand_sims[best_cand])
            score = round(max(s_seed, s_cand), 4)
            if s_seed >= self.near_duplicate:
                sid = ctx.seeds[best_seed].id
                out.append(
                    Verdict(False, score, "near_seed", f"{s_seed:.3f} >= {self.near_duplicate} to seed {sid}")
                )
            elif s_cand >= self.near_duplicate:
                out.append(
                    Verdict(
                        False,
                        score,
                        "near_candidate",
                        f"{s_cand:.3f} >= {self.near_duplicate} to {kept_ids[best_cand]}",
                    )
                )
            else:
                kept_keys[key] = cand.id
                kept_vecs[len(kept_ids)] = vec
                kept_ids.append(cand.id)
                out.append(Verdict(True, score if np.isfinite(score) else None))
        return out
