"""What every filter provides, and the shared context (embeddings, calibration) filters read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from ..record import Record


@dataclass(frozen=True)
class Verdict:
    keep: bool
    score: float | None = None
    code: str = ""  # on a drop: short reason, e.g. "below_min"
    detail: str = ""  # on a drop: the numbers behind it


@dataclass
class FilterContext:
    """What filters compare against: the seeds, their embeddings, and the run's calibration."""

    seeds: Sequence[Record]
    field: str
    seed_vectors: np.ndarray
    candidate_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    baseline: float = 0.0  # median cosine between two different seeds
    # the --test/--eval rows' texts in this field and their embeddings (the decontaminate filter)
    eval_texts: Sequence[str] = ()
    eval_vectors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.seed_index = {s.id: i for i, s in enumerate(self.seeds)}

    def calibrate(self, cosine: np.ndarray | float) -> np.ndarray | float:
        """Map raw cosine to the run's scale: 0 = as alike as two different seeds, 1 = identical.
        Rounded to 6 decimals, so a threshold decision does not flip on the last bits of a dot product
        (which change with the thread count and batch shape of the matrix products)."""
        return np.round((cosine - self.baseline) / (1.0 - self.baseline), 6)

    def parent_of(self, cand: Record) -> Record | None:
        """The seed this candidate rewrites; None for pool rows and for demo-inspired generations."""
        if not cand.rewrites_parent:
            return None
        for pid in cand.parent_ids:
            if pid in self.seed_index:
                return self.seeds[self.seed_index[pid]]
        return None


class Filter(Protocol):
    name: str
    needs_embeddings: bool

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        """One verdict per candidate, in order. Candidates arrive in generation order."""
        ...


class FilterStep:
    """Base of the registered filters. The registry builds one as ``cls(name, config)`` (``config``:
    the filter's typed config); :meth:`setup` gives it the run's language and seed, which the filters
    that need them read as ``self.language`` and ``self.seed``. A subclass implements ``__call__``."""

    needs_embeddings: ClassVar[bool] = True  # the pipeline embeds the candidates before calling it
    # place in the default chain (``config.FILTERS``, ascending): cheap text checks first, then the
    # embedding comparisons, selection last; None: opt-in, run only when ``filters.chain`` names it
    default_position: ClassVar[int | None] = None

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        self.language = "auto"
        self.seed = 0

    def setup(self, *, language: str = "auto", seed: int = 0) -> FilterStep:
        """The run's language and random seed; returns the filter, so ``build(...).setup(...)`` reads."""
        self.language, self.seed = language, seed
        return self

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.config!r})"


def seed_baseline(vectors: np.ndarray, max_pairs: int = 20000, seed: int = 0) -> float:
    """Median cosine over pairs of different rows: what "unrelated but in-domain" scores here."""
    n = len(vectors)
    if n < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    if n * (n - 1) // 2 <= max_pairs:
        sims = vectors @ vectors.T
        vals = sims[np.triu_indices(n, k=1)]
    else:
        i = rng.integers(0, n, size=max_pairs)
        j = rng.integers(0, n, size=max_pairs)
        keep = i != j
        vals = np.einsum("ij,ij->i", vectors[i[keep]], vectors[j[keep]])
    return float(min(np.median(vals), 0.99))
