"""Decontamination: drop candidates (and pool rows) that copy an evaluation row.

A training row that is the test sentence with a typo, a swapped word or a paraphrase makes the test
score measure memory, not skill. With ``--test FILE`` (alias ``--eval``) the pipeline reads the
evaluation rows with the seed loader, embeds them, puts them in :class:`FilterContext`
(``eval_texts``, ``eval_vectors``) and runs this filter first in the chain. Three checks, asked in
order; the first hit is the reason:

- ``exact``: the same text once case, width, spacing and punctuation are ignored;
- ``ngram``: Jaccard similarity of character bigrams (Chinese, Japanese: no spaces) or word bigrams
  (other languages) at or above ``eval_jaccard`` (the shingles of :mod:`augment.minhash`). The search
  is exact, not sampled: an inverted index over each evaluation row's rarest shingles (prefix
  filtering) finds every pair that can reach the threshold, and each is confirmed by its Jaccard;
- ``embedding``: calibrated cosine similarity (the run's scale, see ``FilterConfig``) to an
  evaluation row at or above ``eval_similarity``.

Without evaluation rows (no ``--test``) every candidate is kept; the filter is not in the default
chain. A kept candidate's score is its highest calibrated similarity to an evaluation row.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..language import normalise, uses_spaces
from ..minhash import jaccard, shingles
from ..record import Record
from ..steps import register_filter
from .base import FilterContext, FilterStep, Verdict

CHUNK = 2048  # candidates compared with every evaluation vector at once


@dataclass
class DecontaminateConfig:
    eval_jaccard: float = field(
        default=0.6,
        metadata={"help": "Jaccard of character (CJK) or word bigrams to a test row, at least: a near copy"},
    )
    eval_similarity: float = field(
        default=0.95, metadata={"help": "calibrated similarity to a test row, at least: a near copy"}
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.eval_jaccard <= 1.0:
            raise ConfigError(f"eval_jaccard must be in (0, 1], got {self.eval_jaccard}")
        if not 0.0 < self.eval_similarity <= 1.0:
            raise ConfigError(f"eval_similarity must be in (0, 1], got {self.eval_similarity}")


class NgramIndex:
    """Every evaluation row whose shingle-set Jaccard with a query is at least ``threshold``, exactly.

    Prefix filtering (Chaudhuri et al. 2006; Bayardo et al. 2007): order shingles globally (rarest
    first); two sets with Jaccard >= t share at least ceil(t * max size) shingles, so they share one
    among the first ``size - ceil(t * size) + 1`` shingles of each. Only those prefixes are indexed and
    probed; the survivors are confirmed with the exact Jaccard."""

    def __init__(self, sets: Sequence[set[str]], threshold: float) -> None:
        self.sets, self.threshold = list(sets), threshold
        self._df = Counter(sh for s in self.sets for sh in s)
        self._index: dict[str, list[int]] = defaultdict(list)
        for j, s in enumerate(self.sets):
            for sh in self._prefix(s):
                self._index[sh].append(j)

    def _prefix(self, s: set[str]) -> list[str]:
        ordered = sorted(s, key=lambda sh: (self._df.get(sh, 0), sh))
        keep = len(ordered) - math.ceil(self.threshold * len(ordered) - 1e-9) + 1
        return ordered[: max(keep, 1)]

    def best(self, s: set[str]) -> tuple[int, float] | None:
        """The evaluation row with the highest Jaccard >= threshold to ``s`` (lowest index on ties)."""
        if not s:
            return None
        found: set[int] = set()
        for sh in self._prefix(s):
            found.update(self._index.get(sh, ()))
        best = None
        for j in sorted(found):
            jac = jaccard(s, self.sets[j])
            if jac >= self.threshold and (best is None or jac > best[1]):
                best = (j, jac)
        return best


@register_filter(
    "decontaminate",
    DecontaminateConfig,
    summary="exact, n-gram (Jaccard) and embedding copies of the --test/--eval rows (runs first when given)",
)
class DecontaminateFilter(FilterStep):
    default_position = None  # opt-in: the pipeline puts it first when a test file is given

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        eval_texts = list(ctx.eval_texts)
        if not candidates:
            return []
        if not eval_texts:
            return [Verdict(True) for _ in candidates]
        texts = [c.fields.get(ctx.field, "") for c in candidates]
        exact: dict[str, int] = {}
        for j, t in enumerate(eval_texts):
            exact.setdefault(normalise(t), j)
        language = self.language
        index = NgramIndex([shingles(t, language) for t in eval_texts], self.config.eval_jaccard)
        best_sim, best_arg, raw = self._similarities(candidates, ctx)
        out: list[Verdict] = []
        for i, text in enumerate(texts):
            j = exact.get(normalise(text))
            if j is not None:
                out.append(Verdict(False, 1.0, "exact", f"same text as test row {j + 1}"))
                continue
            hit = index.best(shingles(text, language))
            if hit is not None:
                j, jac = hit
                unit = "word" if uses_spaces(language) else "character"
                detail = f"{unit}-bigram Jaccard {jac:.3f} >= {self.config.eval_jaccard} to test row {j + 1}"
                out.append(Verdict(False, round(jac, 4), "ngram", detail))
                continue
            if best_sim is None:
                out.append(Verdict(True))
                continue
            sim = float(best_sim[i])
            if sim >= self.config.eval_similarity:
                j = int(best_arg[i])
                detail = f"{sim:.3f} >= {self.config.eval_similarity} to test row {j + 1} (cosine {float(raw[i]):.3f})"
                out.append(Verdict(False, round(sim, 4), "embedding", detail))
            else:
                out.append(Verdict(True, round(sim, 4)))
        return out

    @staticmethod
    def _similarities(
        candidates: Sequence[Record], ctx: FilterContext
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Per candidate: the highest calibrated similarity to an evaluation row, which row, its cosine."""
        ev = ctx.eval_vectors
        if ev is None or not len(ev) or any(c.id not in ctx.candidate_vectors for c in candidates):
            return None, None, None
        x = np.stack([ctx.candidate_vectors[c.id] for c in candidates])
        n = len(candidates)
        best, arg, raw = np.empty(n), np.zeros(n, int), np.empty(n)
        for start in range(0, n, CHUNK):
            cos = x[start : start + CHUNK] @ ev.T
            k = cos.argmax(axis=1)
            rows = np.arange(len(cos))
            arg[start : start + CHUNK] = k
            raw[start : start + CHUNK] = cos[rows, k]
            best[start : start + CHUNK] = ctx.calibrate(cos[rows, k])
        return best, arg, raw
