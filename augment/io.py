"""Reading seed and pool files through `datasets`, and writing outputs atomically.

Text formats (JSONL, JSON, CSV/TSV) are checked line by line first, so a bad file gets a one-line
error naming the file, the line and the problem; then `datasets` does the loading (it also reads
Parquet and folders written by ``Dataset.save_to_disk``).
"""

from __future__ import annotations

import csv
import difflib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DataConfig
from .errors import DataError
from .record import CLASSIFICATION, INSTRUCTION, POOL, SEED, Record, seed_record

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".tsv"}


@dataclass
class LoadedRows:
    """Raw rows of one file with the position of each: ``("line", 7)`` or ``("row", 3)``."""

    path: Path
    rows: list[dict[str, Any]]
    positions: list[tuple[str, int]]
    columns: list[str]

    def where(self, i: int) -> str:
        """``seeds.jsonl:7`` for a line, ``seeds.csv:row 3`` for a row: for error messages."""
        kind, n = self.positions[i]
        return f"{self.path}:{n}" if kind == "line" else f"{self.path}:{kind} {n}"


# -- low-level readers -------------------------------------------------------------------------
def _decode_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    out = []
    for i, raw in enumerate(lines, 1):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}:{i}: undecodable bytes at column {exc.start + 1} (the file must be UTF-8)"
            ) from None
    return out


def _check_jsonl(path: Path) -> list[int]:
    """Validate every non-blank line; return the 1-based line number of each row."""
    numbers = []
    for i, line in enumerate(_decode_lines(path), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{i}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}")
        numbers.append(i)
    return numbers


def _check_json_array(path: Path) -> int:
    text = "\n".join(_decode_lines(path))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    if not isinstance(obj, list) or not all(isinstance(o, dict) for o in obj):
        raise DataError(f"{path}: a .json file must hold a list of objects (or use JSONL)")
    return len(obj)


def _check_csv(path: Path, delimiter: str) -> int:
    lines = _decode_lines(path)
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: the file is empty (expected a header row)")
    count = 0
    for row in reader:
        if not row or all(not c.strip() for c in row):
            continue
        count += 1
        if len(row) != len(header):
            raise DataError(f"{path}:{reader.line_num}: expected {len(header)} fields, found {len(row)}")
    return count


def read_rows(path: str | Path) -> LoadedRows:
    """Load any supported file into plain dict rows through `datasets`."""
    import datasets

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    kind = "disk" if p.is_dir() else p.suffix.lower()
    try:
        if kind == "disk":
            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                if "train" not in ds:
                    raise DataError(f"{p}: a DatasetDict without a 'train' split ({list(ds)})")
                ds = ds["train"]
            positions = [("row", i + 1) for i in range(len(ds))]
        elif kind in (".jsonl", ".ndjson") or (kind == ".json" and not _looks_like_array(p)):
            lines = _check_jsonl(p)
            if not lines:
                raise DataError(f"{p}: the file has no rows")
            ds = datasets.load_dataset("json", data_files=str(p), split="train")
            positions = [("line", n) for n in lines]
        elif kind == ".json":
            n = _check_json_array(p)
            if n == 0:
                raise DataError(f"{p}: the file has no rows")
            ds = datasets.load_dataset("json", data_files=str(p), split="train")
            positions = [("item", i + 1) for i in range(n)]
        elif kind in (".csv", ".tsv"):
            delimiter = "\t" if kind == ".tsv" else ","
            if _check_csv(p, delimiter) == 0:
                raise DataError(f"{p}: the file has no rows")
            ds = datasets.load_dataset(
                "csv",
                data_files=str(p),
                split="train",
                delimiter=delimiter,
                na_filter=False,
                skip_blank_lines=True,
            )
            positions = [("row", i + 1) for i in range(len(ds))]
        elif kind == ".parquet":
            ds = datasets.load_dataset("parquet", data_files=str(p), split="train")
            positions = [("row", i + 1) for i in range(len(ds))]
        else:
            raise DataError(
                f"{p}: unsupported file type {kind!r} "
                "(use .jsonl, .json, .csv, .tsv, .parquet or a save_to_disk folder)"
            )
    except DataError:
        raise
    except Exception as exc:  # datasets/arrow errors: keep the message, name the file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{p}: could not be read ({first})") from exc
    rows = ds.to_list()
    if len(rows) != len(positions):  # defensive: fall back to plain row numbers
        positions = [("row", i + 1) for i in range(len(rows))]
    return LoadedRows(path=p, rows=rows, positions=positions, columns=list(ds.column_names))


def _looks_like_array(p: Path) -> bool:
    with p.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[")


# -- rows -> records ---------------------------------------------------------------------------
def detect_task(columns: Sequence[str], data: DataConfig) -> str:
    if data.instruction_column in columns and data.output_column in columns:
        return INSTRUCTION
    return CLASSIFICATION


def _require(loaded: LoadedRows, column: str, role: str) -> None:
    if column not in loaded.columns:
        close = difflib.get_close_matches(column, loaded.columns, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"{loaded.path}: missing {role} column {column!r} (columns: {', '.join(loaded.columns)}){hint}"
        )


def _text(value: Any, loaded: LoadedRows, i: int, column: str, *, required: bool) -> str:
    if value is None or (isinstance(value, float) and value != value):
        value = ""
    if not isinstance(value, str):
        value = str(value)
    if required and not value.strip():
        raise DataError(f"{loaded.where(i)}: empty text in column {column!r}")
    return value


def load_records(
    path: str | Path,
    data: DataConfig,
    *,
    task: str = "auto",
    labelled: bool = True,
) -> tuple[str, list[Record]]:
    """Read seeds (``labelled=True``) or an unlabelled pool into records.

    Returns the task kind and the records. Raises :class:`DataError` naming the file and row for a
    missing column, empty text or a missing label. Exact duplicate rows are kept once, with a warning.
    """
    loaded = read_rows(path)
    if task == "auto":
        task = detect_task(loaded.columns, data) if labelled else CLASSIFICATION
    origin = SEED if labelled else POOL
    records: list[Record] = []
    seen: dict[str, str] = {}
    for i, row in enumerate(loaded.rows):
        kind, n = loaded.positions[i]
        source: dict[str, Any] = {"file": str(loaded.path), kind: n}
        if "id" in row and row["id"] not in (None, ""):
            source["id"] = str(row["id"])
        if task == CLASSIFICATION or not labelled:
            _require(loaded, data.text_column, "text")
            fields = {"text": _text(row.get(data.text_column), loaded, i, data.text_column, required=True)}
            if data.text_pair_column and labelled:
                _require(loaded, data.text_pair_column, "text-pair")
                fields["text_pair"] = _text(
                    row.get(data.text_pair_column), loaded, i, data.text_pair_column, required=True
                )
            label = None
            if labelled:
                _require(loaded, data.label_column, "label")
                label = _text(row.get(data.label_column), loaded, i, data.label_column, required=False)
                if not label.strip():
                    raise DataError(f"{loaded.where(i)}: missing label in column {data.label_column!r}")
        else:
            _require(loaded, data.instruction_column, "instruction")
            _require(loaded, data.output_column, "output")
            fields = {
                "instruction": _text(
                    row.get(data.instruction_column), loaded, i, data.instruction_column, required=True
                ),
                "input": _text(row.get(data.input_column), loaded, i, data.input_column, required=False)
                if data.input_column in loaded.columns
                else "",
                "output": _text(row.get(data.output_column), loaded, i, data.output_column, required=True),
            }
            label = None
        rec = seed_record(task, fields, label, origin=origin, source=source)
        if rec.id in seen:
            logger.warning("%s: duplicate of %s %s; kept once", loaded.where(i), kind, seen[rec.id])
            continue
        seen[rec.id] = str(n)
        records.append(rec)
    return task, records


# -- writing -----------------------------------------------------------------------------------
def _umask() -> int:
    """The process umask, read without changing it where the system says it (Linux), since setting
    it to read it back is not thread-safe."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 minus the umask),
        # so a teammate, a labelling tool or a container running as another user can read it
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_jsonl_atomic(path: Path, records: Iterable[Record]) -> int:
    rows = [r.to_dict() for r in records]
    write_atomic(path, jsonl(rows))
    return len(rows)
