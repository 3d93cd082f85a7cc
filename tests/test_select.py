"""`augment select POOL --budget N --seeds SEEDS`, model-free (``--embedder hashing``), through CliRunner."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ZH_BANK

from cli.main import cli

SEEDS = ZH_BANK / "seeds.jsonl"
POOL = ZH_BANK / "unlabeled.jsonl"


def invoke(args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kw)


def select(tmp_path, *extra, budget=12, name="chosen.jsonl"):
    out = tmp_path / name
    result = invoke(["select", POOL, "--seeds", SEEDS, "--budget", budget, "--embedder", "hashing", "-o", out, *extra])
    assert result.exit_code == 0, result.output
    return out, result.output


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_budget_no_duplicates_no_seeds_and_why(tmp_path, hashing_embedder):
    out, summary = select(tmp_path)
    rows = read_jsonl(out)
    assert len(rows) == 12
    texts = [r["text"] for r in rows]
    assert len(set(texts)) == len(texts)
    seed_texts = {r["text"] for r in read_jsonl(SEEDS)}
    pool_texts = {r["text"] for r in read_jsonl(POOL)}
    assert not set(texts) & seed_texts and set(texts) <= pool_texts
    labels = {r["label"] for r in read_jsonl(SEEDS)}
    for r in rows:
        assert r["label"] is None and r["suggested_label"] in labels
        assert 0 < r["confidence"] <= 1
        why = r["why"]
        assert why["predicted_class"] == r["suggested_label"]
        assert 0 <= why["uncertainty"] <= 1 and why["measure"] == "margin"
        assert why["distance"] >= 0 and why["diversity_rank"] >= 1 and why["uncertainty_rank"] >= 1
    assert [r["why"]["rank"] for r in rows] == list(range(1, 13))
    assert "12 of 300 pool rows chosen" in summary


def test_balanced_across_predicted_labels(tmp_path, hashing_embedder):
    out, _ = select(tmp_path, budget=12)
    counts = Counter(r["suggested_label"] for r in read_jsonl(out))
    n_labels = len({r["label"] for r in read_jsonl(SEEDS)})  # 6 intents: 2 each
    assert len(counts) == n_labels and max(counts.values()) - min(counts.values()) <= 1


def test_deterministic_for_a_seed(tmp_path, hashing_embedder):
    a, _ = select(tmp_path, "--seed", "5", name="a.jsonl")
    b, _ = select(tmp_path, "--seed", "5", name="b.jsonl")
    assert a.read_bytes() == b.read_bytes()


def test_budget_larger_than_pool_takes_every_row_once(tmp_path, hashing_embedder):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in read_jsonl(POOL)[:7]), encoding="utf-8")
    seed_text = read_jsonl(SEEDS)[0]["text"]
    with pool.open("a", encoding="utf-8") as fh:  # a seed text in the pool is never offered
        fh.write(json.dumps({"text": seed_text}, ensure_ascii=False) + "\n")
    out = tmp_path / "o.jsonl"
    result = invoke(["select", pool, "-s", SEEDS, "-n", 50, "--embedder", "hashing", "-o", out])
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert len(rows) == 7 and seed_text not in {r["text"] for r in rows}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "label-studio", "argilla"])
def test_each_format_parses(tmp_path, hashing_embedder, fmt):
    out, summary = select(tmp_path, "--format", fmt, budget=6, name=f"o.{fmt}")
    text = out.read_text(encoding="utf-8")
    pool_texts = {r["text"] for r in read_jsonl(POOL)}
    if fmt == "jsonl":
        texts = [r["text"] for r in read_jsonl(out)]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {"id", "text", "label", "suggested_label", "confidence", "uncertainty", "predicted_class"} <= set(rows[0])
        texts = [r["text"] for r in rows]
    elif fmt == "label-studio":
        tasks = json.loads(text)
        assert isinstance(tasks, list)
        for t in tasks:
            (pred,) = t["predictions"]
            (res,) = pred["result"]
            assert res["type"] == "choices" and res["from_name"] == "label" and res["to_name"] == "text"
            assert len(res["value"]["choices"]) == 1 and 0 < pred["score"] <= 1
        texts = [t["data"]["text"] for t in tasks]
        assert "<Choices name=\"label\" toName=\"text\">" in summary
    else:
        recs = read_jsonl(out)
        for r in recs:
            (s,) = r["suggestions"]
            assert s["question_name"] == "label" and s["agent"] == "augment select" and 0 < s["score"] <= 1
        texts = [r["fields"]["text"] for r in recs]
    assert len(texts) == 6 and set(texts) <= pool_texts


def test_format_from_suffix_and_stdout(tmp_path, hashing_embedder):
    out, _ = select(tmp_path, budget=3, name="tasks.json")
    assert isinstance(json.loads(out.read_text(encoding="utf-8")), list)
    result = CliRunner().invoke(cli, ["select", str(POOL), "-s", str(SEEDS), "-n", "3", "--embedder", "hashing"])
    assert result.exit_code == 0
    assert len([json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]) == 3


def test_augmented_rows_train_the_classifier_and_are_not_offered(tmp_path, hashing_embedder):
    pool_rows = read_jsonl(POOL)
    aug = tmp_path / "exp"
    aug.mkdir()
    taken = [{"text": r["text"], "label": "card_lost", "origin": "pseudo-labelled"} for r in pool_rows[:40]]
    (aug / "augmented.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in read_jsonl(SEEDS) + taken), encoding="utf-8"
    )
    out, summary = select(tmp_path, "--augmented", aug, budget=10)
    assert "+ 40 augmented rows" in summary
    assert not {r["text"] for r in read_jsonl(out)} & {r["text"] for r in taken}


def test_chosen_rows_become_seeds_for_expand(tmp_path, hashing_embedder):
    out, _ = select(tmp_path, budget=4)
    labelled = tmp_path / "labelled.jsonl"
    rows = [{"text": r["text"], "label": r["suggested_label"]} for r in read_jsonl(out)]  # the expert agrees
    labelled.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in read_jsonl(SEEDS) + rows), encoding="utf-8"
    )
    from augment.config import DataConfig
    from augment.io import load_records

    _, recs = load_records(labelled, DataConfig())
    assert len(recs) == 72 + 4


def test_english_pool(tmp_path, hashing_embedder):
    seeds, pool = tmp_path / "s.jsonl", tmp_path / "p.jsonl"
    s = [("great film, loved it", "pos"), ("wonderful acting", "pos"), ("a joy to watch", "pos"),
         ("boring and slow", "neg"), ("terrible plot", "neg"), ("a waste of time", "neg")]  # fmt: skip
    p = ["loved the acting", "slow and terrible", "it was a film", "great joy", "waste", "plot", "watch it"]
    seeds.write_text("".join(json.dumps({"text": t, "label": lbl}) + "\n" for t, lbl in s))
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in p))
    out = tmp_path / "o.csv"
    result = invoke(["select", pool, "-s", seeds, "-n", 4, "--embedder", "hashing", "-o", out])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 4 and Counter(r["suggested_label"] for r in rows) == {"pos": 2, "neg": 2}


def test_errors_are_one_line(tmp_path, hashing_embedder):
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"text": "a", "label": "x"}) + "\n" + json.dumps({"text": "b", "label": "x"}) + "\n")
    result = CliRunner().invoke(cli, ["select", str(POOL), "-s", str(one), "-n", "3", "--embedder", "hashing"])
    assert result.exit_code == 1 and "single label" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["select", str(POOL), "-s", str(SEEDS), "-n", "0", "--embedder", "hashing"])
    assert result.exit_code == 1 and "--budget must be >= 1" in result.output
    result = CliRunner().invoke(cli, ["select", str(tmp_path / "none.jsonl"), "-s", str(SEEDS), "-n", "3"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1


# -- the pure functions ----------------------------------------------------------------------------
def test_uncertainty_measures():
    from augment.select import uncertainty

    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    assert np.allclose(uncertainty(p, "margin"), [0.0, 1.0, 1.0])
    ent = uncertainty(p, "entropy")
    assert ent[0] == pytest.approx(0.0) and ent[2] == pytest.approx(1.0) and 0 < ent[1] < 1


def test_class_quotas_hand_on_what_a_class_cannot_use():
    from augment.select import class_quotas

    pred = np.array([0] * 10 + [1] * 1 + [2] * 10)
    q = class_quotas(pred, 3, 9)
    assert q.sum() == 9 and q[1] == 1 and abs(q[0] - q[2]) <= 1


def test_diversity_spreads_choices():
    from augment.select import SelectConfig, choose

    rng = np.random.default_rng(0)
    centres = np.eye(4, 16)
    x = np.concatenate([c + 0.01 * rng.standard_normal((10, 16)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    proba = np.full((40, 2), 0.5)  # equally uncertain everywhere
    chosen = choose(x, proba, np.zeros((0, 16)), SelectConfig(budget=4, balance=False))
    assert sorted({c.index // 10 for c in chosen}) == [0, 1, 2, 3]  # one per cluster
    flat = choose(x, proba, np.zeros((0, 16)), SelectConfig(budget=4, balance=False, diversity=0.0, density=0.0))
    assert [c.index for c in flat] == [0, 1, 2, 3]  # uncertainty only: pool order on ties
