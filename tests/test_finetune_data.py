"""finetune/data.py: an expand output read back as a datasets.Dataset, filtered by origin or method."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from augment.errors import DataError
from finetune import load_training_data


def test_columns_and_rows(zh_run):
    ds = load_training_data(zh_run.out)
    assert set(ds.column_names) == {"text", "label", "id", "origin", "method"}
    assert len(ds) == zh_run.manifest["counts"]["output_rows"]
    assert ds["id"] == [row["id"] for row in zh_run.augmented]
    assert ds["text"] == [row["text"] for row in zh_run.augmented]
    # the folder and the file give the same thing
    assert load_training_data(zh_run.out / "augmented.jsonl")["id"] == ds["id"]


def test_seed_only_baseline(zh_run):
    ds = load_training_data(zh_run.out, origins={"seed"})
    assert len(ds) == zh_run.manifest["counts"]["seeds"] == 72
    assert set(ds["origin"]) == {"seed"} and set(ds["method"]) == {None}


def test_seeds_plus_one_method(zh_run):
    # the methods whose rows the run kept (expand's recipe may drop a method's rows entirely)
    counts = Counter(r["method"] for r in zh_run.augmented if r["origin"] != "seed")
    (first, n_first), *_ = counts.most_common()
    ds = load_training_data(zh_run.out, methods={first})
    assert len(ds) == 72 + n_first
    assert set(ds["method"]) == {None, first}
    assert sum(o == "seed" for o in ds["origin"]) == 72
    other = "delete" if first != "delete" else "swap"
    both = load_training_data(zh_run.out, methods=[first, other])
    assert len(both) == 72 + n_first + counts.get(other, 0)


def test_instruction_columns(instruction_run):
    ds = load_training_data(instruction_run.out)
    assert set(ds.column_names) == {"instruction", "input", "output", "id", "origin", "method"}
    assert len(ds) == instruction_run.manifest["counts"]["output_rows"]


def test_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_training_data(tmp_path)
    bad = tmp_path / "augmented.jsonl"
    bad.write_text(json.dumps({"text": "x", "label": "y"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"augmented\.jsonl:1: not an augment-engine row"):
        load_training_data(bad)
    bad.write_text('{"task": "classification"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"augmented\.jsonl:1: malformed JSON"):
        load_training_data(bad)
