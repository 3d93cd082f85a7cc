"""Filters on the step registry: typed configs, the flat FilterConfig built from them, the default
chain, the contract every registered filter keeps, and dedup's three indexes on their own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pytest

from augment import config as config_module
from augment import steps
from augment.config import FILTERS, ExpandConfig, FilterConfig
from augment.errors import ConfigError
from augment.filters import FilterContext, FilterStep, Verdict, build_chain, default_chain, make_filter
from augment.filters.dedup import EmbeddingIndex, ExactIndex, TextIndex
from augment.record import CLASSIFICATION, Lineage, Record, seed_record

# what the YAML keys, the manifest's filters.thresholds and --help said before the registry
THRESHOLDS = {
    "min_chars": (2, "quality: drop candidates shorter than this"),
    "min_length_ratio": (0.3, "quality: length / parent length, lower"),
    "max_length_ratio": (3.0, "quality: length / parent length, upper"),
    "max_repeat_ngram_ratio": (
        0.3,
        "quality: drop text whose repeated n-grams (4 characters for CJK, 3 words otherwise) exceed "
        "this share of all its n-grams: a model looping; 1 turns it off",
    ),
    "check_truncation": (
        True,
        "quality: drop a generated answer that ends without sentence-final punctuation when its "
        "parent's answer ends with it (cut off at the token limit)",
    ),
    "min_similarity": (0.6, "similarity: drop candidates less similar than this to their parent"),
    "max_similarity": (0.995, "similarity: drop candidates more similar than this to their parent"),
    "near_duplicate": (0.985, "dedup: calibrated similarity to a seed or kept candidate"),
    "minhash_threshold": (0.8, "dedup: Jaccard of character (CJK) or word bigrams"),
    "label_margin": (0.1, "label: P(label) - max P(other) from a seed classifier, at least"),
    "label_classifier": ("logreg", "label: logreg, prototype or knn"),
    "min_novelty": (0.0, "novelty: 1 - max similarity to any seed"),
    "per_class_budget": (None, "diversity: keep at most this many per label (k-center greedy)"),
    # opt-in filters follow the default chain's (decontaminate: with --test/--eval)
    "eval_jaccard": (0.6, "decontaminate: Jaccard of character (CJK) or word bigrams to a test row, at least: a near copy"),
    "eval_similarity": (0.95, "decontaminate: calibrated similarity to a test row, at least: a near copy"),
}


def test_default_chain_and_flat_keys_are_unchanged():
    assert FILTERS == ("quality", "script", "similarity", "dedup", "label", "novelty", "diversity")
    assert default_chain() == FILTERS
    d = dataclasses.asdict(FilterConfig())
    assert list(d) == ["chain", *THRESHOLDS]  # the manifest's thresholds keep their order
    assert d["chain"] == list(FILTERS)
    assert {k: v for k, v in d.items() if k != "chain"} == {k: v[0] for k, v in THRESHOLDS.items()}
    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(FilterConfig)}
    assert {k: helps[k] for k in THRESHOLDS} == {k: v[1] for k, v in THRESHOLDS.items()}
    assert FilterConfig.__module__ == "augment.config" and "calibrated" in FilterConfig.__doc__


def test_every_filter_declares_a_typed_config_with_help_and_a_summary():
    for s in steps.specs("filter"):
        assert issubclass(s.factory, FilterStep) and s.summary, s.name
        for row in s.parameters():
            assert row["help"] and not row["help"].startswith(f"{s.name}:"), (s.name, row)
            assert getattr(FilterConfig(), row["name"]) == row["default"]
        built = make_filter(s.name)
        assert built.name == s.name and isinstance(built.config, s.config)
        assert FilterConfig().step_config(s.name) == built.config


@pytest.mark.parametrize(
    "data, message",
    [
        ({"min_similarity": 0.9, "max_similarity": 0.9}, "filters.min_similarity must be below filters.max_similarity, got 0.9 >= 0.9"),
        ({"per_class_budget": 0}, "filters.per_class_budget must be >= 1, got 0"),
        ({"min_chars": -1}, "filters.min_chars must be >= 0, got -1"),
        ({"min_length_ratio": 4}, "filters.max_length_ratio must be at least filters.min_length_ratio, got 3.0 < 4.0"),
        ({"minhash_threshold": 0}, "filters.minhash_threshold must be > 0, got 0.0"),
        ({"label_classifier": "logrg"}, "filters.label_classifier must be one of knn, prototype, logreg, got 'logrg' (did you mean 'logreg'?)"),
        ({"chain": ["quality", "dedupe"]}, "filters.chain: unknown filter 'dedupe' (did you mean 'dedup'?); known: quality, script, similarity, dedup, label, novelty, diversity, decontaminate"),
    ],
)  # fmt: skip
def test_range_messages_name_the_flat_key(data, message):
    with pytest.raises(ConfigError) as err:
        ExpandConfig.from_dict({"filters": data})
    assert str(err.value) == message


def test_build_chain_gives_each_filter_its_thresholds_language_and_seed():
    fc = FilterConfig(chain=["dedup", "script", "label"], near_duplicate=0.9, label_margin=0.2)
    chain = build_chain(fc, "zh", seed=7)
    assert [f.name for f in chain] == ["dedup", "script", "label"]
    assert chain[0].config.near_duplicate == 0.9 and chain[2].config.label_margin == 0.2
    assert all((f.language, f.seed) == ("zh", 7) for f in chain)
    assert [f.needs_embeddings for f in chain] == [True, False, True]


# -- the contract, once for every registered filter ---------------------------------------------
def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def _contract_ctx():
    rng = np.random.default_rng(0)
    seeds = [seed_record(CLASSIFICATION, {"text": f"seed text number {i}"}, "AB"[i % 2]) for i in range(6)]
    cands = [
        s.derive("text", s.fields["text"] + (" again" if k else ""), method="t", lineage=Lineage(), index=k)
        for s in seeds
        for k in range(2)
    ]
    cands.append(Record(id="pool-1", task=CLASSIFICATION, fields={"text": "a pool row"}, label="A"))
    ctx = FilterContext(
        seeds=seeds, field="text", seed_vectors=np.stack([_unit(rng.standard_normal(8)) for _ in seeds])
    )
    ctx.candidate_vectors = {c.id: _unit(rng.standard_normal(8)) for c in cands}
    return cands, ctx


@pytest.mark.parametrize("name", steps.names("filter"))
def test_one_verdict_per_candidate_in_order(name):
    cands, ctx = _contract_ctx()
    flt = make_filter(name, language="en", seed=1)
    verdicts = flt(cands, ctx)
    assert len(verdicts) == len(cands) and all(isinstance(v, Verdict) for v in verdicts)
    assert all(v.keep or v.code for v in verdicts)  # a drop always says why
    assert flt(cands, ctx) == verdicts  # and the same again
    assert flt([], ctx) == []


# -- adding a filter is one registration ------------------------------------------------------
@dataclass
class _MaxLengthConfig:
    max_chars: int = field(default=500, metadata={"help": "drop candidates longer than this"})

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ConfigError(f"max_chars must be >= 1, got {self.max_chars}")


class _MaxLength(FilterStep):
    needs_embeddings = False
    default_position = 15

    def __call__(self, candidates, ctx):
        return [Verdict(len(c.fields[ctx.field]) <= self.config.max_chars) for c in candidates]


@pytest.fixture
def max_length_registered():
    steps.register_filter("max_length", _MaxLengthConfig, summary="drops overlong candidates")(_MaxLength)
    yield
    del steps._REGISTRY[("filter", "max_length")]


def test_a_new_filter_file_is_all_it_takes(max_length_registered):
    assert default_chain() == ("quality", "max_length", *FILTERS[1:])
    cls = config_module._filter_config_class()
    names = [f.name for f in dataclasses.fields(cls)]
    assert names[:7] == [
        "chain", "min_chars", "min_length_ratio", "max_length_ratio", "max_repeat_ngram_ratio", "check_truncation",
        "max_chars",
    ]
    help_ = {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}["max_chars"]
    assert help_ == "max_length: drop candidates longer than this"
    with pytest.raises(ConfigError, match=r"^filters\.max_chars must be >= 1, got 0$"):
        cls(max_chars=0)
    fc = cls(chain=["max_length"], max_chars=3)
    (flt,) = build_chain(fc, "en")
    cands, ctx = _contract_ctx()
    assert not any(v.keep for v in flt(cands, ctx))


def test_parameter_names_must_be_unique_across_filters():
    @dataclass
    class Clash:
        min_chars: int = field(default=1, metadata={"help": "clashes with quality"})

    steps.register_filter("clash", Clash)(_MaxLength)
    try:
        with pytest.raises(TypeError, match="'min_chars' is also 'quality'"):
            config_module._filter_config_class()
    finally:
        del steps._REGISTRY[("filter", "clash")]


# -- dedup's indexes, one by one -----------------------------------------------------------------
def _rows(texts, parent=None):
    seeds = [seed_record(CLASSIFICATION, {"text": "我的银行卡丢了请帮我挂失"}, "card")]
    base = parent or seeds[0]
    cands = [base.derive("text", t, method="t", lineage=Lineage(), index=i) for i, t in enumerate(texts)]
    return seeds, cands


def test_exact_index_finds_seeds_then_kept_candidates():
    seeds, cands = _rows(["我的银行卡丢了，请帮我挂失！", "别的话", "别的 话"])
    index = ExactIndex(seeds, [s.fields["text"] for s in seeds], cands, [c.fields["text"] for c in cands])
    m = index.match(0)
    assert (m.kind, m.other, m.score, m.duplicate) == ("seed", seeds[0].id, 1.0, True)
    assert index.match(1) is None and index.match(2) is None
    index.add(1)
    m = index.match(2)
    assert (m.kind, m.other) == ("candidate", cands[1].id) and m.detail == f"same text as {cands[1].id}"


def test_text_index_skips_the_parent_and_confirms_with_jaccard():
    seeds, cands = _rows(["我的银行卡丢了请帮我挂失吧", "手续费太多了我要投诉", "手续费太多了我要投诉啊"])
    texts = [c.fields["text"] for c in cands]
    index = TextIndex(
        seeds, [s.fields["text"] for s in seeds], cands, texts, language="zh", threshold=0.8, lsh_seed=1
    )
    assert index.match(0) is None  # a near copy of its own parent: the similarity band's call
    assert index.match(2) is None
    index.add(1)
    m = index.match(2)
    assert (m.kind, m.other, m.duplicate) == ("candidate", cands[1].id, True) and 0.8 <= m.score < 1
    assert "Jaccard" in m.detail


def test_embedding_index_reports_the_nearest_and_flags_duplicates():
    other = seed_record(CLASSIFICATION, {"text": "房贷"}, "loan")
    seeds, cands = _rows(["a", "b", "c"])
    seeds = [*seeds, other]
    ctx = FilterContext(
        seeds=seeds, field="text", seed_vectors=np.stack([_unit([1, 0, 0]), _unit([0, 1, 0])])
    )
    ctx.candidate_vectors = {
        cands[0].id: _unit([1, 0, 0]),  # identical to its parent (excluded), orthogonal to the other seed
        cands[1].id: _unit([0, 0.1, 1]),
        cands[2].id: _unit([0, 0.1, 1.001]),
    }
    for banded in (False, True):
        index = EmbeddingIndex(ctx, cands, threshold=0.985, banded=banded, seed=0)
        m = index.match(0)
        assert (m.kind, m.other, m.duplicate) == ("seed", other.id, False) and m.score == 0.0
        index.add(0)
        index.add(1)
        m = index.match(2)
        assert (m.kind, m.other, m.duplicate) == ("candidate", cands[1].id, True) and m.score > 0.985
