"""`augment filter CANDIDATES --reference SEEDS -o OUT` through click's CliRunner."""

from __future__ import annotations

import json
from collections import Counter

from conftest import ZH_BANK, error_lines, invoke, read_jsonl, write_jsonl

OUTPUTS = ("augmented.jsonl", "rejected.jsonl", "manifest.json")


def test_filter_an_expand_output_keeps_its_lineage(zh_run, tmp_path):
    out = tmp_path / "f"
    result = invoke(
        [
            "filter",
            zh_run.out / "augmented.jsonl",
            "-r",
            ZH_BANK / "seeds.jsonl",
            "-o",
            out,
            "--per-class-budget",
            "20",
        ]
    )
    assert result.exit_code == 0, result.output
    kept, rejected = read_jsonl(out / "augmented.jsonl"), read_jsonl(out / "rejected.jsonl")
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    seeds = read_jsonl(ZH_BANK / "seeds.jsonl")
    assert [r["origin"] for r in kept[: len(seeds)]] == ["seed"] * len(seeds)
    generated = [r for r in zh_run.augmented if r["origin"] != "seed"]
    assert m["counts"]["candidates"] == len(generated) == m["counts"]["kept"] + m["counts"]["rejected"]
    by_id = {r["id"]: r for r in generated}
    for row in kept[len(seeds) :]:
        src = by_id[row["id"]]  # same id, method, parents and model as in the expand output
        assert (row["method"], row["parent_ids"], row["model"]) == (
            src["method"],
            src["parent_ids"],
            src["model"],
        )
    assert max(Counter(r["label"] for r in kept[len(seeds) :]).values()) <= 20
    assert Counter(r["reason"] for r in rejected)["over_budget"] > 0
    assert "seeds ->" in result.stdout and str(out / "manifest.json") in result.stdout


def test_filter_rows_from_another_tool(tmp_path):
    rows = [
        {"text": "我的银行卡丢了怎么挂失", "label": "card_lost"},  # a seed but for punctuation
        {"text": "How do I reset my password", "label": "password_reset"},  # wrong language
        {"text": "转账三天了还没到账，钱去哪了", "label": "card_lost"},  # wrong label
        {"text": "手续费太贵了，要求退费", "label": "fee_complaint"},  # fine
        {"text": "手续费太贵了，要求退费！", "label": "fee_complaint"},  # same as the previous
    ]
    seeds_texts = {r["text"] for r in read_jsonl(ZH_BANK / "seeds.jsonl")}
    assert "我的银行卡丢了，怎么挂失？" in seeds_texts and rows[0]["text"] not in seeds_texts
    cands = write_jsonl(tmp_path / "cands.jsonl", rows)
    out = tmp_path / "f"
    result = invoke(["filter", cands, "-r", ZH_BANK / "seeds.jsonl", "-o", out])
    assert result.exit_code == 0, result.output
    rejected = {r["text"]: r for r in read_jsonl(out / "rejected.jsonl")}
    assert rejected[rows[0]["text"]]["reason"] == "exact_seed"
    assert rejected[rows[1]["text"]]["reason"] == "wrong_script"
    assert rejected[rows[2]["text"]]["rejected_by"] == "label"
    assert "transfer_failed" in rejected[rows[2]["text"]]["reason_detail"]
    assert rejected[rows[4]["text"]]["reason"] == "exact_candidate"
    kept = [r for r in read_jsonl(out / "augmented.jsonl") if r["origin"] != "seed"]
    assert [r["text"] for r in kept] == [rows[3]["text"]]
    assert kept[0]["method"] == "external" and kept[0]["parent_ids"] == [] and kept[0]["source"]["line"] == 4
    assert {"script", "dedup", "label", "novelty"} <= set(kept[0]["scores"])


def test_filter_bad_input_is_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"text": "好的", "label": "x"}\n{"text": \n', encoding="utf-8")
    out = tmp_path / "f"
    result = invoke(["filter", bad, "-r", ZH_BANK / "seeds.jsonl", "-o", out])
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and f"{bad}:2" in lines[0]
    assert not out.exists()


def test_filter_with_an_embedder_that_cannot_load_leaves_no_folder(tmp_path):
    out = tmp_path / "f"
    args = ["filter", ZH_BANK / "seeds.jsonl", "-r", ZH_BANK / "seeds.jsonl", "-o", out]
    result = invoke([*args, "--embedder", "no-such-org/no-such-model"])
    assert result.exit_code != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "embedder 'no-such-org/no-such-model' could not be loaded" in lines[0]
    assert not out.exists()


def test_filter_refuses_an_existing_output(zh_run, tmp_path):
    out = tmp_path / "f"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = invoke(["filter", zh_run.out / "augmented.jsonl", "-r", ZH_BANK / "seeds.jsonl", "-o", out])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_unknown_filter_name_is_a_config_error(zh_run, tmp_path):
    result = invoke(
        [
            "filter",
            zh_run.out / "augmented.jsonl",
            "-r",
            ZH_BANK / "seeds.jsonl",
            "-o",
            tmp_path / "f",
            "--filters",
            "quality,dedupe",
        ]
    )
    assert result.exit_code == 1 and "did you mean 'dedup'" in result.output
