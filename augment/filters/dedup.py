"""Exact and near-duplicate removal against the seeds and among the candidates.

Three indexes, asked in order, each holding the seeds and the candidates kept earlier in generation
order:

1. :class:`ExactIndex` — the same text once case, width, spacing and punctuation are ignored;
2. :class:`TextIndex` — text near-duplicates: MinHash LSH over character bigrams (Chinese) or word
   bigrams, confirmed by exact Jaccard >= ``minhash_threshold``: catches "a few characters apart"
   whatever the embedder;
3. :class:`EmbeddingIndex` — calibrated similarity >= ``near_duplicate`` to a seed other than the
   parent (the similarity band judges the parent) or to a kept candidate.

The first index that finds a duplicate gives the reason (``<index code>_<seed|candidate>``, e.g.
``text_near_seed``); a candidate none of them flags is kept and added to all three. Each index has
the same small interface: built over the batch, ``match(i)`` for candidate ``i``, ``add(i)`` once it
is kept.

Everything stays near-linear: seeds are compared in chunks, candidates only with the kept
candidates that share a MinHash band or a random-hyperplane (SimHash) band with them, so memory
grows with n, never n².
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import ConfigError
from ..language import normalise
from ..minhash import MinHashLSH, jaccard, shingles
from ..record import Record
from ..steps import register_filter
from .base import FilterContext, FilterStep, Verdict

EXACT_SEARCH_BELOW = 4096  # below this many candidates, compare with every kept one
SEED_CHUNK = 4096  # candidates compared with all seeds at once


@dataclass(frozen=True)
class Match:
    """The closest seed or kept candidate an index found for a candidate."""

    kind: str  # "seed" or "candidate"
    other: str  # its id
    score: float | None  # the verdict's score
    duplicate: bool = True  # False: only the nearest neighbour, for the score of a kept candidate
    detail: str = ""


class DuplicateIndex(Protocol):
    code: str  # the verdict's reason is f"{code}_{match.kind}"

    def match(self, i: int) -> Match | None:
        """What candidate ``i`` duplicates (or, where the index scores neighbours, its nearest)."""
        ...

    def add(self, i: int) -> None:
        """Candidate ``i`` was kept: later candidates are compared with it too."""
        ...


class ExactIndex:
    """The same normalised text (no case, width, spacing or punctuation)."""

    code = "exact"

    def __init__(
        self, seeds: Sequence[Record], seed_texts: list[str], candidates: Sequence[Record], texts: list[str]
    ):
        self._candidates = candidates
        self._keys = [normalise(t) for t in texts]
        self._owner: dict[str, tuple[str, str]] = {}  # normalised text -> (kind, id) of its first holder
        for s, t in zip(seeds, seed_texts, strict=True):
            self._owner.setdefault(normalise(t), ("seed", s.id))

    def match(self, i: int) -> Match | None:
        hit = self._owner.get(self._keys[i])
        if hit is None:
            return None
        kind, other = hit
        detail = f"same text as seed {other}" if kind == "seed" else f"same text as {other}"
        return Match(kind, other, 1.0, detail=detail)

    def add(self, i: int) -> None:
        self._owner[self._keys[i]] = ("candidate", self._candidates[i].id)


class TextIndex:
    """MinHash LSH buckets over shingles; a bucket-mate is a duplicate when the exact Jaccard is at
    least ``threshold``. The parent seed of a rewrite is skipped (the similarity band judges it)."""

    code = "text_near"

    def __init__(
        self,
        seeds: Sequence[Record],
        seed_texts: list[str],
        candidates: Sequence[Record],
        texts: list[str],
        *,
        language: str,
        threshold: float,
        lsh_seed: int,
    ):
        self.seeds, self.candidates, self.threshold = seeds, candidates, threshold
        lsh = MinHashLSH(seed=lsh_seed)
        self._sh_seed = [shingles(t, language) for t in seed_texts]
        self._sh_cand = [shingles(t, language) for t in texts]
        keys_seed = lsh.band_keys(lsh.signatures(self._sh_seed)) if self._sh_seed else []
        self._keys = lsh.band_keys(lsh.signatures(self._sh_cand)) if len(candidates) else []
        self._buckets: list[dict[bytes, list[tuple[str, int]]]] = [
            defaultdict(list) for _ in range(lsh.bands)
        ]
        for b, keys in enumerate(keys_seed):
            for j, key in enumerate(keys):
                self._buckets[b][key.tobytes()].append(("seed", j))

    def match(self, i: int) -> Match | None:
        cand = self.candidates[i]
        near = None
        seen: set[tuple[str, int]] = set()
        for b, buckets in enumerate(self._buckets):
            for kind, j in buckets.get(self._keys[b][i].tobytes(), ()):
                if (kind, j) in seen:
                    continue
                seen.add((kind, j))
                if kind == "seed" and cand.rewrites_parent and self.seeds[j].id in cand.parent_ids:
                    continue
                other = self._sh_seed[j] if kind == "seed" else self._sh_cand[j]
                jac = jaccard(self._sh_cand[i], other)
                if jac >= self.threshold and (near is None or jac > near[2]):
                    near = (kind, j, jac)
        if near is None:
            return None
        kind, j, jac = near
        other_id = self.seeds[j].id if kind == "seed" else self.candidates[j].id
        detail = f"character/word-bigram Jaccard {jac:.3f} >= {self.threshold} to {other_id}"
        return Match(kind, other_id, round(jac, 4), detail=detail)

    def add(self, i: int) -> None:
        for b, buckets in enumerate(self._buckets):
            buckets[self._keys[b][i].tobytes()].append(("candidate", i))


class EmbeddingIndex:
    """Calibrated cosine to the seeds (all at once, in chunks; the parent excluded) and to the kept
    candidates: every kept one below ``EXACT_SEARCH_BELOW`` candidates, else those sharing a
    random-hyperplane (SimHash) band. ``match`` always returns the nearest, if any, so that a kept
    candidate gets its highest similarity as its score; it is a duplicate at ``threshold`` or more."""

    code = "near"

    def __init__(
        self,
        ctx: FilterContext,
        candidates: Sequence[Record],
        *,
        threshold: float,
        banded: bool,
        seed: int,
        hyperplanes: int = 16,
        bands: int = 12,
    ):
        self.ctx, self.candidates, self.threshold, self.banded = ctx, candidates, threshold, banded
        n = len(candidates)
        x = np.stack([ctx.candidate_vectors[c.id] for c in candidates]) if n else np.zeros((0, 1))
        self._x = x

        # best calibrated similarity to a seed other than the parent, in chunks
        self._seed_best = np.full(n, -np.inf)
        self._seed_arg = np.zeros(n, int)
        if len(ctx.seed_vectors):
            parent = np.array(
                [ctx.seed_index.get(c.parent_ids[0], -1) if c.parent_ids else -1 for c in candidates]
            )
            for start in range(0, n, SEED_CHUNK):
                sims = ctx.calibrate(x[start : start + SEED_CHUNK] @ ctx.seed_vectors.T)
                rows = np.arange(len(sims))
                p = parent[start : start + SEED_CHUNK]
                sims[rows[p >= 0], p[p >= 0]] = -np.inf
                self._seed_arg[start : start + SEED_CHUNK] = sims.argmax(axis=1)
                self._seed_best[start : start + SEED_CHUNK] = sims.max(axis=1)

        # kept candidates: SimHash bands at scale, else one matrix of every kept vector
        if banded:
            rng = np.random.default_rng(seed)
            planes = rng.standard_normal((x.shape[1], hyperplanes * bands)).astype(np.float32)
            bits = (x @ planes) > 0
            weights = 1 << np.arange(hyperplanes, dtype=np.int64)
            self._sim_keys = np.stack(
                [bits[:, b * hyperplanes : (b + 1) * hyperplanes] @ weights for b in range(bands)], axis=1
            )
            self._buckets: list[dict[int, list[int]]] = [defaultdict(list) for _ in range(bands)]
        self._kept_vecs = np.zeros((n if not banded else 0, x.shape[1]), np.float32)
        self._kept_ids: list[str] = []

    def _nearest_kept(self, i: int) -> tuple[float, str | None]:
        if self.banded:
            pool: set[int] = set()
            for b, buckets in enumerate(self._buckets):
                pool.update(buckets.get(int(self._sim_keys[i, b]), ()))
            if not pool:
                return -np.inf, None
            idx = np.fromiter(pool, int)
            sims = self.ctx.calibrate(self._x[idx] @ self._x[i])
            k = int(np.argmax(sims))
            return float(sims[k]), self.candidates[int(idx[k])].id
        if not self._kept_ids:
            return -np.inf, None
        sims = self.ctx.calibrate(self._kept_vecs[: len(self._kept_ids)] @ self._x[i])
        k = int(np.argmax(sims))
        return float(sims[k]), self._kept_ids[k]

    def match(self, i: int) -> Match | None:
        s_seed = float(self._seed_best[i])
        s_cand, best = self._nearest_kept(i)
        score = round(max(s_seed, s_cand), 4)
        seed_id = self.ctx.seeds[int(self._seed_arg[i])].id if np.isfinite(s_seed) else ""
        if s_seed >= self.threshold:
            detail = f"{s_seed:.3f} >= {self.threshold} to seed {seed_id}"
            return Match("seed", seed_id, score, detail=detail)
        if s_cand >= self.threshold:
            return Match("candidate", best or "", score, detail=f"{s_cand:.3f} >= {self.threshold} to {best}")
        if not np.isfinite(score):
            return None  # nothing to compare with: no other seed, nothing kept yet
        kind, other = ("seed", seed_id) if s_seed >= s_cand else ("candidate", best or "")
        return Match(kind, other, score, duplicate=False)

    def add(self, i: int) -> None:
        if self.banded:
            for b, buckets in enumerate(self._buckets):
                buckets[int(self._sim_keys[i, b])].append(i)
        else:
            self._kept_vecs[len(self._kept_ids)] = self._x[i]
        self._kept_ids.append(self.candidates[i].id)


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
    force_lsh = False  # tests: use the banded search even for small inputs

    def indexes(self, candidates: Sequence[Record], ctx: FilterContext) -> list[DuplicateIndex]:
        """The three indexes over this batch, in the order they are asked."""
        texts = [c.fields.get(ctx.field, "") for c in candidates]
        seed_texts = [s.fields.get(ctx.field, "") for s in ctx.seeds]
        return [
            ExactIndex(ctx.seeds, seed_texts, candidates, texts),
            TextIndex(
                ctx.seeds,
                seed_texts,
                candidates,
                texts,
                language=self.language,
                threshold=self.config.minhash_threshold,
                lsh_seed=self.seed + 1,
            ),
            EmbeddingIndex(
                ctx,
                candidates,
                threshold=self.config.near_duplicate,
                banded=self.force_lsh or len(candidates) >= EXACT_SEARCH_BELOW,
                seed=self.seed,
            ),
        ]

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        indexes = self.indexes(candidates, ctx)
        out: list[Verdict] = []
        for i in range(len(candidates)):
            verdict = None
            score = None
            for index in indexes:
                m = index.match(i)
                if m is None:
                    continue
                if m.duplicate:
                    verdict = Verdict(False, m.score, f"{index.code}_{m.kind}", m.detail)
                    break
                score = m.score
            if verdict is None:
                for index in indexes:
                    index.add(i)
                verdict = Verdict(True, score)
            out.append(verdict)
        return out
