"""Read an `augment expand` output as a `datasets.Dataset` ready for training.

The task fields (``text``/``text_pair``/``label`` or ``instruction``/``input``/``output``) are the
training columns; ``origin`` and ``method`` stay so a caller can train on seeds only, or per method.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from augment.errors import DataError
from augment.record import TASK_FIELDS

KEEP_COLUMNS = ("id", "origin", "method")


def load_training_data(
    path: str | Path,
    *,
    origins: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
):
    """Load ``augmented.jsonl`` (or the folder holding it) into a ``datasets.Dataset``.

    Args:
        path: the expand output folder or its ``augmented.jsonl``.
        origins: keep only rows of these origins (e.g. ``{"seed"}`` for the seed-only baseline).
        methods: keep seeds plus rows made by these methods.
    """
    import datasets

    p = Path(path)
    if p.is_dir():
        p = p / "augmented.jsonl"
    if not p.exists():
        raise DataError(f"{p}: no such file")
    origins = set(origins) if origins is not None else None
    methods = set(methods) if methods is not None else None
    rows = []
    task = None
    with p.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{i}: malformed JSON ({exc.msg})") from None
            if "task" not in row or row["task"] not in TASK_FIELDS:
                raise DataError(f"{p}:{i}: not an augment-engine row (missing or unknown 'task')")
            task = task or row["task"]
            if origins is not None and row["origin"] not in origins:
                continue
            if methods is not None and row["origin"] != "seed" and row.get("method") not in methods:
                continue
            cols = [c for c in TASK_FIELDS[task] if c in row]
            if task == "classification":
                cols.append("label")
            rows.append({c: row[c] for c in (*cols, *KEEP_COLUMNS)})
    return datasets.Dataset.from_list(rows)
