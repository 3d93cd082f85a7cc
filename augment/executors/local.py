"""The default executor: every batch in this process, one after the other."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import Job

if TYPE_CHECKING:
    from ..context import RunContext
    from ..embedcache import CachedEmbedder
    from ..methods import Method

logger = logging.getLogger(__name__)


class LocalExecutor:
    """Methods run where the pipeline runs; the run's TokenBudget stops LLM methods between batches."""

    kind = "local"

    def setup(self, method: Method, ctx: RunContext) -> None:
        method.setup(ctx)

    def start(self, ctx: RunContext, embedder_spec: str) -> None:
        pass

    def generate(self, jobs: Sequence[Job], n: int, run_seed: int) -> dict[str, float]:
        """One method after the other (in the run's order), each batch after the other."""
        from ..progress import progress

        seconds: dict[str, float] = {}
        for job in jobs:
            m = job.method
            if m.name not in seconds:
                logger.info("stage %s", f"generate:{m.name}")
            t = time.perf_counter()
            with progress(job.total, f"{m.name}:{job.field}", "seed") as bar:
                bar.update(job.reused)
                for batch in job.batches:
                    # a budget stop leaves the rest for --resume
                    recs = [] if m.exhausted else m.generate(batch, job.field, n, run_seed)
                    job.on_block(batch, recs)
                    bar.update(len(batch))
            seconds[m.name] = seconds.get(m.name, 0.0) + time.perf_counter() - t
        return seconds

    def embed(self, embedder: CachedEmbedder, texts: Sequence[str]) -> None:
        if texts:
            embedder.encode(texts)

    def usage(self, ctx: RunContext) -> dict[str, Any]:
        return ctx.usage()

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def close(self) -> None:
        pass
