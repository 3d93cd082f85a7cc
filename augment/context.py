"""What a step is given when a run starts: the data, the language, and lazily built shared backends.

One :class:`RunContext` per run. Steps read the seeds, pool, dev rows and language from it, and ask
it for the backends they share: the generator (one per generator config: a model loads once however
many LLM methods use it), the embedder, the response cache, and the **run-level** token budget that
every LLM method draws from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .generators import GeneratorConfig
from .generators.base import Completion, Decodings, Prompt
from .record import CLASSIFICATION, Record

logger = logging.getLogger(__name__)


class TokenBudget:
    """``--max-tokens-total`` for the whole run: tokens really generated (cache hits are free) by
    every generator of the run count against one limit. ``None``: no limit."""

    def __init__(self, limit: int | None, generators: Callable[[], Sequence[Any]]) -> None:
        self.limit = limit
        self._generators = generators
        self._told: set[str] = set()

    @property
    def spent(self) -> int:
        return sum(g.prompt_tokens + g.completion_tokens for g in self._generators())

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.spent, 0)

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def stop(self, who: str) -> bool:
        """True when the budget is spent (said once per step, in the log)."""
        if not self.exhausted:
            return False
        if who not in self._told:
            self._told.add(who)
            logger.warning("%s: the run's token budget (%d) is spent; stopping generation cleanly", who, self.limit)
        return True


@dataclass
class RunContext:
    """The run, as steps see it. Built by the pipeline; tests build one directly."""

    seeds: Sequence[Record]
    language: str = "en"
    task: str = CLASSIFICATION
    fields: Sequence[str] = ("text",)
    seed: int = 13
    pool: Sequence[Record] = ()
    dev: Sequence[Record] = ()
    generator_config: GeneratorConfig = field(default_factory=GeneratorConfig)
    planning: bool = False  # a dry run: setup() must not load a model
    recipe_chooses: bool = False  # the recipe picks what to keep (pool labelling runs ungated)
    embedder_factory: Callable[[], Any] | None = None
    response_cache: Any = None  # a generators.ResponseCache, or None (no caching)

    def __post_init__(self) -> None:
        self._generators: dict[str, Any] = {}
        self._views: dict[tuple[str, str], CountedView] = {}
        self._embedder: Any = None
        self.budget = TokenBudget(self.generator_config.max_tokens_total, lambda: list(self._generators.values()))

    # -- shared backends -----------------------------------------------------------------------
    def generator(self, config: GeneratorConfig | None = None, *, owner: str | None = None) -> Any:
        """The run's (cached, counted) generator for ``config`` (default: the run's), loaded once and
        shared by every step that asks. ``owner`` (a method name) gets a view that also counts its
        own calls and tokens, for the manifest."""
        from dataclasses import asdict

        from .generators import CachedGenerator, load_generator
        from .record import stable_hash

        cfg = config or self.generator_config
        key = stable_hash(asdict(cfg), self.language)
        if key not in self._generators:
            self._generators[key] = CachedGenerator(load_generator(cfg, self.language), self.response_cache)
        if owner is None:
            return self._generators[key]
        if (owner, key) not in self._views:
            self._views[owner, key] = CountedView(self._generators[key], owner)
        return self._views[owner, key]

    def usage(self) -> dict[str, Any]:
        """Per method: the generator it used, its calls, cache hits and tokens."""
        return {
            view.owner: {
                "backend": view.backend,
                "model": view.model_id,
                "calls": view.calls,
                "cache_hits": view.hits,
                "prompt_tokens": view.prompt_tokens,
                "completion_tokens": view.completion_tokens,
                "budget_exhausted": self.budget.exhausted,
            }
            for view in self._views.values()
        }

    def generators(self) -> list[Any]:
        """The generators built so far (for the manifest's call and token counts)."""
        return list(self._generators.values())

    @property
    def embedder(self) -> Any:
        """The run's embedder, built on first use."""
        if self._embedder is None:
            if self.embedder_factory is None:
                raise RuntimeError("this run has no embedder")
            self._embedder = self.embedder_factory()
        return self._embedder

    @embedder.setter
    def embedder(self, value: Any) -> None:
        self._embedder = value


class CountedView:
    """A shared generator as one method sees it: the same model and cache, the method's own counts."""

    def __init__(self, shared: Any, owner: str) -> None:
        self.shared, self.owner = shared, owner
        self.backend, self.model_id, self.revision, self.chat = (
            shared.backend,
            shared.model_id,
            shared.revision,
            shared.chat,
        )
        self.inner = getattr(shared, "inner", shared)
        self.calls = self.hits = self.prompt_tokens = self.completion_tokens = 0

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decodings) -> list[list[Completion]]:
        """The shared generator's ``generate`` (``decoding``: shared or one per prompt), counted."""
        before = (self.shared.calls, self.shared.hits, self.shared.prompt_tokens, self.shared.completion_tokens)
        try:
            return self.shared.generate(prompts, n, decoding)
        finally:
            self.calls += self.shared.calls - before[0]
            self.hits += self.shared.hits - before[1]
            self.prompt_tokens += self.shared.prompt_tokens - before[2]
            self.completion_tokens += self.shared.completion_tokens - before[3]
