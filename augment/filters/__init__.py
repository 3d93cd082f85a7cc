"""Filters: each gives every candidate a verdict (keep or drop, a score, and on a drop a reason)."""

from __future__ import annotations

from .base import Filter, FilterContext, Verdict, seed_baseline
from .dedup import DedupFilter
from .diversity import DiversityFilter
from .label import LabelConsistencyFilter
from .novelty import NoveltyFilter
from .quality import QualityFilter
from .script import ScriptFilter
from .similarity import SimilarityBandFilter

__all__ = [
    "DedupFilter",
    "DiversityFilter",
    "Filter",
    "FilterContext",
    "LabelConsistencyFilter",
    "NoveltyFilter",
    "QualityFilter",
    "ScriptFilter",
    "SimilarityBandFilter",
    "Verdict",
    "build_chain",
    "seed_baseline",
]


def build_chain(config, language: str, seed: int = 0) -> list[Filter]:
    """The filters named in ``config.chain`` (a FilterConfig), in order."""
    factories = {
        "quality": lambda: QualityFilter(config.min_chars, config.min_length_ratio, config.max_length_ratio),
        "script": lambda: ScriptFilter(language),
        "similarity": lambda: SimilarityBandFilter(config.min_similarity, config.max_similarity),
        "dedup": lambda: DedupFilter(
            config.near_duplicate, config.minhash_threshold, language=language, seed=seed
        ),
        "label": lambda: LabelConsistencyFilter(config.label_margin, config.label_classifier, seed=seed),
        "novelty": lambda: NoveltyFilter(config.min_novelty),
        "diversity": lambda: DiversityFilter(config.per_class_budget),
    }
    return [factories[name]() for name in config.chain]
