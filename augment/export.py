"""`augment export OUT --format F -o PATH`: an `augment expand` output in the form a training tool reads.

Instruction data (``instruction``/``input``/``output``):

- ``alpaca``: JSONL of ``{"instruction", "input", "output"}``;
- ``sharegpt``: JSONL of ``{"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}``;
- ``messages``: JSONL of ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`` (the
  OpenAI / TRL conversational form);

each with an entry in ``dataset_info.json`` beside the file, as LLaMA-Factory's ``data/README``
describes it (``file_name``, ``formatting``, ``columns``, ``tags``), so ``dataset: NAME`` with
``dataset_dir`` set to that folder trains on it. An existing ``dataset_info.json`` keeps its other
entries. The human turn is the instruction, then a new line and the input when there is one, as
LLaMA-Factory joins an Alpaca ``prompt`` and ``query``.

Classification data (``text``, optional ``text_pair``, ``label``):

- ``setfit``: JSONL of ``{"text", "label", "label_text"}``: ``label`` is the class index (labels
  sorted by name), ``label_text`` its name, as SetFit's datasets on the hub have them;
- ``hf``: a ``datasets`` folder (``save_to_disk``) with a ``ClassLabel`` feature (same order), read
  back by ``datasets.load_from_disk``. Instruction data exports to ``hf`` too (its three columns).

``origins`` and ``methods`` select rows: ``origins={"seed", "pseudo-labelled"}`` keeps seeds and
pseudo-labels only; ``methods`` keeps seeds plus the rows those methods made. ``with_lineage`` adds a
``lineage`` column holding the row's lineage as JSON text (id, origin, method, parents, model, params,
scores); one text column keeps a single type across rows whatever the methods' parameters, so Arrow,
pandas and the loaders above read it (and ignore it when they are not told about it).

Files are written atomically (a JSONL file through :func:`augment.io.write_atomic`; the ``hf`` folder
is saved into a temporary folder beside PATH and renamed into place). ``push_to_hub`` uploads the
same rows as a ``datasets.Dataset``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BackendError, ConfigError, DataError
from .io import expand_rows, jsonl, write_atomic
from .record import AUGMENTED, CLASSIFICATION, INSTRUCTION, PSEUDO_LABELLED, SEED, TASK_FIELDS

INSTRUCTION_FORMATS = ("alpaca", "sharegpt", "messages")
CLASSIFICATION_FORMATS = ("setfit", "hf")
FORMATS = (*INSTRUCTION_FORMATS, *CLASSIFICATION_FORMATS)
ORIGINS = (SEED, AUGMENTED, PSEUDO_LABELLED)
FOR_TASK = {INSTRUCTION: (*INSTRUCTION_FORMATS, "hf"), CLASSIFICATION: CLASSIFICATION_FORMATS}

# LLaMA-Factory's dataset_info.json entry per format (data/README: "alpaca" and "sharegpt" formatting;
# the OpenAI messages form is sharegpt formatting with role/content tags)
LLAMA_FACTORY = {
    "alpaca": {
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "query": "input", "response": "output"},
    },
    "sharegpt": {
        "formatting": "sharegpt",
        "columns": {"messages": "conversations"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
    },
    "messages": {
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        },
    },
}


@dataclass
class ExportResult:
    format: str
    task: str
    rows: int
    path: Path | None  # the file or folder written (None: pushed only)
    dataset_info: Path | None = None  # LLaMA-Factory's dataset_info.json, for instruction formats
    name: str | None = None  # its entry
    labels: list[str] = field(default_factory=list)  # classification: index -> name
    by_origin: dict[str, int] = field(default_factory=dict)
    pushed_to: str | None = None


def read_output(source: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """The task and rows of an `augment expand` / `augment filter` output (folder or augmented.jsonl)."""
    p = Path(source)
    if p.is_dir():
        p = p / "augmented.jsonl"
    if not p.exists():
        raise DataError(
            f"{p}: no such file (expected an `augment expand` output folder or its augmented.jsonl)"
        )
    rows: list[dict[str, Any]] = []
    task = None
    for i, row in expand_rows(p):
        if task is None:
            task = row["task"]
        elif row["task"] != task:
            raise DataError(f"{p}:{i}: a {row['task']} row in a file of {task} rows")
        rows.append(row)
    if task is None:
        raise DataError(f"{p}: no rows")
    return task, rows


def select_rows(
    rows: list[dict[str, Any]], origins: Iterable[str] | None = None, methods: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Rows of these origins; and/or seeds plus the rows these methods made. Unknown names are refused."""
    origins = set(origins) if origins is not None else None
    methods = set(methods) if methods is not None else None
    if origins is not None:
        unknown = sorted(origins - set(ORIGINS))
        if unknown or not origins:
            raise ConfigError(
                f"--origins: unknown origin {', '.join(unknown) or '(none)'}; known: {', '.join(ORIGINS)}"
            )
    if methods is not None:
        present = sorted({r.get("method") for r in rows if r.get("origin") != SEED and r.get("method")})
        unknown = sorted(methods - set(present))
        if unknown or not methods:
            raise ConfigError(
                f"--methods: no rows made by {', '.join(unknown) or '(none)'}; methods in this output: "
                f"{', '.join(present) or 'none'}"
            )
    out = []
    for r in rows:
        if origins is not None and r.get("origin") not in origins:
            continue
        if methods is not None and r.get("origin") != SEED and r.get("method") not in methods:
            continue
        out.append(r)
    return out


def _lineage(row: dict[str, Any], task: str) -> str:
    skip = {*TASK_FIELDS[task], "label", "task"}
    return json.dumps({k: v for k, v in row.items() if k not in skip}, ensure_ascii=False, sort_keys=True)


def _prompt(row: dict[str, Any]) -> str:
    """The user turn: the instruction, then the input on a new line (LLaMA-Factory's prompt + query)."""
    inp = (row.get("input") or "").strip()
    return f"{row['instruction']}\n{inp}" if inp else row["instruction"]


def format_row(
    row: dict[str, Any], fmt: str, task: str, labels: list[str], with_lineage: bool
) -> dict[str, Any]:
    """One exported row."""
    if fmt == "alpaca":
        out: dict[str, Any] = {
            "instruction": row["instruction"],
            "input": row.get("input") or "",
            "output": row["output"],
        }
    elif fmt == "sharegpt":
        turns = [{"from": "human", "value": _prompt(row)}, {"from": "gpt", "value": row["output"]}]
        out = {"conversations": turns}
    elif fmt == "messages":
        turns = [{"role": "user", "content": _prompt(row)}, {"role": "assistant", "content": row["output"]}]
        out = {"messages": turns}
    elif task == INSTRUCTION:  # hf
        out = {"instruction": row["instruction"], "input": row.get("input") or "", "output": row["output"]}
    else:  # setfit, hf
        out = {"text": row["text"]}
        if row.get("text_pair") is not None:
            out["text_pair"] = row["text_pair"]
        out["label"] = labels.index(str(row["label"]))
        if fmt == "setfit":
            out["label_text"] = str(row["label"])
    if with_lineage:
        out["lineage"] = _lineage(row, task)
    return out


def _features(task: str, labels: list[str], rows: list[dict[str, Any]], with_lineage: bool):
    import datasets

    string = datasets.Value("string")
    if task == INSTRUCTION:
        cols: dict[str, Any] = {"instruction": string, "input": string, "output": string}
    else:
        cols = {"text": string}
        if rows and "text_pair" in rows[0]:
            cols["text_pair"] = string
        cols["label"] = datasets.ClassLabel(names=labels)
    if with_lineage:
        cols["lineage"] = string
    return datasets.Features(cols)


def to_dataset(rows: list[dict[str, Any]], fmt: str, task: str, labels: list[str], with_lineage: bool):
    """The exported rows as a ``datasets.Dataset`` (with the ClassLabel feature for ``hf``/``setfit``)."""
    import datasets

    if fmt in CLASSIFICATION_FORMATS:
        feats = _features(task, labels, rows, with_lineage)
        if fmt == "setfit":
            feats["label_text"] = datasets.Value("string")
        return datasets.Dataset.from_list(rows, features=feats)
    return datasets.Dataset.from_list(rows)


def _save_folder(ds: Any, path: Path, overwrite: bool) -> None:
    """save_to_disk into a temporary folder beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        ds.save_to_disk(str(tmp))
        if path.exists():
            if not overwrite:
                raise ConfigError(f"{path}: already exists (pass --overwrite to replace it)")
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _update_dataset_info(path: Path, name: str, fmt: str) -> Path:
    """Add (or replace) ``name`` in dataset_info.json beside ``path``, keeping the other entries."""
    info_path = path.parent / "dataset_info.json"
    info: dict[str, Any] = {}
    if info_path.exists():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{info_path}: malformed JSON ({exc.msg}); fix or remove it") from None
        if not isinstance(info, dict):
            raise DataError(f"{info_path}: not a JSON object of dataset entries")
    info[name] = {"file_name": path.name, **json.loads(json.dumps(LLAMA_FACTORY[fmt]))}
    write_atomic(info_path, json.dumps(info, ensure_ascii=False, indent=2) + "\n")
    return info_path


def export(
    source: str | Path,
    out: str | Path | None,
    fmt: str,
    *,
    origins: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    with_lineage: bool = False,
    name: str | None = None,
    overwrite: bool = False,
    push_to_hub: str | None = None,
) -> ExportResult:
    """Export the rows of ``source`` (an expand output) as ``fmt`` to ``out`` and/or the hub."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if out is None and push_to_hub is None:
        raise ConfigError("give -o PATH, --push-to-hub REPO, or both")
    task, rows = read_output(source)
    if fmt not in FOR_TASK[task]:
        raise ConfigError(
            f"--format {fmt} is for {'instruction' if fmt in INSTRUCTION_FORMATS else 'classification'} data; "
            f"{source} holds {task} rows: use {' or '.join(FOR_TASK[task])}"
        )
    chosen = select_rows(rows, origins, methods)
    if not chosen:
        raise ConfigError(f"{source}: no rows left after --origins / --methods")
    labels = (
        sorted({str(r["label"]) for r in chosen if r.get("label") is not None})
        if task == CLASSIFICATION
        else []
    )
    if task == CLASSIFICATION and any(r.get("label") is None for r in chosen):
        raise DataError(f"{source}: a row without a label cannot be exported for classification")
    exported = [format_row(r, fmt, task, labels, with_lineage) for r in chosen]
    by_origin: dict[str, int] = {}
    for r in chosen:
        by_origin[r["origin"]] = by_origin.get(r["origin"], 0) + 1
    result = ExportResult(fmt, task, len(exported), None, labels=labels, by_origin=by_origin)
    if out is not None:
        path = Path(out)
        result.path = path
        if fmt == "hf":
            _save_folder(to_dataset(exported, fmt, task, labels, with_lineage), path, overwrite)
        else:
            if path.is_dir():
                raise ConfigError(f"{path}: is a folder; -o names the JSONL file to write")
            if path.exists() and not overwrite:
                raise ConfigError(f"{path}: already exists (pass --overwrite to replace it)")
            write_atomic(path, jsonl(exported))
            if fmt in LLAMA_FACTORY:
                result.name = name or path.name.split(".")[0]
                result.dataset_info = _update_dataset_info(path, result.name, fmt)
    if push_to_hub is not None:
        _push(to_dataset(exported, fmt, task, labels, with_lineage), push_to_hub)
        result.pushed_to = push_to_hub
    return result


def _push(ds: Any, repo: str) -> None:
    """``Dataset.push_to_hub``; any failure (offline, no token, no such repo) is one line."""
    try:
        ds.push_to_hub(repo)
    except Exception as exc:  # the hub client's errors are many and multi-line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = "the Hugging Face Hub is unreachable (HF_HUB_OFFLINE is set)" if offline else first
        raise BackendError(f"--push-to-hub {repo}: {why}; the export was not uploaded") from exc
