"""Progress for anything slow: a tqdm bar (counts and rate) on a terminal, plain log lines otherwise.

A run in CI, under ``nohup`` or piped to a file has no terminal, and tqdm then either clutters the
log with carriage returns or says nothing. :func:`progress` gives the same ``update(n)`` / context
manager interface either way; off a terminal it logs ``desc: done/total unit (pct), rate/s`` at
most every ``every`` seconds, and once when done (if it took longer than that).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

logger = logging.getLogger("augment.progress")

EVERY_S = 15.0  # seconds between two log lines off a terminal


class LogProgress:
    """tqdm's interface, as log lines."""

    def __init__(self, total: int, desc: str, unit: str, every: float = EVERY_S) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = 0
        self.started = self.last = time.monotonic()

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        return f"{self.desc}: {self.n}/{self.total} {self.unit}s{pct}, {self.n / elapsed:.1f} {self.unit}s/s"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            logger.info(self._line())

    def close(self) -> None:
        if time.monotonic() - self.started >= self.every:
            logger.info(self._line() + " (done)")

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: int, desc: str, unit: str = "row", *, every: float = EVERY_S) -> Any:
    """A tqdm bar on a terminal (stderr), else a :class:`LogProgress`; use as a context manager."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=False)
    return LogProgress(total, desc, unit, every)
