"""Read an `augment expand` output as a `datasets.Dataset` ready for training.

The task fields (``text``/``text_pair``/``label`` or ``instruction``/``input``/``output``) are the
training columns; ``origin`` and ``method`` stay so a caller can train on seeds only, or per method.

:func:`read_examples` reads the same files as rows of :class:`augment.record.Record`, the engine's one
row type (task fields, label, origin, method, parent ids, scores), inside :class:`Examples`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from augment.config import DataConfig
from augment.errors import DataError
from augment.io import expand_rows, load_records
from augment.record import PSEUDO_LABELLED, SEED, TASK_FIELDS, Record

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
    for _, row in expand_rows(p):
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


# -- examples with lineage, from any input --------------------------------------------------------
def confidence(row: Record) -> float | None:
    """The pseudo-labeller's calibrated confidence (``scores.confidence``), when the row has one."""
    conf = row.scores.get("confidence")
    return float(conf) if isinstance(conf, (int, float)) else None


@dataclass
class Examples:
    """Training or test rows (augment's :class:`~augment.record.Record`: task fields, label and
    lineage; seeds have no parents) read from one file."""

    task: str
    rows: list[Record]
    path: Path
    lineage: bool  # True for an `augment expand` output; False for a plain file (every row a seed)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> list[str]:
        return sorted({r.label for r in self.rows if r.label is not None})

    def subset(self, rows: list[Record]) -> Examples:
        return Examples(self.task, rows, self.path, self.lineage)


def _expand_output(path: Path) -> Path | None:
    """The augmented.jsonl of an expand output folder or the file itself; None for other inputs."""
    if path.is_dir():
        f = path / "augmented.jsonl"
        return f if f.exists() else None
    if path.suffix.lower() in (".jsonl", ".ndjson") and path.exists():
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        first = json.loads(line)
                    except json.JSONDecodeError:
                        return None  # read_rows reports it with its line number
                    ok = isinstance(first, dict) and first.get("task") in TASK_FIELDS and "origin" in first
                    return path if ok else None
    return None


def read_examples(
    path: str | Path, columns: DataConfig | None = None, *, task: str = "auto", require_labels: bool = True
) -> Examples:
    """Read an expand output (folder or ``augmented.jsonl``, lineage kept) or a plain file of
    ``text,label`` / ``instruction,input,output`` rows (.jsonl, .json, .csv, .tsv, .parquet), whose
    rows all count as seeds. Errors name the file, the row and the problem.
    """
    p = Path(path)
    columns = columns or DataConfig()
    expand_file = _expand_output(p)
    if expand_file is not None:
        return _read_expand_output(expand_file, task, require_labels)
    if p.is_dir() and not (p / "dataset_info.json").exists() and not (p / "dataset_dict.json").exists():
        raise DataError(f"{p}: a folder without augmented.jsonl (expected an `augment expand` output)")
    kind, records = (
        load_records(p, columns, task=task, labelled=True)
        if require_labels
        else _unlabelled(p, columns, task)
    )
    # every row of a plain file counts as a seed (an unlabelled one is read as a pool row)
    rows = [r if r.origin == SEED else replace(r, origin=SEED) for r in records]
    if not rows:
        raise DataError(f"{p}: no rows")
    return Examples(kind, rows, p, lineage=False)


def _unlabelled(p: Path, columns: DataConfig, task: str):
    """Rows for prediction: labels optional (classification), outputs optional (instruction)."""
    from augment.io import detect_task, read_rows
    from augment.record import seed_record

    loaded = read_rows(p)
    kind = detect_task(loaded.columns, columns) if task == "auto" else task
    if kind == "classification":
        has_labels = columns.label_column in loaded.columns
    else:
        has_labels = columns.output_column in loaded.columns
    if has_labels:
        return load_records(p, columns, task=kind, labelled=True)
    if kind == "classification":
        return kind, load_records(p, columns, task="classification", labelled=False)[1]
    out = []
    for i, row in enumerate(loaded.rows):
        instr = row.get(columns.instruction_column)
        if instr is None or not str(instr).strip():
            raise DataError(f"{loaded.where(i)}: empty text in column {columns.instruction_column!r}")
        fields = {"instruction": str(instr), "input": str(row.get(columns.input_column) or ""), "output": ""}
        out.append(seed_record(kind, fields, None, origin=SEED, source={"file": str(p)}))
    return kind, out


def _read_expand_output(p: Path, task: str, require_labels: bool) -> Examples:
    rows: list[Record] = []
    kind = None
    for i, row in expand_rows(p):
        if kind is None:
            kind = row["task"]
            if task != "auto" and task != kind:
                raise DataError(f"{p}: holds {kind} rows, but the task is {task}")
        elif row["task"] != kind:
            raise DataError(f"{p}:{i}: a {row['task']} row in a file of {kind} rows")
        first = TASK_FIELDS[kind][0]
        text = row.get(first)
        if text is None or not str(text).strip():
            raise DataError(f"{p}:{i}: empty text in column {first!r}")
        label = row.get("label")
        if kind == "classification" and require_labels and (label is None or not str(label).strip()):
            raise DataError(f"{p}:{i}: missing label in column 'label'")
        clean = {k: v for k, v in row.items() if k not in TASK_FIELDS[kind] or v is not None}
        clean.update(id=str(row.get("id") or f"row-{i}"), label=None if label is None else str(label))
        rows.append(Record.from_dict(clean))
    if not rows:
        raise DataError(f"{p}: no rows")
    return Examples(kind or "classification", rows, p, lineage=True)


def select(examples: Examples, *, origins=None, methods=None) -> Examples:
    """Keep rows of these origins, and/or seeds plus rows of these methods (as load_training_data)."""
    origins = set(origins) if origins is not None else None
    methods = set(methods) if methods is not None else None
    out = []
    for r in examples.rows:
        if origins is not None and r.origin not in origins:
            continue
        if methods is not None and r.origin != SEED and r.method not in methods:
            continue
        out.append(r)
    return examples.subset(out)


def row_weights(examples: Examples, *, pseudo: str | float = "confidence", aug: float = 1.0) -> list[float]:
    """The training weight of each row: seeds 1, pseudo-labelled rows their confidence (or ``pseudo``
    when it is a number; 1 when a row has no confidence), every other generated row ``aug``."""
    out = []
    for r in examples.rows:
        if r.origin == SEED:
            out.append(1.0)
        elif r.origin == PSEUDO_LABELLED:
            conf = confidence(r)
            if pseudo == "confidence":
                out.append(1.0 if conf is None else min(1.0, max(0.0, conf)))
            else:
                out.append(float(pseudo))
        else:
            out.append(float(aug))
    return out


def weight_summary(examples: Examples, weights: list[float]) -> dict[str, dict[str, float]]:
    """Rows and mean weight by origin, for the manifest."""
    acc: dict[str, list[float]] = {}
    for r, w in zip(examples.rows, weights, strict=True):
        acc.setdefault(r.origin, []).append(w)
    return {o: {"rows": len(ws), "mean_weight": round(sum(ws) / len(ws), 4)} for o, ws in sorted(acc.items())}
