"""Slow steps report progress off a terminal too: log lines with counts and rate (issue 13)."""

from __future__ import annotations

import logging

from augment.progress import LogProgress, progress


def test_off_a_terminal_progress_is_log_lines_with_counts_and_rate(caplog, capsys):
    caplog.set_level(logging.INFO, logger="augment.progress")
    with progress(10, "swap:text", "seed", every=0.0) as bar:  # pytest's stderr is not a terminal
        assert isinstance(bar, LogProgress)
        for _ in range(10):
            bar.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("swap:text: 1/10 seeds (10%), ") and lines[0].endswith(" seeds/s")
    assert lines[-1].startswith("swap:text: 10/10 seeds (100%)") and lines[-1].endswith("(done)")


def test_a_quick_step_says_nothing(caplog):
    caplog.set_level(logging.INFO, logger="augment.progress")
    with progress(3, "embed", "text") as bar:
        bar.update(3)
    assert caplog.records == []
