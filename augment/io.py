"""Reading seed and pool files, and writing outputs atomically.

Text formats (JSONL, JSON, CSV/TSV) are decoded and parsed here, line by line, so a bad file gets a
one-line error naming the file, the line and the problem, and values keep the type they have in the
file (no column-wide type guessing: ``007`` stays ``"007"``, labels ``1`` and ``"1"`` are noticed).
Parquet and folders written by ``Dataset.save_to_disk`` are read through `datasets`.

Whatever the loader accepts but a user may not expect (a byte-order mark, CRLF line ends, numbers
as texts or labels, duplicate rows or ids, a label with one seed, very long texts, ...) becomes a
*note*: a dict with ``code``, ``message`` and the rows concerned, which ``expand`` writes into the
manifest (``data_notes``), so nothing is changed or dropped without a record.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import json
import logging
import os
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DataConfig
from .errors import DataError
from .record import CLASSIFICATION, INSTRUCTION, POOL, SEED, TASK_FIELDS, Record, seed_record

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".tsv"}
LONG_TEXT = 2000  # characters: embedders get no more of a text (most read 256-512 tokens of it)
MAX_LISTED = 20  # rows named in one note


@dataclass
class LoadedRows:
    """Raw rows of one file with the position of each: ``("line", 7)`` or ``("row", 3)``."""

    path: Path
    rows: list[dict[str, Any]]
    positions: list[tuple[str, int]]
    columns: list[str]
    notes: list[dict[str, Any]] = field(default_factory=list)

    def where(self, i: int) -> str:
        """``seeds.jsonl:7`` for a line, ``seeds.csv:row 3`` for a row: for error messages."""
        kind, n = self.positions[i]
        return f"{self.path}:{n}" if kind == "line" else f"{self.path}:{kind} {n}"

    def pos(self, i: int) -> str:
        """``line 7`` / ``row 3``: a row's position inside its file, for notes."""
        kind, n = self.positions[i]
        return f"{kind} {n}"


def _note(path: Path, code: str, message: str, rows: Sequence[str] = ()) -> dict[str, Any]:
    note: dict[str, Any] = {"file": str(path), "code": code, "message": message}
    if rows:
        note["count"] = len(rows)
        note["rows"] = list(rows[:MAX_LISTED])
    return note


def _rows_text(rows: Sequence[str]) -> str:
    shown = ", ".join(rows[:5])
    return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


# -- decoding ----------------------------------------------------------------------------------
def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    return line, offset - (data.rfind(b"\n", 0, offset) + 1) + 1


def _looks_utf16(data: bytes) -> bool:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    head = data[:4096]
    return len(head) >= 4 and head.count(b"\x00") >= len(head) // 4


def _guess_encoding(data: bytes) -> tuple[str, str] | None:
    """(codec, name) of what a file that is not UTF-8 most likely is, or None."""
    if _looks_utf16(data):
        return "utf-16", "UTF-16"
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        wide = [c for c in text if ord(c) > 127]

        def common(c: str) -> bool:
            try:
                c.encode("gb2312")  # GB2312: the common simplified characters and punctuation
                return True
            except UnicodeEncodeError:
                return False

        if wide and sum(map(common, wide)) >= 0.9 * len(wide):
            return "gb18030", "GBK/GB18030"
    non_ascii = sum(b > 127 for b in data)
    if non_ascii and non_ascii < 0.3 * len(data):
        try:
            data.decode("cp1252")
            return "cp1252", "Windows-1252/Latin-1"
        except UnicodeDecodeError:
            pass
    return None


def _decode(path: Path, data: bytes, encoding: str | None, notes: list[dict[str, Any]]) -> str:
    """Bytes -> text with ``\\n`` line ends; a BOM, CRLF line ends and a non-UTF-8 encoding are noted."""
    utf8 = encoding is None or codecs.lookup(encoding).name == "utf-8"
    if utf8:
        if data.startswith(codecs.BOM_UTF8):
            data = data[3:]
            notes.append(_note(path, "utf8_bom", "the file starts with a UTF-8 byte-order mark (ignored)"))
        guess = None
        nul = data.find(b"\x00")
        if nul >= 0 or data.startswith((b"\xff\xfe", b"\xfe\xff")):
            if _looks_utf16(data):
                guess = ("utf-16", "UTF-16")
            else:
                line, col = _line_col(data, nul)
                raise DataError(
                    f"{path}:{line}: NUL byte at column {col} (a binary file? a text file holds no NUL bytes)"
                )
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                guess = _guess_encoding(data)
                if guess is None:
                    line, col = _line_col(data, exc.start)
                    raise DataError(
                        f"{path}:{line}: undecodable bytes at column {col} "
                        "(the file must be UTF-8, or pass --encoding)"
                    ) from None
                bad = exc.start
        if guess is not None:
            codec, name = guess
            where = f"{path}:{_line_col(data, bad)[0]}" if codec != "utf-16" else str(path)
            raise DataError(
                f"{where}: file is not UTF-8 (looks like {name}); re-encode with "
                f"`iconv -f {codec} -t utf-8` or pass --encoding {codec}"
            )
    else:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            line, col = _line_col(data, exc.start)
            raise DataError(f"{path}:{line}: bytes at column {col} are not valid {encoding}") from None
        text = text.removeprefix("\ufeff")
        notes.append(_note(path, "encoding", f"read as {encoding} (--encoding), not UTF-8"))
        if "\x00" in text:
            line = text[: text.index("\x00")].count("\n") + 1
            raise DataError(f"{path}:{line}: NUL character (a binary file, or the wrong --encoding?)")
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
        notes.append(_note(path, "crlf", "Windows (CRLF) line ends, read as plain line ends"))
    return text


# -- parsing -----------------------------------------------------------------------------------
def _json_problem(text: str, exc: json.JSONDecodeError) -> tuple[int, str]:
    """(line, ``malformed JSON (...)``) with a trailing comma named plainly (and placed on the comma)."""
    before = text[: exc.pos].rstrip()
    after = text[exc.pos :].lstrip()
    if before.endswith(",") and after[:1] in ("}", "]"):
        comma = len(before) - 1
        line = text.count("\n", 0, comma) + 1
        column = comma - (text.rfind("\n", 0, comma) + 1) + 1
        return line, f"malformed JSON (trailing comma before {after[0]!r} at column {column})"
    return exc.lineno, f"malformed JSON ({exc.msg} at column {exc.colno})"


def _columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def _parse_jsonl(path: Path, text: str) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    rows, positions = [], []
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{i}: {_json_problem(line, exc)[1]}") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}")
        rows.append(obj)
        positions.append(("line", i))
    return rows, positions


def _parse_json_array(path: Path, text: str) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        line, problem = _json_problem(text, exc)
        raise DataError(f"{path}:{line}: {problem}") from None
    if not isinstance(obj, list) or not all(isinstance(o, dict) for o in obj):
        raise DataError(f"{path}: a .json file must hold a list of objects (or use JSONL)")
    return obj, [("item", i + 1) for i in range(len(obj))]


def _parse_csv(
    path: Path, text: str, delimiter: str, notes: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[str, int]], list[str]]:
    csv.field_size_limit(2**31 - 1)  # a long text is a text, not an error

    def reader(delim: str):
        return csv.reader(io.StringIO(text, newline=""), delimiter=delim)

    rd = reader(delimiter)
    try:
        header = next(rd, None)
        if not header or not any(h.strip() for h in header):
            raise DataError(f"{path}: the file is empty (expected a header row)")
        if delimiter == "," and len(header) == 1 and "\t" in header[0]:
            delimiter = "\t"
            rd = reader(delimiter)
            header = next(rd)
            notes.append(_note(path, "tab_separated", "a .csv file with tab-separated columns, read as TSV"))
        names = [h.strip() for h in header]
        if names != header:
            notes.append(_note(path, "header_spaces", "spaces around column names in the header, ignored"))
        names = [n or f"Unnamed: {j}" for j, n in enumerate(names)]
        dupes = sorted(n for n, c in Counter(names).items() if c > 1)
        if dupes:
            raise DataError(f"{path}:1: the header names a column twice ({', '.join(dupes)})")
        rows, positions = [], []
        for row in rd:
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(names):
                raise DataError(f"{path}:{rd.line_num}: expected {len(names)} fields, found {len(row)}")
            rows.append(dict(zip(names, row, strict=True)))
            positions.append(("row", len(rows)))
    except csv.Error as exc:
        raise DataError(
            f"{path}:{rd.line_num}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({exc})"
        ) from None
    return rows, positions, names


def read_rows(path: str | Path, encoding: str | None = None) -> LoadedRows:
    """Load any supported file into plain dict rows (``encoding``: of text formats; UTF-8 if None)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    notes: list[dict[str, Any]] = []
    if p.is_dir():
        return _read_dataset(p, "disk")
    kind = p.suffix.lower()
    if kind == ".parquet":
        return _read_dataset(p, kind)
    if kind not in TEXT_SUFFIXES:
        raise DataError(
            f"{p}: unsupported file type {kind!r} "
            "(use .jsonl, .json, .csv, .tsv, .parquet or a save_to_disk folder)"
        )
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot be read ({exc.strerror})") from None
    text = _decode(p, data, encoding, notes)
    if kind in (".csv", ".tsv"):
        rows, positions, columns = _parse_csv(p, text, "\t" if kind == ".tsv" else ",", notes)
    else:
        if kind == ".json" and text.lstrip(" \t\n").startswith("["):
            rows, positions = _parse_json_array(p, text)
        else:
            rows, positions = _parse_jsonl(p, text)
        columns = _columns(rows)
    if not rows:
        raise DataError(f"{p}: the file has no rows")
    return LoadedRows(path=p, rows=rows, positions=positions, columns=columns, notes=notes)


def _read_dataset(p: Path, kind: str) -> LoadedRows:
    """Parquet, or a folder written by ``save_to_disk``, through `datasets`."""
    import datasets

    if kind == "disk" and not any(
        (p / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json")
    ):
        raise DataError(
            f"{p}: is a folder, not a data file (give a .jsonl, .json, .csv, .tsv or .parquet file, "
            "or a folder written by datasets' save_to_disk)"
        )
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        if kind == "disk":
            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                if "train" not in ds:
                    raise DataError(f"{p}: a DatasetDict without a 'train' split ({list(ds)})")
                ds = ds["train"]
        else:
            ds = datasets.load_dataset("parquet", data_files=str(p), split="train")
    except DataError:
        raise
    except Exception as exc:  # datasets/arrow errors: keep the message, name the file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{p}: could not be read ({first})") from exc
    rows = ds.to_list()
    if not rows:
        raise DataError(f"{p}: the file has no rows")
    positions = [("row", i + 1) for i in range(len(rows))]
    return LoadedRows(path=p, rows=rows, positions=positions, columns=list(ds.column_names))


# -- rows -> records ---------------------------------------------------------------------------
def detect_task(columns: Sequence[str], data: DataConfig) -> str:
    if data.instruction_column in columns and data.output_column in columns:
        return INSTRUCTION
    return CLASSIFICATION


def _mean_length(loaded: LoadedRows, column: str) -> float:
    """Mean length of a column's string values (0 when mostly not strings)."""
    values = [row.get(column) for row in loaded.rows[:2000]]
    strings = [v for v in values if isinstance(v, str)]
    if not values or len(strings) * 2 < len(values):
        return 0.0
    return sum(len(v) for v in strings) / len(values)


def _likely_text_column(loaded: LoadedRows, exclude: Sequence[str], close: str | None) -> str | None:
    """The column with the longest string values on average (a close name wins a tie)."""
    scored = [
        (_mean_length(loaded, c), c == close, c) for c in loaded.columns if c not in exclude and c != "id"
    ]
    scored = [s for s in scored if s[0] > 0]
    return max(scored)[2] if scored else None


def _likely_label_column(loaded: LoadedRows, exclude: Sequence[str], close: str | None) -> str | None:
    """A column of short values that repeat (fewest distinct values; a close name wins a tie)."""
    best = None
    for c in loaded.columns:
        if c in exclude or c == "id":
            continue
        values = [row.get(c) for row in loaded.rows[:2000]]
        if any(isinstance(v, (dict, list)) for v in values) or any(v in (None, "") for v in values):
            continue
        distinct = len({str(v) for v in values})
        if distinct == len(values) and len(values) > 1:
            continue  # an id or a text: every value differs
        key = (-distinct, c == close)
        if best is None or key > best[0]:
            best = (key, c)
    return best[1] if best else None


def _require(
    loaded: LoadedRows, column: str, role: str, flag: str | None = None, exclude: Sequence[str] = ()
) -> None:
    if column in loaded.columns:
        return
    close = next(iter(difflib.get_close_matches(column, loaded.columns, n=1)), None)
    likely = None
    if role == "text":
        likely = _likely_text_column(loaded, exclude, close)
    elif role == "label":
        likely = _likely_label_column(loaded, exclude, close)
    if likely is not None and likely == close:
        hint = f"; did you mean {close!r}? (pass {flag} {close})"
    elif likely is not None:
        why = "the longest values" if role == "text" else "few distinct values"
        hint = f"; the likely {role} column is {likely!r} ({why}): pass {flag} {likely}"
    elif close is not None:
        hint = f"; did you mean {close!r}?"
    else:
        hint = ""
    raise DataError(
        f"{loaded.path}: missing {role} column {column!r} (columns: {', '.join(loaded.columns)}){hint}"
    )


class _Oddities:
    """Collects, per kind, the rows the loader accepted but a user may not expect."""

    def __init__(self) -> None:
        self.rows: dict[str, list[str]] = {}

    def add(self, code: str, where: str) -> None:
        self.rows.setdefault(code, []).append(where)


def _text(value: Any, loaded: LoadedRows, i: int, column: str, odd: _Oddities, *, required: bool) -> str:
    if value is None or (isinstance(value, float) and value != value):
        value = ""
    if isinstance(value, (dict, list)):
        raise DataError(
            f"{loaded.where(i)}: column {column!r} holds a {'list' if isinstance(value, list) else 'mapping'}, "
            "not a text"
        )
    if not isinstance(value, str):
        odd.add("numeric_texts", loaded.pos(i))
        value = str(value)
    if required and not value.strip():
        raise DataError(f"{loaded.where(i)}: empty text in column {column!r}")
    if value:
        if len(value) > LONG_TEXT:
            odd.add("long_texts", loaded.pos(i))
        if "\n" in value or "\r" in value:
            odd.add("multiline_texts", loaded.pos(i))
        if not any(ch.isalnum() for ch in value) and value.strip():
            odd.add("no_word_texts", loaded.pos(i))
        if any(unicodedata.category(ch) == "Cf" for ch in value):
            odd.add("format_characters", loaded.pos(i))
    return value


def _label(value: Any, loaded: LoadedRows, i: int, column: str, typed: dict[str, set[str]]) -> str:
    """The label as a string; a label that is a number in the file is remembered in ``typed``."""
    if value is None or (isinstance(value, float) and value != value):
        raise DataError(f"{loaded.where(i)}: missing label in column {column!r}")
    if isinstance(value, (dict, list)):
        raise DataError(f"{loaded.where(i)}: the label in column {column!r} is a list or mapping, not a name")
    if isinstance(value, bool):
        text = "true" if value else "false"
        typed.setdefault(text, set()).add("boolean")
    elif isinstance(value, (int, float)):
        text = str(value)
        typed.setdefault(text, set()).add("number")
    else:
        text = value
        typed.setdefault(text, set()).add("string")
    if not text.strip():
        raise DataError(f"{loaded.where(i)}: missing label in column {column!r}")
    return text


ODDITY_MESSAGES = {
    "numeric_texts": "numbers in a text column, read as texts",
    "long_texts": f"texts longer than {LONG_TEXT} characters: kept whole, but the embedder reads only "
    f"their first {LONG_TEXT} characters (most embedders read only 256-512 tokens)",
    "multiline_texts": "texts with line breaks, kept as they are",
    "no_word_texts": "texts with no letter or digit (punctuation or symbols only): word-level methods "
    "cannot edit them",
    "format_characters": "texts with invisible format characters (zero-width joiners, direction marks), "
    "kept as they are",
}


def load_records(
    path: str | Path,
    data: DataConfig,
    *,
    task: str = "auto",
    labelled: bool = True,
    notes: list[dict[str, Any]] | None = None,
) -> tuple[str, list[Record]]:
    """Read seeds (``labelled=True``) or an unlabelled pool into records.

    Returns the task kind and the records. Raises :class:`DataError` naming the file and row for a
    missing column, empty text or a missing label. Exact duplicate rows are kept once, with a warning.
    What was accepted but is odd (duplicates, numeric labels, a label with one seed, ...) is appended
    to ``notes`` (see the module's docstring).
    """
    loaded = read_rows(path, getattr(data, "encoding", None))
    found = list(loaded.notes)
    if task == "auto":
        task = detect_task(loaded.columns, data) if labelled else CLASSIFICATION
    origin = SEED if labelled else POOL
    classify = task == CLASSIFICATION or not labelled
    if classify:
        _require(loaded, data.text_column, "text", "--text-column", exclude=[data.label_column])
        if data.text_pair_column and labelled:
            _require(loaded, data.text_pair_column, "text-pair", "--text-pair-column")
        if labelled:
            _require(loaded, data.label_column, "label", "--label-column", exclude=[data.text_column])
    else:
        _require(loaded, data.instruction_column, "instruction", "--instruction-column")
        _require(loaded, data.output_column, "output", "--output-column")
    odd = _Oddities()
    typed: dict[str, set[str]] = {}
    records: list[Record] = []
    seen: dict[str, str] = {}
    ids: dict[str, list[str]] = {}
    for i, row in enumerate(loaded.rows):
        kind, n = loaded.positions[i]
        source: dict[str, Any] = {"file": str(loaded.path), kind: n}
        if "id" in row and row["id"] not in (None, ""):
            source["id"] = str(row["id"])
            ids.setdefault(source["id"], []).append(loaded.pos(i))
        if classify:
            fields = {
                "text": _text(row.get(data.text_column), loaded, i, data.text_column, odd, required=True)
            }
            if data.text_pair_column and labelled:
                fields["text_pair"] = _text(
                    row.get(data.text_pair_column), loaded, i, data.text_pair_column, odd, required=True
                )
            label = None
            if labelled:
                label = _label(row.get(data.label_column), loaded, i, data.label_column, typed)
            elif row.get(data.label_column) not in (None, ""):
                odd.add("pool_labels_ignored", loaded.pos(i))
        else:
            fields = {
                "instruction": _text(
                    row.get(data.instruction_column), loaded, i, data.instruction_column, odd, required=True
                ),
                "input": _text(row.get(data.input_column), loaded, i, data.input_column, odd, required=False)
                if data.input_column in loaded.columns
                else "",
                "output": _text(
                    row.get(data.output_column), loaded, i, data.output_column, odd, required=True
                ),
            }
            label = None
        rec = seed_record(task, fields, label, origin=origin, source=source)
        if rec.id in seen:  # the first few one by one; the summary note below counts them all
            level = logging.WARNING if len(odd.rows.get("duplicates_dropped", ())) < 5 else logging.DEBUG
            logger.log(level, "%s: duplicate of %s %s; kept once", loaded.where(i), kind, seen[rec.id])
            odd.add("duplicates_dropped", f"{loaded.pos(i)} (= {kind} {seen[rec.id]})")
            continue
        seen[rec.id] = str(n)
        records.append(rec)

    p = loaded.path
    for code, rows in odd.rows.items():
        if code == "duplicates_dropped":
            msg = f"{len(rows)} exact duplicate row(s) dropped, each kept once: {_rows_text(rows)}"
        elif code == "pool_labels_ignored":
            msg = f"pool rows carry a {data.label_column!r} value; pool labels are not used (the pool is unlabelled)"
        else:
            msg = ODDITY_MESSAGES[code]
        found.append(_note(p, code, msg, rows))
    repeated = {k: v for k, v in ids.items() if len(v) > 1}
    if repeated:
        listed = "; ".join(f"{k!r} at {', '.join(v)}" for k, v in list(repeated.items())[:5])
        found.append(
            _note(
                p,
                "duplicate_ids",
                f"{len(repeated)} id(s) used by more than one row (rows are told apart by content): {listed}",
                [w for v in repeated.values() for w in v],
            )
        )
    found.extend(_label_notes(p, records, typed) if labelled and task == CLASSIFICATION else [])
    if notes is not None:
        notes.extend(found)
    return task, records


def _label_notes(path: Path, records: Sequence[Record], typed: dict[str, set[str]]) -> list[dict[str, Any]]:
    out = []
    non_string = sorted(k for k, kinds in typed.items() if kinds - {"string"})
    if non_string:
        merged = sorted(k for k in non_string if len(typed[k]) > 1)
        msg = f"labels written as numbers or booleans are read as strings: {', '.join(non_string[:10])}"
        for k in merged[:10]:
            msg += f"; {k} and {k!r} both appear and count as one label {k!r}"
        out.append(_note(path, "labels_as_strings", msg))
    counts = Counter(r.label for r in records)
    if len(counts) == 1:
        out.append(
            _note(
                path,
                "single_label",
                f"every seed has the label {next(iter(counts))!r}: the label filter and the recipe "
                "need two labels or more, so they do nothing here",
            )
        )
    lonely = sorted(k for k, c in counts.items() if c == 1)
    if lonely:
        out.append(
            _note(
                path,
                "labels_with_one_seed",
                f"{len(lonely)} label(s) with a single seed: {', '.join(map(repr, lonely[:10]))} "
                "(cross-validation needs two seeds of every label)",
            )
        )
    return out


def overlap_note(seeds: Sequence[Record], others: Sequence[Record], path: str | Path, role: str):
    """A note when rows of a pool or dev file have the text of a seed (None when none do)."""
    texts = {s.fields.get("text") for s in seeds}
    same = [r for r in others if r.fields.get("text") in texts]
    if not same:
        return None
    where = [f"{k} {v}" for r in same for k, v in (r.source or {}).items() if k in ("line", "row", "item")]
    what = (
        "they add nothing new (a pseudo-label of one copies a seed; the dedup filter rejects it)"
        if role == "pool"
        else "a seed that is also a dev row makes the dev score look better than it is"
    )
    return _note(
        Path(path),
        f"{role}_overlaps_seeds",
        f"{len(same)} of {len(others)} {role} rows have the text of a seed: {what}",
        where,
    )


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


def expand_rows(p: Path):
    """(line number, row) for each row of an `augment expand` JSONL output, checked as it is read."""
    with p.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{i}: malformed JSON ({exc.msg})") from None
            if not isinstance(row, dict) or row.get("task") not in TASK_FIELDS or "origin" not in row:
                raise DataError(f"{p}:{i}: not an augment-engine row (missing or unknown 'task')")
            yield i, row
