"""Filters: each gives every candidate a verdict (keep or drop, a score, and on a drop a reason)."""

from __future__ import annotations

from .base import Filter, FilterContext, Verdict, seed_baseline
from .dedup import DedupFilter
from .quality import QualityFilter
from .similarity import SimilarityBandFilter

__all__ = [
    "DedupFilter",
    "Filter",
    "FilterContext",
    "QualityFilter",
    "SimilarityBandFilter",
    "Verdict",
    "seed_baseline",
]
