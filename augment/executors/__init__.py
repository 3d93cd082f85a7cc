"""Where `expand` does its work: in this process (``local``, the default) or on Ray Data (``ray``).

The pipeline (``augment/pipeline.py``) owns the run: inputs, checkpoints, the order of candidates,
the filters, the recipe and the outputs. An executor owns two things only, the parts of a run that
are the same work over many independent items:

* :meth:`Executor.generate`: the per-seed methods over the run's batches of seeds (one
  :class:`Job` per method and field). It hands every finished batch back (``Job.on_block``) as it
  arrives, and the pipeline checkpoints it there, so ``--resume`` works the same whoever made it.
* :meth:`Executor.embed`: the vectors of texts the pool labelling, the filters and the recipe need,
  put into the run's :class:`~augment.embedcache.CachedEmbedder`.

Everything that needs all candidates at once (dedup against everything kept, novelty, diversity,
quotas, the recipe, writing) runs in the driver whichever executor made the candidates. The
executor never changes an output: a run resumed with another executor is the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..config import ExpandConfig
    from ..context import RunContext
    from ..embedcache import CachedEmbedder
    from ..methods import Method, SeedMethod
    from ..record import Record

OnBlock = Callable[[Sequence["Record"], list["Record"]], None]
"""``on_block(batch, records)``: one finished batch of seeds and the candidates made from them."""


@dataclass
class Job:
    """One per-seed method on one field: the batches still to run (the run's batches, less the seeds
    a resumed run has), and where each finished one goes."""

    method: SeedMethod
    field: str
    batches: list[list[Record]]
    on_block: OnBlock
    total: int = 0  # seeds of the run, for the progress line
    reused: int = 0  # of them, done before this run (resumed)


class Executor(Protocol):
    kind: str

    def setup(self, method: Method, ctx: RunContext) -> None:
        """Set a method up for the driver's side of the run."""

    def start(self, ctx: RunContext, embedder_spec: str) -> None:
        """Get ready to run (Ray: connect or start one); before the output folder is claimed."""

    def generate(self, jobs: Sequence[Job], n: int, run_seed: int) -> dict[str, float]:
        """Run every job's batches; seconds per method (wall time until its last batch came back)."""

    def embed(self, embedder: CachedEmbedder, texts: Sequence[str]) -> None:
        """Make sure ``embedder`` holds a vector for every text."""

    def usage(self, ctx: RunContext) -> dict[str, Any]:
        """The manifest's ``generation``: per LLM method, calls, cache hits and tokens."""

    def info(self) -> dict[str, Any]:
        """The manifest's ``executor``."""

    def close(self) -> None:
        """Release what :meth:`start` took."""


def make_executor(config: ExpandConfig) -> Executor:
    """The executor ``config.executor`` names; ``ray`` without Ray installed is a one-line error."""
    if config.executor == "ray":
        from .raydata import RayExecutor

        return RayExecutor(config)
    from .local import LocalExecutor

    return LocalExecutor()


__all__ = ["Executor", "Job", "OnBlock", "make_executor"]
