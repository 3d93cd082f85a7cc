"""augment/io.py and the CLI's error path: bad input files fail fast, in one line naming the file and
the line, before any output exists; every supported format loads into the same records."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import ZH_BANK, ZH_INSTRUCTIONS, error_lines, invoke, read_jsonl, write_jsonl

from augment.config import DataConfig
from augment.errors import DataError
from augment.io import load_records, read_rows, write_atomic

GOOD = [
    {"id": "zb-1", "text": "我的银行卡丢了，请帮我挂失", "label": "card_lost"},
    {"id": "zb-2", "text": "Transfer failed, but the money left my account", "label": "transfer_failed"},
]


def _lines(*third: str) -> bytes:
    head = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in GOOD)
    return (head + "".join(third)).encode("utf-8")


def _file(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# name, file name, content, fragments the one-line message must contain
CASES = [
    (
        "malformed_json",
        "seeds.jsonl",
        _lines('{"text": "密码忘了", "label": \n'),
        ["seeds.jsonl:3:", "malformed JSON"],
    ),
    (
        "not_an_object",
        "seeds.jsonl",
        _lines('["密码忘了", "password_reset"]\n'),
        ["seeds.jsonl:3:", "expected a JSON object"],
    ),
    (
        "empty_text",
        "seeds.jsonl",
        _lines('{"text": "   ", "label": "card_lost"}\n'),
        ["seeds.jsonl:3:", "empty text", "'text'"],
    ),
    (
        "null_text",
        "seeds.jsonl",
        _lines('{"text": null, "label": "card_lost"}\n'),
        ["seeds.jsonl:3:", "empty text"],
    ),
    (
        "missing_label",
        "seeds.jsonl",
        _lines('{"text": "密码忘了怎么办"}\n'),
        ["seeds.jsonl:3:", "missing label", "'label'"],
    ),
    (
        "blank_label",
        "seeds.jsonl",
        _lines('{"text": "密码忘了怎么办", "label": " "}\n'),
        ["seeds.jsonl:3:", "missing label"],
    ),
    (
        "undecodable",
        "seeds.jsonl",
        _lines() + b'{"text": "\xff\xfe", "label": "card_lost"}\n',
        ["seeds.jsonl:3:", "undecodable bytes", "UTF-8"],
    ),
    (
        "blank_lines_counted",
        "seeds.jsonl",
        _lines("\n", "\n", '{"text": "", "label": "card_lost"}\n'),
        ["seeds.jsonl:5:", "empty text"],
    ),
    (
        "csv_field_count",
        "seeds.csv",
        "text,label\n挂失银行卡,card_lost\n查余额,balance_inquiry,extra\n".encode(),
        ["seeds.csv:3:", "expected 2 fields, found 3"],
    ),
    (
        "csv_empty_text",
        "seeds.csv",
        "text,label\n挂失银行卡,card_lost\n,card_lost\n".encode(),
        ["seeds.csv:row 2", "empty text"],
    ),
    (
        "missing_text_column",
        "seeds.jsonl",
        b'{"texts": "a", "label": "x"}\n{"texts": "b", "label": "y"}\n',
        ["seeds.jsonl:", "missing text column 'text'", "columns: texts, label", "did you mean 'texts'?"],
    ),
    (
        "missing_label_column",
        "seeds.jsonl",
        '{"text": "挂失", "intent": "card_lost"}\n'.encode(),
        ["seeds.jsonl:", "missing label column 'label'", "columns: text, intent"],
    ),
    (
        "unsupported_suffix",
        "seeds.txt",
        "我的银行卡丢了\n".encode(),
        ["seeds.txt:", "unsupported file type '.txt'"],
    ),
    ("empty_jsonl", "seeds.jsonl", b"", ["seeds.jsonl:", "no rows"]),
    ("blank_jsonl", "seeds.jsonl", b"\n\n  \n", ["seeds.jsonl:", "no rows"]),
    ("empty_csv", "seeds.csv", b"", ["seeds.csv:", "empty"]),
    ("header_only_csv", "seeds.csv", b"text,label\n", ["seeds.csv:", "no rows"]),
    (
        "json_not_a_list",
        "seeds.json",
        b'[{"text": "a", "label": "x"}, 3]',
        ["seeds.json:", "list of objects"],
    ),
]


@pytest.mark.parametrize("name, filename, content, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line_before_any_output(tmp_path, name, filename, content, fragments):
    seeds = _file(tmp_path, filename, content)
    out = tmp_path / "out"
    result = invoke(["expand", seeds, "-o", out])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    lines = error_lines(result)
    assert len(lines) == 1, lines
    msg = lines[0]
    assert msg.startswith("Error: ")
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    assert not out.exists()


def test_missing_seed_file(tmp_path):
    result = invoke(["expand", tmp_path / "nope.jsonl", "-o", tmp_path / "out"])
    assert result.exit_code != 0
    assert error_lines(result) == [f"Error: {tmp_path / 'nope.jsonl'}: no such file or folder"]
    assert not (tmp_path / "out").exists()


def test_bad_pool_file_is_reported_before_any_output(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", GOOD)
    pool = _file(tmp_path, "pool.jsonl", '{"text": "查余额"}\n{"text": ""}\n'.encode())
    result = invoke(["expand", seeds, "--unlabeled", pool, "-o", tmp_path / "out"])
    assert result.exit_code != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "pool.jsonl:2:" in lines[0] and "empty text" in lines[0]
    assert not (tmp_path / "out").exists()


def test_data_error_from_the_api_names_file_and_line(tmp_path):
    seeds = _file(tmp_path, "seeds.jsonl", _lines('{"text": "密码忘了"}\n'))
    with pytest.raises(DataError, match=r"seeds\.jsonl:3: missing label in column 'label'"):
        load_records(seeds, DataConfig())


# -- formats -----------------------------------------------------------------------------------
ROWS = [
    *read_jsonl(ZH_BANK / "seeds.jsonl")[:8],
    {"id": "x-1", "text": 'Pt c/o "chest pain", BP 150/95; won\'t lie flat', "label": "cardiac"},
    {"id": "x-2", "text": "ATM吞卡了，怎么办？", "label": "card_lost"},
]


def _key(records):
    return [(r.id, r.task, r.fields, r.label, r.source.get("id")) for r in records]


@pytest.fixture(scope="module")
def jsonl_records(tmp_path_factory):
    path = write_jsonl(tmp_path_factory.mktemp("fmt") / "seeds.jsonl", ROWS)
    task, recs = load_records(path, DataConfig())
    assert task == "classification" and len(recs) == len(ROWS)
    return recs


def _write_format(kind: str, tmp_path):
    import datasets
    import pandas as pd

    df = pd.DataFrame(ROWS)
    if kind == "csv":
        path = tmp_path / "seeds.csv"
        df.to_csv(path, index=False)
    elif kind == "tsv":
        path = tmp_path / "seeds.tsv"
        df.to_csv(path, index=False, sep="\t")
    elif kind == "parquet":
        path = tmp_path / "seeds.parquet"
        df.to_parquet(path, index=False)
    elif kind == "json_array":
        path = tmp_path / "seeds.json"
        path.write_text(json.dumps(ROWS, ensure_ascii=False, indent=2), encoding="utf-8")
    elif kind == "ndjson":
        path = write_jsonl(tmp_path / "seeds.ndjson", ROWS)
    elif kind == "save_to_disk":
        path = tmp_path / "seeds_ds"
        datasets.Dataset.from_list(ROWS).save_to_disk(str(path))
    elif kind == "save_to_disk_dict":
        path = tmp_path / "seeds_dd"
        datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(path))
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize(
    "kind", ["csv", "tsv", "parquet", "json_array", "ndjson", "save_to_disk", "save_to_disk_dict"]
)
def test_every_format_gives_the_same_records(kind, tmp_path, jsonl_records):
    path = _write_format(kind, tmp_path)
    task, recs = load_records(path, DataConfig())
    assert task == "classification"
    assert _key(recs) == _key(jsonl_records)
    assert all(r.source["file"] == str(path) for r in recs)


def test_positions_are_recorded_in_the_source(tmp_path):
    path = _file(
        tmp_path, "seeds.jsonl", _lines("\n", '{"text": "密码忘了怎么办", "label": "password_reset"}\n')
    )
    _, recs = load_records(path, DataConfig())
    assert [r.source.get("line") for r in recs] == [1, 2, 4]
    assert [r.source.get("id") for r in recs] == ["zb-1", "zb-2", None]


def test_duplicates_are_kept_once(tmp_path, caplog):
    rows = [
        GOOD[0],
        GOOD[1],
        {**GOOD[0], "id": "zb-1-copy"},  # same content, other id: a duplicate
        {"id": "zb-3", "text": GOOD[0]["text"], "label": "password_reset"},  # other label: not one
    ]
    path = write_jsonl(tmp_path / "seeds.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="augment.io"):
        _, recs = load_records(path, DataConfig())
    assert [r.source["id"] for r in recs] == ["zb-1", "zb-2", "zb-3"]
    assert len({r.id for r in recs}) == 3
    assert any("seeds.jsonl:3" in m and "duplicate" in m for m in caplog.messages)


def test_instruction_task_is_detected_from_the_columns():
    task, recs = load_records(ZH_INSTRUCTIONS / "seeds.jsonl", DataConfig())
    assert task == "instruction"
    assert len(recs) == 30
    assert all(set(r.fields) == {"instruction", "input", "output"} and r.label is None for r in recs)
    assert sum(r.fields["input"] == "" for r in recs) == 16
    assert all(r.fields["instruction"].strip() and r.fields["output"].strip() for r in recs)


def test_instruction_rows_load_the_same_from_csv_with_multiline_outputs(tmp_path):
    import pandas as pd

    rows = read_jsonl(ZH_INSTRUCTIONS / "seeds.jsonl")
    assert any("\n" in r["output"] for r in rows)  # the sample has a multi-line answer
    path = tmp_path / "seeds.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    _, from_jsonl = load_records(ZH_INSTRUCTIONS / "seeds.jsonl", DataConfig())
    task, from_csv = load_records(path, DataConfig())
    assert task == "instruction"
    assert _key(from_csv) == _key(from_jsonl)


def test_unlabelled_pool_needs_no_label(tmp_path):
    task, pool = load_records(ZH_BANK / "unlabeled.jsonl", DataConfig(), labelled=False)
    assert task == "classification" and len(pool) == 300
    assert all(r.origin == "pool" and r.label is None and r.id.startswith("p-") for r in pool)


def test_custom_column_names(tmp_path):
    rows = [{"query": r["text"], "intent": r["label"]} for r in GOOD]
    path = write_jsonl(tmp_path / "seeds.jsonl", rows)
    _, recs = load_records(path, DataConfig(text_column="query", label_column="intent"))
    assert [(r.fields["text"], r.label) for r in recs] == [(r["text"], r["label"]) for r in GOOD]


def test_read_rows_reports_columns(tmp_path):
    loaded = read_rows(write_jsonl(tmp_path / "seeds.jsonl", GOOD))
    assert loaded.columns == ["id", "text", "label"] and len(loaded.rows) == 2


def test_write_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "a.jsonl"
    write_atomic(target, "旧\n")
    write_atomic(target, "新的内容\n")
    assert target.read_text(encoding="utf-8") == "新的内容\n"
    assert [p.name for p in target.parent.iterdir()] == ["a.jsonl"]  # no temp files left


def test_outputs_get_the_umask_mode_not_0600(tmp_path):
    import os
    import stat

    from augment.io import write_atomic

    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.jsonl", "x\n")
        os.umask(0o027)
        write_atomic(tmp_path / "b.jsonl", "y\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.jsonl").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.jsonl").stat().st_mode) == 0o640
