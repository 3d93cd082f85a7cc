"""The step contract, checked once for every registered method and filter (augment/steps.py).

Methods (each on Chinese and English seeds): at most ``n`` candidates per seed, the seed as the first
parent, the method's name on every candidate and the field in its lineage, and no kept candidate
that echoes a parent unchanged: an unchanged output comes back as a rejected candidate with stage
``generate``. Pool labellers: one candidate per pool row. Filters: one verdict per candidate, in order.

Model-free: LLM methods run on the fake generator (tests/fakes.py), embeddings come from the
``hashing`` embedder. A method that needs a model of its own (contextual: a masked LM) runs on a tiny
one built here and is marked ``models``. A method registered later is picked up automatically; give
it params below if its defaults need a model.
"""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import EN_CLINIC, ZH_BANK, read_jsonl
from fakes import first_list

from augment import steps
from augment.config import FILTERS, FilterConfig
from augment.context import RunContext
from augment.errors import ConfigError
from augment.filters import Filter, FilterContext, Verdict, build_chain, seed_baseline
from augment.language import normalise
from augment.record import CLASSIFICATION, seed_record

N = 3
RUN_SEED = 13
# params that make a method model-free here (the LLM backend: answered by the fake generator)
PARAMS = {"backtranslate": {"backend": "llm"}, "paraphrase": {"backend": "llm"}}
LLM = {"backtranslate", "paraphrase", "self_instruct"}
NEEDS_A_MODEL = {"contextual"}  # a masked LM: a tiny one, trained in the test
UNSUPPORTED = {("synonym", "zh")}  # refused at setup, with a ConfigError (tested in test_methods.py)

METHODS = steps.names("method")


def _marks(name: str):
    return [pytest.mark.models] if name in NEEDS_A_MODEL else []


def _seeds(folder, per_label: int = 2, labels: int = 3):
    rows = read_jsonl(folder / "seeds.jsonl")
    picked, seen = [], Counter()
    for r in rows:
        if seen[r["label"]] < per_label and (r["label"] in seen or len(seen) < labels):
            seen[r["label"]] += 1
            picked.append(seed_record(CLASSIFICATION, {"text": r["text"]}, r["label"]))
    return picked


SEEDS = {"zh": _seeds(ZH_BANK), "en": _seeds(EN_CLINIC)}
# a one-word seed most methods cannot change: it must come back rejected, never kept as is
SHORT = {"zh": "好", "en": "hello"}


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory):
    from tiny_mlm import build_bert

    texts = [s.fields["text"] for seeds in SEEDS.values() for s in seeds]
    return build_bert(tmp_path_factory.mktemp("contract-mlm") / "bert", texts)


def _build(name: str, language: str, request) -> object:
    params = dict(PARAMS.get(name, {}))
    if name in NEEDS_A_MODEL:
        params["model"] = str(request.getfixturevalue("tiny_mlm"))
    method = steps.build("method", name, params)
    seeds = SEEDS[language]
    try:
        method.setup(RunContext(seeds=seeds, language=language, pool=_pool(language)))
    except ConfigError:
        if (name, language) in UNSUPPORTED:
            pytest.skip(f"{name} does not support {language}")
        raise
    assert (name, language) not in UNSUPPORTED, f"{name} now supports {language}: drop it from UNSUPPORTED"
    return method


def _pool(language: str):
    folder = ZH_BANK if language == "zh" else EN_CLINIC
    return [
        seed_record(CLASSIFICATION, {"text": r["text"]}, None, origin="pool")
        for r in read_jsonl(folder / "unlabeled.jsonl")[:20]
    ]


def _is_pool_labeller(method) -> bool:
    return getattr(method, "role", "seeds") == "pool"


def _check_seed_method_outputs(name, batch, out, n):
    by_id = {s.id: s for s in batch}
    per_seed = Counter()
    for c in out:
        assert c.parent_ids, f"{name}: a candidate without parents"
        assert c.parent_ids[0] in by_id, f"{name}: first parent {c.parent_ids[0]} is not a seed of the batch"
        per_seed[c.parent_ids[0]] += 1
        assert c.method == name, f"{name}: candidate names method {c.method!r}"
        assert c.lineage.field == "text", f"{name}: lineage field {c.lineage.field!r}"
        assert c.origin != "seed"
        if c.rejection is not None:
            continue
        text = normalise(c.fields["text"])
        parents = [by_id[p] for p in c.parent_ids if p in by_id]
        assert all(text != normalise(p.fields["text"]) for p in parents), (
            f"{name}: kept candidate {c.fields['text']!r} echoes a parent unchanged"
        )
    assert all(k <= n for k in per_seed.values()), f"{name}: more than {n} candidates for a seed: {per_seed}"
    return per_seed


def _unchanged_are_rejected_at_generate(name, batch, out):
    by_id = {s.id: s for s in batch}
    for c in out:
        seed = by_id[c.parent_ids[0]]
        if normalise(c.fields.get("text", "")) == normalise(seed.fields["text"]):
            assert c.rejection is not None and c.rejection.stage == "generate", (name, c)


# -- methods ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("name", [pytest.param(m, marks=_marks(m)) for m in METHODS])
def test_method_contract(name, language, request, fake_generator, hashing_embedder):
    method = _build(name, language, request)
    seeds = SEEDS[language]
    if _is_pool_labeller(method):
        pool = _pool(language)
        out = method.label_pool(pool, seeds, "text", hashing_embedder, RUN_SEED)
        assert len(out) == len(pool), f"{name}: one candidate per pool row"
        assert [c.fields["text"] for c in out] == [p.fields["text"] for p in pool]
        assert all(c.method == name for c in out)
        assert all(c.rejection is None or c.rejection.code for c in out)
        return
    short = seed_record(CLASSIFICATION, {"text": SHORT[language]}, seeds[0].label)
    batch = [*seeds, short]
    out = method.generate(batch, "text", N, RUN_SEED)
    assert out, f"{name}: nothing at all for {len(batch)} seeds"
    per_seed = _check_seed_method_outputs(name, batch, out, N)
    _unchanged_are_rejected_at_generate(name, batch, out)
    assert sum(per_seed.values()) == len(out)
    if name in LLM:
        assert fake_generator.calls > 0, f"{name} did not use the run's generator"


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("name", [pytest.param(m, marks=_marks(m)) for m in METHODS])
def test_method_respects_n(name, n, request, fake_generator):
    method = _build(name, "en", request)
    if _is_pool_labeller(method):
        pytest.skip("a pool labeller labels the pool; n does not apply")
    out = method.generate(SEEDS["en"], "text", n, RUN_SEED)
    _check_seed_method_outputs(name, SEEDS["en"], out, n)


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("name", sorted(LLM & set(METHODS)))
def test_llm_method_that_gets_its_input_back_rejects_it_at_generate(name, language, request, fake_generator):
    """The model answers with the seed text itself (self_instruct: with its demonstrations, the
    candidate's parents): nothing is kept, everything is rejected at stage generate."""
    seeds = SEEDS[language]
    texts = sorted((s.fields["text"] for s in seeds), key=len, reverse=True)

    def echo(prompt, index, decoding):
        if name == "self_instruct":
            demos = first_list(prompt)
            return "\n".join(f"{i + 1}. {t}" for i, t in enumerate(demos))
        found = [t for t in texts if t in prompt]
        return found[0] if found else None

    fake_generator.script(echo)
    method = _build(name, language, request)
    out = method.generate(seeds, "text", 2, RUN_SEED)
    assert out and all(c.rejection is not None and c.rejection.stage == "generate" for c in out), [
        (c.fields["text"], c.rejection) for c in out
    ]
    _check_seed_method_outputs(name, seeds, out, 2)


@pytest.mark.parametrize("name", sorted(LLM & set(METHODS)))
def test_llm_method_failures_come_back_rejected(name, request, fake_generator):
    fake_generator.script(lambda prompt, index, decoding: None)  # every sample fails
    method = _build(name, "en", request)
    out = method.generate(SEEDS["en"], "text", 2, RUN_SEED)
    assert out and all(c.rejection is not None and c.rejection.stage == "generate" for c in out)
    _check_seed_method_outputs(name, SEEDS["en"], out, 2)


def test_every_method_has_a_typed_config_with_help():
    for spec in steps.specs("method"):
        rows = spec.parameters()
        assert all(r["help"] for r in rows), (spec.name, [r["name"] for r in rows if not r["help"]])


# -- filters ---------------------------------------------------------------------------------------
FILTER_NAMES = sorted(set(steps.names("filter")) | set(FILTERS))


def _filter(name: str, language: str) -> Filter:
    return build_chain(FilterConfig(chain=[name]), language, seed=RUN_SEED)[0]


def _candidates(seeds):
    """Rewrites of the seeds: near-copies, unrelated texts, an exact copy and an empty-ish one."""
    from augment.record import Lineage

    out = []
    for i, s in enumerate(seeds):
        text = s.fields["text"]
        other = seeds[(i + 1) % len(seeds)].fields["text"]
        for j, new in enumerate([text + "！" if i % 2 else text[::-1], other, text, "x"]):
            out.append(s.derive("text", new, method="swap", lineage=Lineage(field="text"), index=j))
    return out


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("name", FILTER_NAMES)
def test_filter_gives_one_verdict_per_candidate(name, language, hashing_embedder):
    seeds = SEEDS[language]
    cands = _candidates(seeds)
    flt = _filter(name, language)
    assert flt.name == name
    vecs = hashing_embedder.encode([s.fields["text"] for s in seeds])
    ctx = FilterContext(seeds=seeds, field="text", seed_vectors=vecs)
    ctx.baseline = round(seed_baseline(vecs, seed=RUN_SEED), 4)
    if flt.needs_embeddings:
        cvecs = hashing_embedder.encode([c.fields["text"] for c in cands])
        ctx.candidate_vectors.update({c.id: v for c, v in zip(cands, cvecs, strict=True)})
    verdicts = flt(cands, ctx)
    assert len(verdicts) == len(cands)
    assert all(isinstance(v, Verdict) for v in verdicts)
    assert all(v.keep or v.code for v in verdicts), "a drop names its reason"
    assert _filter(name, language)(cands, ctx) == verdicts  # deterministic
    assert len(_filter(name, language)(cands[:1], ctx)) == 1


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_filter_gives_no_verdict_for_no_candidates(name, hashing_embedder):
    seeds = SEEDS["en"]
    vecs = hashing_embedder.encode([s.fields["text"] for s in seeds])
    ctx = FilterContext(seeds=seeds, field="text", seed_vectors=vecs)
    assert _filter(name, "en")([], ctx) == []


def test_filter_names_are_the_registry_and_the_config():
    registered = steps.names("filter")
    if registered:  # once filters register as steps, the config knows the same names
        opt_in = {s.name for s in steps.specs("filter") if s.factory.default_position is None}
        assert set(registered) == set(FILTERS) | opt_in and not opt_in & set(FILTERS)
        assert FilterConfig().chain == list(FILTERS)  # opt-in filters run only when named (or given --test)
