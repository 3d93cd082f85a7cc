"""Filters: each gives every candidate a verdict (keep or drop, a score, and on a drop a reason).

One file per filter. A filter file declares its config dataclass (each field with
``metadata["help"]``; range checks in ``__post_init__`` raising :class:`ConfigError` with the field
name first) and registers the filter with :func:`augment.steps.register_filter`::

    @dataclass
    class LengthConfig:
        max_chars: int = field(default=500, metadata={"help": "drop candidates longer than this"})

    @register_filter("length", LengthConfig, summary="drops overlong candidates (an example)")
    class LengthFilter(FilterStep):
        needs_embeddings = False
        default_position = 15  # in the default chain, after quality (10); None: opt-in

        def __call__(self, candidates, ctx):
            return [Verdict(len(c.fields[ctx.field]) <= self.config.max_chars) for c in candidates]

That file is the whole change: every module of this package is imported (so registered) here, and
:class:`augment.config.FilterConfig` takes its flat keys (``filters.max_chars``) from the registered
configs, so the YAML file, the manifest's thresholds and ``augment list`` all know the new filter.
Parameter names must be unique across filters (the YAML keys are flat).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from .. import steps
from .base import Filter, FilterContext, FilterStep, Verdict, seed_baseline
from .dedup import DedupFilter
from .diversity import DiversityFilter
from .label import LabelConsistencyFilter
from .novelty import NoveltyFilter
from .quality import QualityFilter
from .script import ScriptFilter
from .similarity import SimilarityBandFilter

for _module in pkgutil.iter_modules(__path__):  # every filter file registers itself on import
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "DedupFilter",
    "DiversityFilter",
    "Filter",
    "FilterContext",
    "FilterStep",
    "LabelConsistencyFilter",
    "NoveltyFilter",
    "QualityFilter",
    "ScriptFilter",
    "SimilarityBandFilter",
    "Verdict",
    "build_chain",
    "default_chain",
    "filter_specs",
    "make_filter",
    "seed_baseline",
]


def filter_specs() -> list[steps.StepSpec]:
    """Every registered filter: the default chain in its order, then the opt-in ones by name."""
    found = steps.specs("filter")

    def position(s: steps.StepSpec) -> int | None:
        return getattr(s.factory, "default_position", None)

    chain = sorted((s for s in found if position(s) is not None), key=lambda s: (position(s), s.name))
    return chain + [s for s in found if position(s) is None]


def default_chain() -> tuple[str, ...]:
    """The filters a run uses when ``filters.chain`` is not given, in order."""
    return tuple(s.name for s in filter_specs() if getattr(s.factory, "default_position", None) is not None)


def make_filter(name: str, params: Any = None, *, language: str = "auto", seed: int = 0) -> FilterStep:
    """One filter from a mapping (validated) or its built config, set up for a run's language and seed:
    ``make_filter("dedup", {"near_duplicate": 0.9}, language="zh")``."""
    return steps.build("filter", name, params).setup(language=language, seed=seed)


def build_chain(config: Any, language: str, seed: int = 0) -> list[FilterStep]:
    """The filters named in ``config.chain`` (a FilterConfig), in order, each with its thresholds."""
    return [
        make_filter(name, config.step_config(name), language=language, seed=seed) for name in config.chain
    ]
