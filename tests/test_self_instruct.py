"""self_instruct on the step contract, without a model: a scripted generator stands in for the LLM.

The typed config; rows labelled by their anchor with the demonstrations as parents and relation
``demo``; failures kept as rejected rows; one shared generator per run; the run-level token budget
stopping mid-batch with the rest left for a resumed run; a dry run that loads nothing; and the
instruction-data loop (ROUGE-L near-copies refused, survivors answered)."""

from __future__ import annotations

import re

import pytest
from conftest import ZH_INSTRUCTIONS, read_jsonl
from scripted_llm import COMPLETION_TOKENS, PROMPT_TOKENS, refuse_loading, use_scripted

from augment.context import RunContext
from augment.errors import ConfigError
from augment.generators import GeneratorConfig
from augment.methods import build_method
from augment.record import CLASSIFICATION, INSTRUCTION, seed_record, stable_hash

RUN_SEED = 13
TEXTS = {
    "card_lost": ["I lost my card yesterday", "my debit card is missing", "card stolen at the station"],
    "balance": ["what is my balance", "how much money is left", "show my account balance please"],
}


def _seeds():
    return [seed_record(CLASSIFICATION, {"text": t}, label) for label, texts in TEXTS.items() for t in texts]


def _ctx(seeds, *, task=CLASSIFICATION, fields=("text",), language="en", planning=False, **gen):
    cfg = GeneratorConfig(**{"chat": True, **gen})
    return RunContext(
        seeds=seeds,
        language=language,
        task=task,
        fields=list(fields),
        generator_config=cfg,
        planning=planning,
    )


def _method(ctx, **params):
    m = build_method("self_instruct", params)
    m.setup(ctx)
    return m


def lister(text, decoding):
    """Four new examples that depend on the prompt and the seed, plus a copy of the first demonstration."""
    first = re.search(r"^(?:- |1\. )(.+)$", text, re.M).group(1)
    tag = stable_hash(text, decoding.seed, length=6)
    return "\n".join([f"1. {first}"] + [f"{i + 2}. a new example {tag} number {i}" for i in range(4)])


# -- config ------------------------------------------------------------------------------------
def test_typed_config_with_help_and_ranges():
    from augment.config import MethodsConfig
    from augment.steps import spec

    s = spec("method", "self_instruct")
    rows = {r["name"]: r for r in s.parameters()}
    assert list(rows) == [
        "k",
        "contrasts",
        "domain",
        "label_names",
        "template",
        "answer_template",
        "rouge_threshold",
    ]
    assert [rows[k]["default"] for k in rows] == [3, 2, None, {}, None, None, 0.7]
    assert all(r["help"] for r in rows.values()) and s.summary
    for bad, key in (
        ({"k": 0}, "k must be >= 1"),
        ({"contrasts": -1}, "contrasts must be >= 0"),
        ({"rouge_threshold": 1.5}, "rouge_threshold must be in"),
        ({"label_names": "x"}, "label_names must be a mapping"),
        ({"k": "3"}, "k must be an integer"),
    ):
        with pytest.raises(ConfigError, match=rf"^methods\.params\.self_instruct\.{key}"):
            build_method("self_instruct", bad)
    with pytest.raises(ConfigError, match="unknown parameter 'aug_p'"):  # not a lexical method
        build_method("self_instruct", {"aug_p": 0.3})
    assert MethodsConfig(defaults={"aug_p": 0.3}).method_params("self_instruct") == {}  # --aug-p skips it


# -- classification ----------------------------------------------------------------------------
def test_rows_are_labelled_by_their_anchor_with_demos_as_parents(monkeypatch):
    loaded = use_scripted(monkeypatch, lister)
    seeds = _seeds()
    ctx = _ctx(seeds)
    m = _method(ctx, domain="bank customer service")
    out = m.generate(seeds, "text", 3, RUN_SEED)
    by_id = {s.id: s for s in seeds}
    assert len(out) == 3 * len(seeds) and all(r.rejection is None for r in out)
    for r in out:
        anchor = by_id[r.parent_ids[0]]
        assert r.label == anchor.label and r.task == CLASSIFICATION and r.method == "self_instruct"
        assert all(by_id[p].label == anchor.label for p in r.parent_ids) and len(r.parent_ids) == 3
        lin = r.lineage
        assert lin.relation == "demo" and lin.field == "text" and not r.rewrites_parent
        assert "field" not in lin.params and "relation" not in lin.params
        assert list(r.parent_ids) == lin.params["demo_ids"] and lin.params["mode"] == "chat"
        assert lin.params["domain"] == "bank customer service" and lin.params["k"] == 3
        assert {by_id[c].label for c in lin.params["contrast_ids"]} <= set(TEXTS) - {anchor.label}
        assert (lin.params["max_new_tokens"], lin.params["temperature"]) == (160, 0.8)
        assert (lin.backend, lin.model, lin.model_revision) == ("scripted", "scripted-llm", "r0")
        assert r.fields["text"] not in {
            s.fields["text"] for s in seeds
        }  # demonstrations copied back: dropped
    assert (m.backend, m.model) == ("scripted", "scripted-llm")
    # the same run again, from scratch: the same rows
    again = _method(_ctx(seeds), domain="bank customer service").generate(seeds, "text", 3, RUN_SEED)
    assert [(r.id, r.fields["text"]) for r in again] == [(r.id, r.fields["text"]) for r in out]
    assert len(loaded) == 2 and loaded[0].calls == len(seeds)


def test_completion_mode_and_label_names(monkeypatch):
    def cont(text, decoding):  # a base model continues the numbered list after "4."
        return " my card is gone\n5. where is my card\n\n"

    use_scripted(monkeypatch, cont, chat=False)
    seeds = _seeds()
    m = _method(_ctx(seeds, chat=False), label_names={"card_lost": "a lost or stolen card"})
    out = m.generate(seeds[:1], "text", 2, RUN_SEED)
    assert [r.fields["text"] for r in out] == ["my card is gone", "where is my card"]
    assert out[0].lineage.params["mode"] == "completion" and out[0].lineage.params["contrast_ids"] == []
    assert out[0].lineage.params["label_names"] == {"card_lost": "a lost or stolen card"}


def test_failures_come_back_as_rejected_rows(monkeypatch):
    seeds = [
        seed_record(CLASSIFICATION, {"text": "please fail here"}, "a"),
        seed_record(CLASSIFICATION, {"text": "please refuse here"}, "b"),
        seed_record(CLASSIFICATION, {"text": "please work here"}, "c"),
    ]

    def script(text, decoding):
        if "fail here" in text:
            return None
        if "refuse here" in text:
            return "I cannot help with that."
        return "1. it works now\n2. it works again"

    use_scripted(monkeypatch, script)
    m = _method(_ctx(seeds), contrasts=0)
    failed, refused, *ok = m.generate(seeds, "text", 2, RUN_SEED)
    assert (failed.rejection.stage, failed.rejection.code) == ("generate", "backend_error")
    assert failed.rejection.detail == "scripted backend error" and failed.label == "a"
    assert (refused.rejection.code, refused.fields["text"]) == ("parse_error", "I cannot help with that.")
    assert refused.lineage.relation == "demo" and refused.parent_ids == (seeds[1].id,)
    assert [r.fields["text"] for r in ok] == ["it works now", "it works again"]


# -- the run's generator and token budget ------------------------------------------------------
def test_one_generator_per_run_shared_by_its_methods(monkeypatch):
    loaded = use_scripted(monkeypatch, lister)
    seeds = _seeds()
    ctx = _ctx(seeds)
    a, b = _method(ctx), _method(ctx, k=2)
    a.generate(seeds[:2], "text", 1, RUN_SEED)
    b.generate(seeds[2:4], "text", 1, RUN_SEED)
    assert len(loaded) == 1 and loaded[0].calls == 4
    assert ctx.budget.spent == 4 * (PROMPT_TOKENS + COMPLETION_TOKENS)


def test_budget_stops_mid_batch_and_resume_finishes(monkeypatch):
    loaded = use_scripted(monkeypatch, lister)
    seeds = _seeds()
    per_call = PROMPT_TOKENS + COMPLETION_TOKENS
    ctx = _ctx(seeds, max_tokens_total=2 * per_call + 1)  # spent after the third call
    m = _method(ctx)
    assert not m.exhausted
    first = m.generate(seeds, "text", 2, RUN_SEED)
    assert {r.parent_ids[0] for r in first} == {s.id for s in seeds[:3]}  # a clean stop after 3 anchors
    assert m.exhausted and loaded[0].calls == 3
    # the budget is the run's: another LLM method of the same run gets nothing more
    other = _method(ctx, k=2)
    assert other.exhausted and other.generate(seeds[3:], "text", 2, RUN_SEED) == []
    assert loaded[0].calls == 3
    # --resume: the seeds not reached, in a new run, give what an unbroken run gives them
    rest = _method(_ctx(seeds)).generate(seeds[3:], "text", 2, RUN_SEED)
    unbroken = _method(_ctx(seeds)).generate(seeds, "text", 2, RUN_SEED)
    assert [r.id for r in first + rest] == [r.id for r in unbroken]


def test_dry_run_plans_without_loading_a_model(monkeypatch):
    refuse_loading(monkeypatch)
    seeds = _seeds()
    m = build_method("self_instruct", {})
    m.setup(_ctx(seeds, planning=True, chat=None))
    plan = m.plan(seeds, "text", 3)
    assert plan["calls"] == len(seeds) and plan["prompt_tokens"] > 0
    assert plan["completion_tokens_max"] == len(seeds) * 160
    assert m.generator is None and m.params()["max_new_tokens"] == 160
    instr = _instruction_seeds()
    m = build_method("self_instruct", {})
    m.setup(_ctx(instr, task=INSTRUCTION, fields=("instruction",), language="zh", planning=True, chat=None))
    assert m.plan(instr, "instruction", 2)["calls"] == 3 * len(instr)


# -- instruction data --------------------------------------------------------------------------
def _instruction_seeds():
    return [
        seed_record(INSTRUCTION, {k: r[k] for k in ("instruction", "input", "output")}, None)
        for r in read_jsonl(ZH_INSTRUCTIONS / "seeds.jsonl")[:4]
    ]


def test_instruction_loop_refuses_near_copies_and_answers_the_rest(monkeypatch):
    def script(text, decoding):
        if "任务指令" not in text:  # an answer prompt
            return "" if "空白" in text else "这是回答。"
        anchor = re.search(r"^1\. (.+)$", text, re.M).group(1)
        near = anchor[:-1] + "？"  # a near copy of the anchor: ROUGE-L far above 0.7
        return f"1. 请把下面的句子翻译成英文\n2. {near}\n3. 请为下面句子的空白处填写合适的词"

    use_scripted(monkeypatch, script)
    seeds = _instruction_seeds()
    ctx = _ctx(seeds, task=INSTRUCTION, fields=("instruction",), language="zh")
    m = _method(ctx)
    out = m.generate(seeds, "instruction", 3, RUN_SEED)
    assert len(out) == 3 * len(seeds)
    for s in seeds:
        near, answered, empty = [r for r in out if r.parent_ids[0] == s.id]
        # refused drafts first, then the answered ones; ids keep each draft's place in the list
        assert (near.rejection.stage, near.rejection.code) == ("generate", "rouge_too_close")
        assert re.fullmatch(r"ROUGE-L [01]\.\d{3} > 0\.7 to an existing instruction", near.rejection.detail)
        assert near.fields["output"] == s.fields["output"]  # not answered
        assert answered.rejection is None and answered.fields == {
            "instruction": "请把下面的句子翻译成英文",
            "input": "",
            "output": "这是回答。",
        }
        assert (empty.rejection.code, empty.rejection.detail) == ("empty_output", "the model gave no answer")
        for index, r in ((1, near), (0, answered), (2, empty)):
            assert r.lineage.field == "instruction" and r.lineage.relation == "demo" and r.label is None
            made = s.derive(
                "instruction", r.fields["instruction"], method="self_instruct", lineage=r.lineage, index=index
            )
            assert r.id == made.id
