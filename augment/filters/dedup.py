"""Exact and near-duplicate removal against the seeds and among the candidates.

Three tests, in order, each against the seeds and the candidates kept earlier in generation order:

1. exact — the same text once case, width, spacing and punctuation are ignored;
2. text near-duplicate — MinHash LSH over character bigrams (Chinese) or word bigrams, confirmed by
   exact Jaccard >= ``minhash_threshold``: catches "a few characters apart" whatever the embedder;
3. embedding near-duplicate — calibrated similarity >= ``near_duplicate`` to a seed other than the
   parent (the similarity band judges the parent) or to a kept candidate.

Everything stays near-linear: seeds are compared in chunks, candidates only with the kept
candidates that share a MinHash band or a random-hyperplane (SimHash) band with them, so memory
grows with n, never n².
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..language import normalise
from ..minhash import MinHashLSH, jaccard, shingles
from ..record import Record
from ..steps import register_filter
from .base import FilterContext, FilterStep, Verdict

EXACT_SEARCH_BELOW = 4096  # below this many candidates, compare with every kept one


@dataclass
class DedupConfig:
    near_duplicate: float = field(
        default=0.985, metadata={"help": "calibrated similarity to a seed or kept candidate"}
    )
    minhash_threshold: float = field(
        default=0.8, metadata={"help": "Jaccard of character (CJK) or word bigrams"}
    )

    def __post_init__(self) -> None:
        if self.minhash_threshold <= 0:
            raise ConfigError(f"minhash_threshold must be > 0, got {self.minhash_threshold}")


@register_filter(
    "dedup",
    DedupConfig,
    summary="exact, text (MinHash) and embedding near-duplicates of the seeds and of earlier kept candidates",
)
class DedupFilter(FilterStep):
    default_position = 40
    hyperplanes = 16  # bits per SimHash band
    simhash_bands = 12
    force_lsh = False  # tests: use the banded search even for small inputs

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        near_duplicate, minhash_threshold = self.config.near_duplicate, self.config.minhash_threshold
        n = len(candidates)
        texts = [c.fields.get(ctx.field, "") for c in candidates]
        seed_texts = [s.fields.get(ctx.field, "") for s in ctx.seeds]
        x = np.stack([ctx.candidate_vectors[c.id] for c in candidates]) if n else np.zeros((0, 1))

        # best calibrated similarity to a seed other than the parent, in chunks
        seed_best = np.full(n, -np.inf)
        seed_arg = np.zeros(n, int)
        if len(ctx.seed_vectors):
            parent = np.array(
                [ctx.seed_index.get(c.parent_ids[0], -1) if c.parent_ids else -1 for c in candidates]
            )
            for start in range(0, n, 4096):
                sims = ctx.calibrate(x[start : start + 4096] @ ctx.seed_vectors.T)
                rows = np.arange(len(sims))
                p = parent[start : start + 4096]
                sims[rows[p >= 0], p[p >= 0]] = -np.inf
                seed_arg[start : start + 4096] = sims.argmax(axis=1)
                seed_best[start : start + 4096] = sims.max(axis=1)

        # MinHash over seeds + candidates
        lsh = MinHashLSH(seed=self.seed + 1)
        sh_seed = [shingles(t, self.language) for t in seed_texts]
        sh_cand = [shingles(t, self.language) for t in texts]
        keys_seed = lsh.band_keys(lsh.signatures(sh_seed)) if sh_seed else []
        keys_cand = lsh.band_keys(lsh.signatures(sh_cand)) if n else []
        mh_buckets: list[dict] = [defaultdict(list) for _ in range(lsh.bands)]
        for b, keys in enumerate(keys_seed):
            for j, key in enumerate(keys):
                mh_buckets[b][key.tobytes()].append(("seed", j))

        # SimHash bands over the embeddings, for candidate-candidate search at scale
        banded = self.force_lsh or n >= EXACT_SEARCH_BELOW
        if banded:
            rng = np.random.default_rng(self.seed)
            planes = rng.standard_normal((x.shape[1], self.hyperplanes * self.simhash_bands)).astype(
                np.float32
            )
            bits = (x @ planes) > 0
            weights = 1 << np.arange(self.hyperplanes, dtype=np.int64)
            sim_keys = np.stack(
                [
                    bits[:, b * self.hyperplanes : (b + 1) * self.hyperplanes] @ weights
                    for b in range(self.simhash_bands)
                ],
                axis=1,
            )
            sim_buckets: list[dict] = [defaultdict(list) for _ in range(self.simhash_bands)]
        kept_vecs = np.zeros((n if not banded else 0, x.shape[1]), np.float32)

        seed_keys: dict[str, str] = {}
        for s, t in zip(ctx.seeds, seed_texts, strict=True):
            seed_keys.setdefault(normalise(t), s.id)
        kept_keys: dict[str, str] = {}
        kept_ids: list[str] = []
        out: list[Verdict] = []
        for i, cand in enumerate(candidates):
            key = normalise(texts[i])
            if key in seed_keys:
                out.append(Verdict(False, 1.0, "exact_seed", f"same text as seed {seed_keys[key]}"))
                continue
            if key in kept_keys:
                out.append(Verdict(False, 1.0, "exact_candidate", f"same text as {kept_keys[key]}"))
                continue
            # text near-duplicates through MinHash buckets
            near = None
            seen: set = set()
            for b in range(lsh.bands):
                for kind, j in mh_buckets[b].get(keys_cand[b][i].tobytes(), ()):
                    if (kind, j) in seen:
                        continue
                    seen.add((kind, j))
                    if kind == "seed" and cand.rewrites_parent and ctx.seeds[j].id in cand.parent_ids:
                        continue
                    other = sh_seed[j] if kind == "seed" else sh_cand[j]
                    jac = jaccard(sh_cand[i], other)
                    if jac >= minhash_threshold and (near is None or jac > near[2]):
                        near = (kind, j, jac)
            if near is not None:
                kind, j, jac = near
                other_id = ctx.seeds[j].id if kind == "seed" else candidates[j].id
                out.append(
                    Verdict(
                        False,
                        round(jac, 4),
                        f"text_near_{kind}",
                        f"character/word-bigram Jaccard {jac:.3f} >= {minhash_threshold} to {other_id}",
                    )
                )
                continue
            # embedding near-duplicates
            s_seed = float(seed_best[i])
            s_cand, best = -np.inf, None
            if banded:
                pool: set[int] = set()
                for b in range(self.simhash_bands):
                    pool.update(sim_buckets[b].get(int(sim_keys[i, b]), ()))
                if pool:
                    idx = np.fromiter(pool, int)
                    sims = ctx.calibrate(x[idx] @ x[i])
                    k = int(np.argmax(sims))
                    s_cand, best = float(sims[k]), candidates[int(idx[k])].id
            elif kept_ids:
                sims = ctx.calibrate(kept_vecs[: len(kept_ids)] @ x[i])
                k = int(np.argmax(sims))
                s_cand, best = float(sims[k]), kept_ids[k]
            score = round(max(s_seed, s_cand), 4)
            if s_seed >= near_duplicate:
                sid = ctx.seeds[int(seed_arg[i])].id
                out.append(
                    Verdict(False, score, "near_seed", f"{s_seed:.3f} >= {near_duplicate} to seed {sid}")
                )
                continue
            if s_cand >= near_duplicate:
                out.append(
                    Verdict(False, score, "near_candidate", f"{s_cand:.3f} >= {near_duplicate} to {best}")
                )
                continue
            # kept: index it
            kept_keys[key] = cand.id
            if banded:
                for b in range(self.simhash_bands):
                    sim_buckets[b][int(sim_keys[i, b])].append(i)
            else:
                kept_vecs[len(kept_ids)] = x[i]
            kept_ids.append(cand.id)
            for b in range(lsh.bands):
                mh_buckets[b][keys_cand[b][i].tobytes()].append(("candidate", i))
            out.append(Verdict(True, score if np.isfinite(score) else None))
        return out
