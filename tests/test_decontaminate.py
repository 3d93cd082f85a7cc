"""Decontamination (`--test/--eval FILE`): candidates and pool rows that copy an evaluation row are
rejected with `decontaminate:exact|ngram|embedding`; `finetune --test` and `evaluate --test` warn
about training rows that repeat a test row. Model-free: the hashing embedder throughout."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from conftest import ZH_BANK, invoke, read_jsonl, write_jsonl

from augment.filters import FilterContext, make_filter, seed_baseline
from augment.record import CLASSIFICATION, Lineage, seed_record

ZH_SEEDS = [
    "老人不会用手机，柜台能帮忙查余额吗",
    "信用卡年费太高了，能不能免掉",
    "我想申请一笔装修贷款，利率多少",
]
EN_SEEDS = ["my card was stolen last night", "how much is the monthly fee", "i want to close my account"]


def _run(texts, eval_texts, language, embedder, **params):
    """The filter's verdicts for ``texts`` (rewrites of the first seed) against ``eval_texts``."""
    seeds = [
        seed_record(CLASSIFICATION, {"text": t}, "x") for t in (ZH_SEEDS if language == "zh" else EN_SEEDS)
    ]
    cands = [
        seeds[0].derive("text", t, method="t", lineage=Lineage(field="text"), index=i)
        for i, t in enumerate(texts)
    ]
    vecs = embedder.encode([s.fields["text"] for s in seeds])
    ctx = FilterContext(seeds=seeds, field="text", seed_vectors=vecs)
    ctx.baseline = round(seed_baseline(vecs), 4)
    ctx.candidate_vectors = dict(zip([c.id for c in cands], embedder.encode(texts), strict=True))
    ctx.eval_texts = list(eval_texts)
    ctx.eval_vectors = embedder.encode(list(eval_texts))
    return make_filter("decontaminate", params, language=language)(cands, ctx)


ZH_TEST = ["我的银行卡昨天在地铁上丢了，怎么挂失", "转账三天了还没有到账，钱去哪里了"]
EN_TEST = [
    "my debit card was lost on the subway yesterday how do i block it",
    "the transfer i sent three days ago has still not arrived",
]


def test_exact_copies_are_rejected_whatever_the_punctuation_case_and_width(hashing_embedder):
    v = _run(
        ["我的银行卡昨天在地铁上丢了怎么挂失？", "转账三天了还没有到账 钱去哪里了"],
        ZH_TEST,
        "zh",
        hashing_embedder,
    )
    assert [(x.keep, x.code) for x in v] == [(False, "exact"), (False, "exact")]
    assert v[0].detail == "same text as test row 1" and v[1].detail == "same text as test row 2"
    v = _run(
        ["My Debit Card was lost on the subway yesterday, how do I block it?"],
        EN_TEST,
        "en",
        hashing_embedder,
    )
    assert (v[0].keep, v[0].code) == (False, "exact")


def test_near_copies_by_character_ngrams_in_chinese(hashing_embedder):
    near = "我的银行卡昨天在公交上丢了，怎么挂失"  # one word changed
    v = _run([near], ZH_TEST, "zh", hashing_embedder, eval_similarity=1.0)
    assert (v[0].keep, v[0].code) == (False, "ngram")
    assert v[0].detail.startswith("character-bigram Jaccard") and "to test row 1" in v[0].detail
    assert 0.6 <= v[0].score < 1.0


def test_near_copies_by_word_ngrams_in_english(hashing_embedder):
    near = "my debit card was lost on the bus yesterday how do i block it"
    v = _run([near], EN_TEST, "en", hashing_embedder, eval_similarity=1.0)
    assert (v[0].keep, v[0].code) == (False, "ngram")
    assert v[0].detail.startswith("word-bigram Jaccard") and "to test row 1" in v[0].detail


def test_embedding_copies_are_rejected_when_the_ngrams_do_not_catch_them(hashing_embedder):
    # the same words in reverse order: no word bigram in common, the same bag of words for the embedder
    shuffled = " ".join(reversed(EN_TEST[0].split()))
    v = _run([shuffled], EN_TEST, "en", hashing_embedder, eval_similarity=0.8)
    assert (v[0].keep, v[0].code) == (False, "embedding"), v
    assert "to test row 1 (cosine " in v[0].detail and v[0].score >= 0.8
    # a looser paraphrase passes at the default threshold and is caught at a lower one
    loose = "lost my debit card in the subway, how can i block it"
    assert _run([loose], EN_TEST, "en", hashing_embedder)[0].keep
    assert _run([loose], EN_TEST, "en", hashing_embedder, eval_similarity=0.5)[0].code == "embedding"


@pytest.mark.parametrize(
    "language, texts",
    [
        ("zh", ["信用卡年费太高了，能不能免掉", "我想申请一笔装修贷款，利率多少", "帮我查一下工资到账没有"]),
        (
            "en",
            ["how much is the monthly fee", "i want to close my account", "what is the loan interest rate"],
        ),
    ],
)
def test_unrelated_rows_are_kept_with_their_closest_similarity(language, texts, hashing_embedder):
    eval_texts = ZH_TEST if language == "zh" else EN_TEST
    v = _run(texts, eval_texts, language, hashing_embedder)
    assert all(x.keep for x in v), v
    assert all(x.score is not None and x.score < 0.95 for x in v)


def test_without_test_rows_everything_is_kept(hashing_embedder):
    seeds = [seed_record(CLASSIFICATION, {"text": t}, "x") for t in ZH_SEEDS]
    cands = [seeds[0].derive("text", ZH_SEEDS[0], method="t", lineage=Lineage(), index=0)]
    ctx = FilterContext(seeds=seeds, field="text", seed_vectors=hashing_embedder.encode(ZH_SEEDS))
    assert [x.keep for x in make_filter("decontaminate")(cands, ctx)] == [True]


def test_ngram_index_is_exact_against_all_pairs():
    from augment.filters.decontaminate import NgramIndex
    from augment.minhash import jaccard

    rng = np.random.default_rng(0)
    alphabet = list("abcdefghij")
    sets = [{"".join(rng.choice(alphabet, 2)) for _ in range(rng.integers(1, 12))} for _ in range(200)]
    queries = [{"".join(rng.choice(alphabet, 2)) for _ in range(rng.integers(1, 12))} for _ in range(200)]
    for t in (0.3, 0.5, 0.8):
        index = NgramIndex(sets, t)
        for q in queries:
            best = max(((j, jaccard(q, s)) for j, s in enumerate(sets)), key=lambda p: (p[1], -p[0]))
            got = index.best(q)
            assert (got is None) == (best[1] < t) and (got is None or got[1] == best[1])


# -- through the CLI ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    """Evaluation rows: a pool row verbatim, and a near copy of a pool row."""
    pool = read_jsonl(ZH_BANK / "unlabeled.jsonl")
    rows = [
        {"text": pool[0]["text"], "label": "password_reset"},
        {"text": pool[1]["text"].replace("节假日", "周末"), "label": "transfer_failed"},
        {"text": "这是一条和银行业务无关的测试句子，讲的是天气", "label": "other"},
    ]
    return write_jsonl(tmp_path_factory.mktemp("eval") / "test.jsonl", rows)


@pytest.fixture(scope="module")
def decontaminated(tmp_path_factory, zh_subset, test_file):
    out = tmp_path_factory.mktemp("dc") / "out"
    args = [
        "expand", zh_subset, "--unlabeled", ZH_BANK / "unlabeled.jsonl", "--test", test_file,
        "--embedder", "hashing", "-m", "swap,pseudo_label", "--recipe", "off", "-o", out,
        # every pool row becomes a candidate, so the copies of test rows reach the filters
        "-P", "pseudo_label.threshold=0", "-P", "pseudo_label.agree=1", "-P", "pseudo_label.per_class=300",
    ]  # fmt: skip
    result = invoke(args)
    assert result.exit_code == 0, (result.output, result.exception)
    return out


def test_expand_rejects_pool_copies_of_test_rows_and_records_the_test_file(decontaminated, test_file):
    out = decontaminated
    rejected = read_jsonl(out / "rejected.jsonl")
    reasons = {(r["rejected_by"], r["reason"]) for r in rejected if r["rejected_by"] == "decontaminate"}
    assert reasons >= {("decontaminate", "exact"), ("decontaminate", "ngram")}
    detail = next(r["reason_detail"] for r in rejected if r["reason"] == "ngram")
    assert "Jaccard" in detail and "test row 2" in detail
    test_texts = {r["text"] for r in read_jsonl(test_file)}
    assert not test_texts & {r["text"] for r in read_jsonl(out / "augmented.jsonl")}
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert m["inputs"]["test"]["path"] == str(test_file) and m["inputs"]["test"]["rows"] == 3
    assert len(m["inputs"]["test"]["sha256"]) == 64
    assert m["filters"]["order"][0] == "decontaminate"
    assert m["filters"]["thresholds"]["eval_jaccard"] == 0.6
    # the test rows are never written out: only their row numbers appear in the reasons
    for name in ("augmented.jsonl", "rejected.jsonl"):
        text = (out / name).read_text(encoding="utf-8")
        assert "讲的是天气" not in text


def test_filter_takes_eval_as_an_alias(decontaminated, test_file, tmp_path, zh_subset):
    rows = [
        {"text": read_jsonl(test_file)[0]["text"] + "！", "label": "password_reset"},
        {"text": "手续费太贵了，要求退费", "label": "fee_complaint"},
    ]
    cands = write_jsonl(tmp_path / "cands.jsonl", rows)
    out = tmp_path / "f"
    result = invoke(
        ["filter", cands, "-r", zh_subset, "--eval", test_file, "--embedder", "hashing", "-o", out]
    )
    assert result.exit_code == 0, result.output
    rejected = read_jsonl(out / "rejected.jsonl")
    assert [(r["text"], r["reason"]) for r in rejected if r["rejected_by"] == "decontaminate"] == [
        (rows[0]["text"], "exact")
    ]
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert m["inputs"]["test"]["sha256"] and m["filters"]["order"][0] == "decontaminate"


def test_without_test_the_filter_is_not_in_the_chain(tmp_path, zh_subset):
    out = tmp_path / "plain"
    args = ["expand", zh_subset, "--embedder", "hashing", "-m", "swap", "--recipe", "off", "-o", out]
    assert invoke(args).exit_code == 0
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "decontaminate" not in m["filters"]["order"] and "test" not in m["inputs"]


# -- finetune / evaluate warn about overlap -----------------------------------------------------
class _Stop(Exception):
    pass


def _stop(*args, **kwargs):
    raise _Stop


def test_finetune_and_evaluate_warn_when_training_rows_repeat_test_rows(
    decontaminated, zh_subset, tmp_path, monkeypatch, caplog
):
    import finetune.evaluate
    import finetune.train
    from finetune import TrainConfig

    seeds = read_jsonl(zh_subset)
    test = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"text": seeds[0]["text"].replace("，", " ") + "。", "label": seeds[0]["label"]},
            {"text": seeds[1]["text"], "label": seeds[1]["label"]},
            {"text": "完全不同的一句话", "label": seeds[2]["label"]},
        ],
    )
    monkeypatch.setattr(finetune.train, "fit", _stop)  # stop before any training
    monkeypatch.setattr(finetune.evaluate, "fit", _stop)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(_Stop):
            finetune.train.finetune(
                decontaminated, tmp_path / "m", TrainConfig(method="embedding"), test=test
            )
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(line.startswith("2 of ") and "repeat a test row" in line for line in lines), lines
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        with pytest.raises(_Stop):
            finetune.evaluate.evaluate(decontaminated, TrainConfig(method="embedding"), test=test, repeats=1)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(line.startswith("2 of ") and "\n" not in line for line in lines), lines


def test_finetune_cli_prints_the_overlap_warning_on_stderr(decontaminated, zh_subset, tmp_path, monkeypatch):
    import finetune.train

    seeds = read_jsonl(zh_subset)
    test = write_jsonl(tmp_path / "t.jsonl", [{"text": seeds[3]["text"], "label": seeds[3]["label"]}])
    monkeypatch.setattr(finetune.train, "fit", _stop)
    result = invoke(
        ["finetune", decontaminated, "-o", tmp_path / "m", "--method", "embedding", "--test", test]
    )
    assert isinstance(result.exception, _Stop)
    warned = [ln for ln in result.stderr.splitlines() if "repeat a test row" in ln]
    assert len(warned) == 1 and warned[0].startswith("WARNING finetune.train: 1 of "), result.stderr
