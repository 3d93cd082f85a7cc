"""Back-translation and paraphrase without a model: their typed configs, the one Rewriter interface, the
LLM rewriter on the run's shared generator and token budget (a fake generator), dry runs, pivot slots
and rejections. (The seq2seq models, Apertium and the real LLM are in test_rewrite.py.)"""

from __future__ import annotations

import shutil

import pytest

from augment.context import RunContext
from augment.errors import ConfigError
from augment.generators import GeneratorConfig
from augment.methods import build_method
from augment.methods.rewrite import BackTranslateMethod, ParaphraseMethod
from augment.record import Record, seed_record
from augment.rewriters import LLMRewriter, Rewriter
from augment.steps import spec

ZH = [("我的银行卡丢了，怎么挂失？", "lost_card"), ("查一下余额", "balance"), ("转账三天了还没到账", "transfer")]
EN = [("Fever and cough for three days.", "urgent"), ("Rash on both arms.", "routine"), ("Chest pain.", "urgent")]


def seeds(rows=ZH) -> list[Record]:
    return [seed_record("classification", {"text": t}, label) for t, label in rows]


def context(rows=ZH, language="zh", *, planning=False, **generator) -> RunContext:
    return RunContext(
        seeds=seeds(rows), language=language, generator_config=GeneratorConfig(**generator), planning=planning
    )


def generate(method, ctx: RunContext, n: int = 2, batch_size: int = 8) -> list[Record]:
    out = []
    for i in range(0, len(ctx.seeds), batch_size):
        out.extend(method.generate(ctx.seeds[i : i + batch_size], "text", n, 13))
    return out


# -- configs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["backtranslate", "paraphrase"])
def test_configs_are_typed_with_help_and_the_old_defaults(name):
    rows = {p["name"]: p for p in spec("method", name).parameters()}
    assert all(p["help"] for p in rows.values()), [k for k, p in rows.items() if not p["help"]]
    shared = {
        "backend": "auto", "model": None, "revision": None, "device": "auto", "compute_type": "auto",
        "batch_size": 16, "num_beams": 4, "sample": None, "temperature": None, "top_p": 0.95, "top_k": 0,
        "max_new_tokens": 256,
    }  # fmt: skip
    extra = (
        {"pivots": None, "models": {}, "lang_codes": {}}
        if name == "backtranslate"
        else {"prefix": None, "domain": None, "label_names": {}, "template": None, "with_label": True}
    )
    assert {k: p["default"] for k, p in rows.items()} == {**shared, **extra}
    assert not {"aug_p", "aug_min", "aug_max"} & set(rows)


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("backtranslate", {"batch_size": 0}, "methods.params.backtranslate.batch_size must be >= 1"),
        ("backtranslate", {"backend": "moses"}, "backtranslate.backend must be one of auto, transformers, ctranslate2, apertium, llm"),
        ("paraphrase", {"backend": "apertium"}, "paraphrase.backend must be one of auto, transformers, ctranslate2, llm"),
        ("paraphrase", {"backend": "ctranslate2"}, "methods.params.paraphrase.model is needed for backend ctranslate2"),
        ("backtranslate", {"compute_type": "int4"}, "backtranslate.compute_type must be one of auto, int8"),
        ("backtranslate", {"sample": "yes"}, "backtranslate.sample must be true or false"),
        ("paraphrase", {"top_p": 1.5}, "paraphrase.top_p must be in (0, 1]"),
        ("paraphrase", {"num_beams": 0}, "paraphrase.num_beams must be >= 1"),
        ("backtranslate", {"num_beams": 2.5}, "backtranslate.num_beams must be an integer"),
        ("backtranslate", {"models": {"zh-en": 3}}, "backtranslate.models must map strings to strings"),
        ("backtranslate", {"pivots": [1]}, "backtranslate.pivots must be a language"),
        ("backtranslate", {"aug_p": 0.2}, "'aug_p'"),
    ],
)  # fmt: skip
def test_bad_params_are_config_errors_naming_the_key(name, params, message):
    with pytest.raises(ConfigError) as exc:
        build_method(name, params)
    assert message in str(exc.value)


def test_pivots_given_as_text_or_chains():
    ctx = context(planning=True)
    bt = build_method("backtranslate", {"backend": "llm", "pivots": "en, de>fr"})
    bt.setup(ctx)
    assert bt.pivots == [["en"], ["de", "fr"]]
    for pivots, message in ((["zh"], "contains the source language"), ([">"], "pivots is empty")):
        with pytest.raises(ConfigError, match=message):
            build_method("backtranslate", {"backend": "llm", "pivots": pivots}).setup(ctx)


# -- the LLM rewriter: the run's generator and budget ---------------------------------------------
def test_llm_methods_share_the_runs_generator_loaded_once_on_first_use(fake_generator):
    ctx = context()
    bt, para = build_method("backtranslate", {}), build_method("paraphrase", {})
    for m in (bt, para):
        m.setup(ctx)
        assert isinstance(m.rewriter, LLMRewriter) and m.uses_llm
    assert fake_generator.loads == []  # setup loads nothing: the first call does
    made = generate(bt, ctx) + generate(para, ctx)
    assert len(made) == 12 and len(fake_generator.loads) == 1
    usage = ctx.usage()
    assert set(usage) == {"backtranslate", "paraphrase"}
    assert usage["backtranslate"]["calls"] == 3 * 1 + 3 * 2 and usage["paraphrase"]["calls"] == 3 * 2
    assert bt.model == para.model == "fake-llm" and bt.backend == para.backend == "llm fake"


def test_the_runs_token_budget_stops_every_llm_method(fake_generator):
    ctx = context(max_tokens_total=5)
    bt, para = build_method("backtranslate", {}), build_method("paraphrase", {})
    bt.setup(ctx)
    para.setup(ctx)
    assert generate(bt, ctx, batch_size=1)[:2]  # the first batch runs, then the budget is spent
    assert ctx.budget.exhausted and bt.exhausted and para.exhausted
    assert generate(bt, ctx) == [] and generate(para, ctx) == []  # the other method too: one budget


def test_llm_lineage_and_decoding(fake_generator):
    ctx = context()
    bt = build_method("backtranslate", {})
    bt.setup(ctx)
    rows = generate(bt, ctx, n=2)
    pivot_hop, back_hop = fake_generator.decodings[:2]
    assert pivot_hop.temperature == 0.0  # the pivot is the greedy 1-best
    assert back_hop.temperature == 0.8  # the generator's temperature: two samples are wanted
    for row in rows:
        lin = row.lineage
        assert lin.field == "text" and lin.relation == "rewrite" and lin.random_seed is not None
        assert (lin.backend, lin.model, lin.model_revision) == ("llm fake", "fake-llm", fake_generator.revision)
        assert list(lin.params) == ["backend", "pivots", "decoding", "pivot_text"]
        assert lin.params["decoding"] == {"sample": True, "temperature": 0.8, "top_p": 0.95}
        assert lin.params["pivots"] == ["en"] and lin.params["pivot_text"]
    para = build_method("paraphrase", {"label_names": {"balance": "查询余额"}, "domain": "银行"})
    para.setup(ctx)
    rows = generate(para, ctx, n=1)
    assert rows[0].lineage.params == {
        "backend": "llm",
        "domain": "银行",
        "label_names": {"balance": "查询余额"},
        "with_label": True,
        "decoding": {"sample": True, "temperature": 0.8, "top_p": 0.95},
        "mode": "chat",
    }
    assert any("查询余额" in p and "银行" in p for p in fake_generator.prompts)


def test_each_failed_hop_is_a_rejected_candidate_with_its_reason(fake_generator, monkeypatch):
    ctx = context()
    bt = build_method("backtranslate", {})
    bt.setup(ctx)
    fake_generator.script(lambda prompt, i, dec: None if dec.temperature == 0 else "再来一次")
    first = bt.generate(ctx.seeds[:1], "text", 2, 13)
    assert [(r.rejection.code, r.rejection.detail) for r in first] == [("empty_pivot", "zh->en gave no text")] * 2
    fake_generator.script(lambda prompt, i, dec: "once more" if dec.temperature == 0 else None)
    second = bt.generate(ctx.seeds[1:2], "text", 2, 13)
    assert [r.rejection.code for r in second] == ["empty_output"] * 2
    assert second[0].rejection.detail == "en->zh gave no text" and second[0].lineage.params["pivot_text"]

    def broken(prompts, n, decoding):
        raise RuntimeError("server down")

    monkeypatch.setattr(fake_generator, "generate", broken)
    third = bt.generate(ctx.seeds[2:], "text", 2, 13)
    assert {(r.rejection.code, r.rejection.detail) for r in third} == {
        ("backend_error", "zh->en: RuntimeError: server down")
    }
    para = build_method("paraphrase", {})
    para.setup(ctx)
    fourth = para.generate(ctx.seeds[:1], "text", 2, 13)
    assert {(r.rejection.stage, r.rejection.code, r.rejection.detail) for r in fourth} == {
        ("generate", "backend_error", "RuntimeError: server down")
    }


def test_paraphrase_echo_and_empty_answers_are_rejected(fake_generator):
    ctx = context()
    para = build_method("paraphrase", {})
    para.setup(ctx)
    fake_generator.script([None, "查一下余额"])
    rows = para.generate(ctx.seeds[1:2], "text", 2, 13)
    assert [(r.rejection.code, r.rejection.detail) for r in rows] == [
        ("empty_output", "the model gave no text"),
        ("unchanged", "the method returned its input"),
    ]


# -- dry runs and backends without an LLM ----------------------------------------------------------
def test_a_dry_run_loads_nothing_and_estimates_llm_calls(fake_generator):
    ctx = context(planning=True)
    bt = build_method("backtranslate", {"pivots": ["en", "ja"], "max_new_tokens": 20})
    para = build_method("paraphrase", {})
    model_para = build_method("paraphrase", {"model": "/nonexistent/para"})
    model_bt = build_method("backtranslate", {"model": "/nonexistent/mt-{src}-{tgt}"})
    for m in (bt, para, model_para, model_bt):
        m.setup(ctx)
    assert fake_generator.loads == []
    assert bt.plan(ctx.seeds, "text", 2) == {
        "calls": 3 * 2 * 2,
        "prompt_tokens": 3 * 2 * 2 * 120 + sum(len(t) for t, _ in ZH) * 2 * 2,
        "completion_tokens_max": 3 * 20 * (2 + 2),
    }
    assert para.plan(ctx.seeds, "text", 2)["calls"] == 6
    assert model_para.plan(ctx.seeds, "text", 2) == {} and not model_para.uses_llm
    assert model_bt.plan(ctx.seeds, "text", 2) == {} and not model_bt.uses_llm
    assert model_bt.model == "/nonexistent/mt-zh-en -> /nonexistent/mt-en-zh"


def test_generate_or_plan_before_setup_is_an_error():
    with pytest.raises(RuntimeError, match="setup"):
        build_method("paraphrase", {}).generate(seeds()[:1], "text", 1, 13)
    with pytest.raises(RuntimeError, match="setup"):
        build_method("backtranslate", {}).plan(seeds(), "text", 1)


# -- the interface: any Rewriter will do -----------------------------------------------------------
class OneBest:
    """A rule-based stand-in (as Apertium is): one output per text whatever n, no sampling."""

    kind, backend, prompted, keeps_line_state, default_temperature = "onebest", "onebest 1", False, False, 1.0

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def load(self, directions=()):
        pass

    def model_for(self, src=None, tgt=None):
        return f"onebest {src}-{tgt}", None

    def params(self):
        return {}

    def sampling(self, configured, n, role):
        return configured

    def batch_independent(self, sample):
        return True

    def decoding_params(self, decoding):
        return {}

    def rewrite_params(self):
        return {}

    def translate(self, texts, src, tgt, n, decoding):
        self.calls.append((src, tgt, len(texts)))
        return [[f"{t} [{src}>{tgt}]"] for t in texts]

    def rewrite(self, texts, n, decoding, labels):
        return [[f"{t}!"] * n for t in texts]


def test_a_pivot_that_gives_fewer_outputs_keeps_its_slots(fake_generator):
    ctx = context()
    bt = build_method("backtranslate", {"pivots": ["en", "ja"]})
    bt.setup(ctx)
    stub: Rewriter = OneBest()
    bt.rewriter = stub
    rows = generate(bt, ctx, n=4)
    assert [r.lineage.params["pivots"] for r in rows] == [["en"], ["ja"]] * 3  # one per pivot, in order
    for seed, row in zip([s for s in ctx.seeds for _ in (0, 1)], rows, strict=True):
        slot = 0 if row.lineage.params["pivots"] == ["en"] else 2  # en makes slots 0-1, ja 2-3
        again = seed.derive("text", row.fields["text"], method="backtranslate", lineage=row.lineage, index=slot)
        assert again.id == row.id
        assert row.lineage.model == f"onebest zh-{row.lineage.params['pivots'][0]} -> onebest " + (
            f"{row.lineage.params['pivots'][0]}-zh"
        )
    # batch-independent decoding: the same rows whatever the batch size
    assert [r.id for r in generate(bt, ctx, n=4, batch_size=1)] == [r.id for r in rows]
    assert isinstance(bt, BackTranslateMethod) and not isinstance(bt, ParaphraseMethod)


@pytest.mark.skipif(shutil.which("apertium") is None, reason="apertium not installed")
def test_apertium_rows_do_not_depend_on_the_batch_size():
    ctx = context(EN, "en")
    bt = build_method("backtranslate", {})
    bt.setup(ctx)
    assert bt.rewriter.kind == "apertium" and not bt.uses_llm and bt.plan(ctx.seeds, "text", 1) == {}
    one = [r.to_dict() for r in generate(bt, ctx, n=1, batch_size=1)]
    bt2 = build_method("backtranslate", {})
    bt2.setup(ctx)
    assert [r.to_dict() for r in generate(bt2, ctx, n=1, batch_size=3)] == one
