"""augment/language.py: detection by script, tokenisers that round-trip, and the dedup key."""

from __future__ import annotations

import pytest
from conftest import EN_CLINIC, ZH_BANK, ZH_INSTRUCTIONS, read_jsonl

from augment.language import detect_language, detokenizer_for, normalise, tokenizer_for, uses_spaces


def test_detect_language_on_the_samples():
    zh = [r["text"] for r in read_jsonl(ZH_BANK / "seeds.jsonl")]
    en = [r["text"] for r in read_jsonl(EN_CLINIC / "seeds.jsonl")]
    instr = [r["instruction"] for r in read_jsonl(ZH_INSTRUCTIONS / "seeds.jsonl")]
    assert detect_language(zh) == "zh"
    assert detect_language(instr) == "zh"
    assert detect_language(en) == "en"


@pytest.mark.parametrize(
    "texts, expected",
    [
        (["ATM吞卡了，怎么办？"], "zh"),  # Latin tokens inside Chinese
        (["用APP转账提示户名不符"], "zh"),
        (["Patient says 胸痛 since this morning, worse on exertion and lying flat"], "en"),
        (["BP 150/95, HR 110"], "en"),
        (["12345 !!!"], "en"),  # no letters at all
    ],
)
def test_detect_language_by_share_of_han_letters(texts, expected):
    assert detect_language(texts) == expected


def test_uses_spaces():
    assert not uses_spaces("zh") and not uses_spaces("zh-CN") and not uses_spaces("ja")
    assert uses_spaces("en") and uses_spaces("en-GB") and uses_spaces("de")


EN_TEXTS = [
    "Pt c/o chest pain, BP 150/95; won't lie flat.",
    "Needs an x-ray of the L wrist (fell on outstretched hand).",
    'Pt states "can\'t catch my breath" after 2 flights of stairs!',
    "Temp 38.5C, SpO2 92% on RA: worse since yesterday?",
    "She's had a dry cough for 3/52 [worse at night].",
]


@pytest.mark.parametrize("text", EN_TEXTS)
def test_english_round_trip(text):
    tokens = tokenizer_for("en")(text)
    assert detokenizer_for("en")(tokens) == text


def test_english_tokens_keep_inner_punctuation_and_split_the_rest():
    tokens = tokenizer_for("en")(EN_TEXTS[0])
    for word in ("c/o", "150/95", "won't"):
        assert word in tokens
    assert tokens[-1] == "." and "," in tokens and ";" in tokens
    assert "x-ray" in tokenizer_for("en")(EN_TEXTS[1])
    assert tokenizer_for("en")('say "hi"') == ["say", '"', "hi", '"']


def test_english_round_trip_over_all_sample_notes():
    tok, detok = tokenizer_for("en"), detokenizer_for("en")
    texts = [r["text"] for f in ("seeds.jsonl", "unlabeled.jsonl") for r in read_jsonl(EN_CLINIC / f)]
    broken = [t for t in texts if detok(tok(t)) != t]
    assert broken == []


@pytest.mark.parametrize("text", ["Pain 'sharp' at rest.", "Copay $20 paid.", "Pain 7/10 -- worse."])
def test_english_round_trip_single_quotes_currency_and_dashes(text):
    assert detokenizer_for("en")(tokenizer_for("en")(text)) == text


ZH_TEXTS = [
    "我的银行卡丢了，请帮我挂失",
    "用APP转账提示“收款人户名不符”，钱会退回来吗？",
    "U盾 密码忘了，还能用吗",  # a space that is in the input is kept
    "借：固定资产 50000\n贷：银行存款 56500",
]


@pytest.mark.parametrize("text", ZH_TEXTS)
def test_chinese_round_trip_is_exact(text):
    tokens = tokenizer_for("zh")(text)
    assert len(tokens) > 3  # jieba really segments it: words, not the whole string or characters
    assert len(tokens) < len(text)
    assert detokenizer_for("zh")(tokens) == text


def test_chinese_segmentation_gives_words():
    tokens = tokenizer_for("zh")("我的银行卡丢了，请帮我挂失")
    assert "银行卡" in tokens and "挂失" in tokens and "，" in tokens


@pytest.mark.parametrize(
    "a, b",
    [
        ("我的银行卡丢了，请帮我挂失！", "我的银行卡丢了请帮我挂失"),
        ("ＡＴＭ吞卡了", "atm 吞卡了。"),  # full-width letters, case, spacing, punctuation
        ("我的卡丢了，怎么办？", "我的卡丢了,怎么办?"),  # full-width vs ASCII punctuation
        ("Chest pain, BP 150/95.", "chest pain bp 15095"),
        ("  Hello   World  ", "hello world"),
    ],
)
def test_normalise_ignores_punctuation_case_width_and_spacing(a, b):
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("我的银行卡丢了", "我的信用卡丢了"),
        ("我的银行卡丢了", "我的银行卡丢了吧"),
        ("chest pain", "chest pains"),
        ("150/95", "150/96"),
    ],
)
def test_normalise_keeps_words_apart(a, b):
    assert normalise(a) != normalise(b)
