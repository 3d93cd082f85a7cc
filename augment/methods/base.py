"""What every augmentation method is, and the base classes that own the loop and the lineage.

Two roles, one contract each:

* :class:`SeedMethod` turns seed rows into candidates. The base owns the per-seed loop and stamps
  lineage (TextAttack's ``Transformation.__call__`` is the model): a subclass implements
  :meth:`SeedMethod.transform` (one seed) or :meth:`SeedMethod.transform_batch` (a batch, for batched
  model calls) and returns :class:`Outcome` s; the base turns them into records, with the field and
  relation as typed lineage fields, and turns a failed or unchanged outcome into a rejected candidate
  with stage ``generate``. A method never returns its input as a kept candidate.
* :class:`PoolLabeller` labels rows of an unlabelled pool (pseudo-labelling); the pipeline calls
  :meth:`PoolLabeller.label_pool` once per field.

A method is registered with its typed config (see :mod:`augment.steps`)::

    @dataclass
    class UrgentConfig:
        marks: int = field(default=1, metadata={"help": "how many times to append 急"})

        def __post_init__(self) -> None:
            if self.marks < 1:
                raise ConfigError(f"marks must be >= 1, got {self.marks}")

    @register_method("urgent", UrgentConfig, summary="appends 急 (an example)")
    class Urgent(SeedMethod):
        backend = "python"

        def transform(self, seed, field, n, run_seed):
            return [Outcome(seed.fields[field] + "急" * (self.config.marks + k)) for k in range(n)]

(tests/test_steps.py runs this example end to end.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..language import normalise
from ..record import Lineage, Record, Rejection, stable_hash
from ..steps import build, names, register_method

if TYPE_CHECKING:
    from ..context import RunContext

__all__ = [
    "Method",
    "Outcome",
    "PoolLabeller",
    "SeedMethod",
    "available_methods",
    "build_method",
    "candidate_seed",
    "register_method",
]


def candidate_seed(run_seed: int, method: str, parent_id: str, index: int | str) -> int:
    """The random seed of one candidate: independent of batch size and batch order."""
    return int(stable_hash(run_seed, method, parent_id, index, length=8), 16)


@dataclass
class Outcome:
    """What a method made of one seed, for one of its ``n`` slots.

    ``text`` is the new value of the field (or ``fields`` replaces several fields of the row, for
    whole new rows); ``failure`` = (code, detail) marks a slot that produced nothing usable: it becomes
    a rejected candidate, never a silent drop. ``params`` adds per-candidate lineage (decoding, pivot).
    """

    text: str | None = None
    fields: dict[str, str] | None = None
    label: str | None = None
    random_seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    parents: tuple[str, ...] = ()  # further parents after the seed (demonstrations)
    failure: tuple[str, str] | None = None
    slot: int | None = None  # which of the n slots (default: its position); ids hash the slot


class _Step:
    """What both roles share: name, typed config, backend/model for the lineage, the run context."""

    role: ClassVar[str] = "seeds"
    backend: str = "unset"

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        self.model: str | None = None
        self.model_revision: str | None = None
        self.ctx: RunContext | None = None

    def setup(self, ctx: RunContext) -> None:
        """Called once per run, before any generation; loads what the method needs (not when
        ``ctx.planning``: a dry run loads nothing)."""
        self.ctx = ctx
        self.prepare(ctx)

    def prepare(self, ctx: RunContext) -> None:  # noqa: B027 - an optional hook
        """Subclasses: check the data and load models here."""

    def params(self) -> dict[str, Any]:
        """The parameters recorded in every row's lineage (default: the config's fields)."""
        return {k: v for k, v in dataclasses.asdict(self.config).items() if v not in (None, {}, [])}

    def plan(self, seeds: Sequence[Record], field: str, n: int) -> dict[str, Any]:
        """A dry run's estimate (LLM calls, tokens) without loading a model; {} when there is none."""
        return {}

    @property
    def exhausted(self) -> bool:
        """True when the run's token budget stopped this method (LLM methods)."""
        return False


class SeedMethod(_Step):
    """A method that rewrites seeds (or writes new rows inspired by them). See the module doc."""

    role: ClassVar[str] = "seeds"
    relation: ClassVar[str] = "rewrite"  # "demo": the seeds were demonstrations, not rewritten
    uses_llm: ClassVar[bool] = False  # draws on the run's token budget

    @property
    def exhausted(self) -> bool:
        return self.uses_llm and self.ctx is not None and self.ctx.budget.exhausted

    def lineage(self, field_name: str, random_seed: int | None, extra: dict[str, Any] | None = None,
                model: str | None = None) -> Lineage:
        return Lineage(
            backend=self.backend,
            model=model or self.model,
            model_revision=self.model_revision,
            params={**self.params(), **(extra or {})},
            random_seed=random_seed,
            field=field_name,
            relation=self.relation,
        )

    # -- the loop ------------------------------------------------------------------------------
    def generate(self, batch: Sequence[Record], field: str, n: int, run_seed: int) -> list[Record]:
        """Up to ``n`` candidates per seed, in seed order; failed slots come back rejected."""
        if self.uses_llm and self.ctx is not None and self.ctx.budget.stop(self.name):
            return []
        results = self.transform_batch(batch, field, n, run_seed)
        out: list[Record] = []
        for seed, outcomes in zip(batch, results, strict=True):
            for index, outcome in enumerate(outcomes[:n]):
                slot = index if outcome.slot is None else outcome.slot
                out.append(self.candidate(seed, field, slot, outcome))
        return out

    def transform_batch(
        self, batch: Sequence[Record], field: str, n: int, run_seed: int
    ) -> list[list[Outcome]]:
        """Outcomes for every seed of a batch (override to batch model calls)."""
        return [self.transform(seed, field, n, run_seed) for seed in batch]

    def transform(self, seed: Record, field: str, n: int, run_seed: int) -> list[Outcome]:
        """Up to ``n`` outcomes for one seed."""
        raise NotImplementedError(f"{type(self).__name__} implements transform() or transform_batch()")

    def candidate(self, seed: Record, field: str, index: int, outcome: Outcome) -> Record:
        """One outcome as a record: lineage stamped, parents set, failures and echoes rejected."""
        lineage = self.lineage(field, outcome.random_seed, outcome.params, outcome.model)
        original = seed.fields.get(field, "")
        text = outcome.text if outcome.fields is None else outcome.fields.get(field, "")
        cand = seed.derive(field, text or "", method=self.name, lineage=lineage, index=index, label=outcome.label)
        if outcome.fields is not None:
            cand = dataclasses.replace(cand, fields={**cand.fields, **outcome.fields})
        if outcome.parents:
            cand = dataclasses.replace(cand, parent_ids=(seed.id, *outcome.parents))
        if outcome.failure is not None:
            return cand.rejected(Rejection("generate", *outcome.failure))
        if outcome.fields is None and not (text or "").strip():
            return cand.rejected(Rejection("generate", "empty", "the method produced no text"))
        if outcome.fields is None and self.relation == "rewrite" and normalise(text or "") == normalise(original):
            return cand.rejected(Rejection("generate", "unchanged", "the method returned its input"))
        return cand


class PoolLabeller(_Step):
    """A method that labels rows of the unlabelled pool (``--unlabeled``) instead of rewriting seeds."""

    role: ClassVar[str] = "pool"

    def label_pool(
        self, pool: Sequence[Record], seeds: Sequence[Record], field: str, embedder: Any, run_seed: int
    ) -> list[Record]:
        """A candidate for every pool row: labelled ones kept, the rest rejected with a reason."""
        raise NotImplementedError

    def relabeller(self, run_seed: int) -> Any:
        """``(train_x, train_y, pool_x) -> (labels, confidence)``, or None (used by the recipe)."""
        return None


Method = SeedMethod | PoolLabeller


def available_methods() -> list[str]:
    return names("method")


def build_method(name: str, params: dict[str, Any] | Any | None = None) -> SeedMethod | PoolLabeller:
    """A method by name, its params validated against its registered config."""
    return build("method", name, params)

