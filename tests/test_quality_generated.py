"""The quality filter's checks for generated text: loops (repeated n-grams) and answers cut off
mid-sentence, in Chinese and English, on hand-made records."""

from __future__ import annotations

import numpy as np
import pytest

from augment.errors import ConfigError
from augment.filters import FilterContext, make_filter
from augment.filters.quality import ends_a_sentence, repeat_ngram_ratio
from augment.record import CLASSIFICATION, Lineage, seed_record

ZH_ANSWER = "该条款无效。用人单位不得以怀孕为由解除劳动合同，这一规定违反了劳动合同法的强制性规定。"
EN_ANSWER = "The clause is void. An employer may not dismiss an employee because she is pregnant."


def _instruction_seed(instruction: str, output: str):
    return seed_record("instruction", {"instruction": instruction, "input": "", "output": output}, None)


def _generated(seed, instruction: str, output: str, index: int = 0, relation: str = "demo"):
    """A self-instruct row: a new instruction with its own, generated answer."""
    lineage = Lineage(backend="test", random_seed=index, relation=relation)
    cand = seed.derive("instruction", instruction, method="self_instruct", lineage=lineage, index=index)
    cand.fields["output"] = output
    return cand


def _ctx(seeds, field="instruction"):
    return FilterContext(seeds=seeds, field=field, seed_vectors=np.zeros((len(seeds), 3), np.float32))


def _verdicts(cands, seeds, **config):
    return [(v.keep, v.code) for v in make_filter("quality", config)(cands, _ctx(seeds))]


def test_repeat_ngram_ratio_chinese_and_english():
    assert repeat_ngram_ratio(ZH_ANSWER) < 0.1 and repeat_ngram_ratio(EN_ANSWER) < 0.1
    loop_zh = "根据规定，用人单位应当支付经济补偿。" * 4
    loop_en = "The employer must pay the compensation in full. " * 4
    assert repeat_ngram_ratio(loop_zh) > 0.5 and repeat_ngram_ratio(loop_en) > 0.5
    assert repeat_ngram_ratio("好好好") == 0.0  # too short to judge


def test_ends_a_sentence_chinese_and_english():
    for text in (ZH_ANSWER, EN_ANSWER, "是的！", "Really?", "他说：“可以。”", "(see above.)"):
        assert ends_a_sentence(text), text
    for text in ("该条款无效，因为用人单位", "The clause is void because the", "依据第四十二条"):
        assert not ends_a_sentence(text), text


@pytest.mark.parametrize("answer", [ZH_ANSWER, EN_ANSWER])
def test_generated_answers_that_loop_or_stop_mid_sentence_are_dropped(answer):
    seed = _instruction_seed("判断下面这条劳动合同条款是否有效。", answer)
    zh = answer == ZH_ANSWER
    good = (
        "用人单位可以因怀孕解除劳动合同吗？请说明依据。"
        if zh
        else "Can an employer dismiss a pregnant worker?"
    )
    loop = ("用人单位不得解除劳动合同。" * 5) if zh else ("The employer may not dismiss her. " * 5)
    cut = (
        "不能。依据劳动合同法第四十二条，女职工在孕期的，用人单位不得"
        if zh
        else "No. Under the law an employer may not"
    )
    fine = "不能。女职工在孕期、产期、哺乳期的，用人单位不得解除劳动合同。" if zh else "No. She is protected."
    cands = [
        _generated(seed, good, fine, 0),
        _generated(seed, good + "1", loop, 1),
        _generated(seed, good + "2", cut, 2),
    ]
    assert _verdicts(cands, [seed]) == [(True, ""), (False, "repetitive"), (False, "truncated")]
    # both checks can be turned off
    assert _verdicts(cands, [seed], max_repeat_ngram_ratio=1.0, check_truncation=False) == [(True, "")] * 3


def test_a_parent_that_ends_without_punctuation_allows_such_answers():
    seed = _instruction_seed("列出三个常见的劳动合同类型", "固定期限、无固定期限、以完成一定工作任务为期限")
    cand = _generated(seed, "列出两种解除劳动合同的方式", "协商解除、单方解除", 0)
    assert _verdicts([cand], [seed]) == [(True, "")]


def test_copied_answers_and_rewritten_text_are_judged_against_the_parent():
    seed = _instruction_seed("请解释什么是试用期。", "试用期是用人单位和劳动者相互考察的期间")
    # a lexical rewrite keeps the seed's answer: no truncation check on a copied answer
    copy = _generated(seed, "请解释一下什么是试用期。", seed.fields["output"], 0, relation="rewrite")
    assert _verdicts([copy], [seed]) == [(True, "")]
    # a looping rewrite of the instruction is dropped; a classification seed that repeats itself
    # does not make its lexical variants "repetitive"
    loop = _generated(seed, "试用期试用期试用期试用期试用期。", seed.fields["output"], 1, relation="rewrite")
    assert _verdicts([loop], [seed]) == [(False, "repetitive")]
    chant = seed_record(CLASSIFICATION, {"text": "卡丢了卡丢了卡丢了卡丢了卡丢了卡丢了"}, "card_lost")
    swapped = chant.derive("text", "卡丢了卡丢了卡丢了卡丢了卡丢了丢了卡", method="swap",
                           lineage=Lineage(backend="test", random_seed=0), index=0)  # fmt: skip
    verdicts = make_filter("quality")(
        [swapped], FilterContext(seeds=[chant], field="text", seed_vectors=np.zeros((1, 3), np.float32))
    )
    assert verdicts[0].keep


def test_the_new_fields_are_checked():
    with pytest.raises(ConfigError, match="max_repeat_ngram_ratio"):
        make_filter("quality", {"max_repeat_ngram_ratio": 1.5})
