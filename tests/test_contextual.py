"""The ``contextual`` method: masked-LM word substitution, on tiny BERT / RoBERTa models built from the
sample texts (random weights, so the words are nonsense, but every rule about what may be replaced, and
by what, is checked), and once end to end through ``augment expand``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import EN_CLINIC, ZH_BANK, error_lines, invoke, read_jsonl
from tiny_mlm import build_bert, build_roberta

from augment.context import RunContext
from augment.errors import AugmentError, BackendError, ConfigError
from augment.language import NON_WORD_TOKEN, is_cjk, tokenizer_for
from augment.methods import available_methods, build_method
from augment.methods.base import candidate_seed
from augment.methods.lexical import ENGLISH_STOPWORDS
from augment.record import seed_record

RUN_SEED = 13
PARAM_KEYS = {"aug_p", "aug_min", "aug_max", "top_k", "temperature", "tokenizer", "masking"}


def _texts(folder, n=None):
    return [r["text"] for r in read_jsonl(folder / "seeds.jsonl")[:n]]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    texts = _texts(ZH_BANK) + _texts(EN_CLINIC)
    root = tmp_path_factory.mktemp("mlm")
    return {"bert": build_bert(root / "bert", texts), "roberta": build_roberta(root / "roberta", texts)}


@pytest.fixture(scope="module")
def zh_batch():
    return [
        seed_record("classification", {"text": r["text"]}, r["label"])
        for r in read_jsonl(ZH_BANK / "seeds.jsonl")[:8]
    ]


@pytest.fixture(scope="module")
def en_batch():
    rows = read_jsonl(EN_CLINIC / "seeds.jsonl")[:8]
    return [seed_record("classification", {"text": r["text"]}, r["label"]) for r in rows]


def _ctx(language, **kw):
    return RunContext(seeds=[], language=language, **kw)


def _method(model, language, **params):
    m = build_method("contextual", {"model": str(model), **params})
    m.setup(_ctx(language))
    return m


@pytest.fixture(scope="module")
def zh_method(models):
    return _method(models["bert"], "zh", aug_p=0.3)


@pytest.fixture(scope="module", params=["bert", "roberta"])
def en_method(request, models):
    return request.param, _method(models[request.param], "en", aug_p=0.3)


def _kept(cands):
    return [c for c in cands if c.rejection is None]


def test_registered():
    assert "contextual" in available_methods()


def test_chinese_fills_han_characters_only_and_keeps_punctuation(zh_method, zh_batch):
    cands = zh_method.generate(zh_batch, "text", 2, RUN_SEED)
    assert len(cands) == 2 * len(zh_batch)
    kept = _kept(cands)
    assert len(kept) >= len(cands) - 2
    parents = {s.id: s.fields["text"] for s in zh_batch}
    for c in kept:
        new, old = c.fields["text"], parents[c.parent_ids[0]]
        assert new != old
        assert " " not in new  # joined without spaces
        assert len(new) == len(old)  # a word of L characters gets L characters
        for a, b in zip(old, new, strict=True):
            if a != b:
                assert is_cjk(a) and is_cjk(b), (old, new)
            elif not is_cjk(a):
                assert a == b  # punctuation, digits, Latin letters stay where they were


def test_english_replaces_content_words_by_whole_words(en_method, en_batch):
    kind, m = en_method
    vocab = m._tokenizer.get_vocab()
    cands = m.generate(en_batch, "text", 2, RUN_SEED)
    kept = _kept(cands)
    assert len(kept) >= len(cands) - 2
    split = tokenizer_for("en")
    parents = {s.id: s.fields["text"] for s in en_batch}
    for c in kept:
        old, new = split(parents[c.parent_ids[0]]), split(c.fields["text"])
        assert len(old) == len(new) and old != new
        for a, b in zip(old, new, strict=True):
            if re.match(NON_WORD_TOKEN, a):
                assert a == b  # punctuation never edited
            if a == b:
                continue
            assert a.lower() not in ENGLISH_STOPWORDS and b.casefold() != a.casefold()
            assert re.fullmatch(r"[A-Za-z]+(?:['\-][A-Za-z]+)*", b), b
            assert a[0].isupper() == b[0].isupper()  # capitalisation carried over
            if kind == "bert":  # a whole WordPiece entry, never a "##" continuation
                assert b.lower() in vocab
            else:  # a byte-level BPE entry that starts a word
                assert "Ġ" + b in vocab or "Ġ" + b.lower() in vocab or "Ġ" + b.capitalize() in vocab


def test_substitute_vocabulary_rules(models):
    bert_en = _method(models["bert"], "en")
    pieces = bert_en._tokenizer.convert_ids_to_tokens(list(range(len(bert_en._tokenizer))))
    allowed = [p for p, ok in zip(pieces, bert_en._vocab.allowed.tolist(), strict=True) if ok]
    assert allowed and not any(p.startswith("##") or p.startswith("[") for p in allowed)
    assert all(p.isascii() and p.isalpha() for p in allowed)
    rob = _method(models["roberta"], "en")
    pieces = rob._tokenizer.convert_ids_to_tokens(list(range(len(rob._tokenizer))))
    allowed = [p for p, ok in zip(pieces, rob._vocab.allowed.tolist(), strict=True) if ok]
    assert allowed and all(p.startswith("Ġ") for p in allowed)
    bert_zh = _method(models["bert"], "zh")
    surfaces = [
        s for s, ok in zip(bert_zh._vocab.surfaces, bert_zh._vocab.allowed.tolist(), strict=True) if ok
    ]
    assert surfaces and all(len(s) == 1 and is_cjk(s) for s in surfaces)


def test_masked_positions_only_give_the_same_logits(models):
    import torch

    m = _method(models["roberta"], "en")
    mask = m._tokenizer.mask_token
    texts = [f"Chest pain {mask} at night.", f"{mask} heel pain with first steps every morning for 3 weeks"]
    rows = m._predict(texts)
    enc = m._tokenizer(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        full = m._mlm(**enc).logits  # no positions set: the hook leaves the output layer alone
    first = (enc["input_ids"] == m._mask_id).int().argmax(dim=1)
    for i, row in enumerate(rows):
        assert torch.allclose(row, full[i, first[i]], atol=1e-5)


def test_lineage(zh_method, zh_batch, models):
    cands = zh_method.generate(zh_batch[:3], "text", 2, RUN_SEED)
    for c in cands:
        lin = c.lineage
        assert c.method == "contextual" and c.origin == "augmented"
        assert lin.backend.startswith("transformers ") and lin.model == str(models["bert"])
        assert set(lin.params) == PARAM_KEYS and lin.field == "text" and lin.relation == "rewrite"
        assert lin.params["tokenizer"] == "jieba" and lin.params["masking"] == "per-character"
        k = [x for x in cands if x.parent_ids == c.parent_ids].index(c)
        assert lin.random_seed == candidate_seed(RUN_SEED, "contextual", c.parent_ids[0], k)
    assert zh_method.model == str(models["bert"]) and zh_method.backend == cands[0].lineage.backend


def test_same_seed_same_output_whatever_the_batching(models, zh_batch, en_batch):
    for lang, batch in (("zh", zh_batch), ("en", en_batch)):
        small = _method(models["bert"], lang, batch_size=1, aug_p=0.3)
        large = _method(models["bert"], lang, batch_size=64, aug_p=0.3)
        one = [c.fields["text"] for c in small.generate(batch, "text", 2, RUN_SEED)]
        split = large.generate(batch[:3], "text", 2, RUN_SEED) + large.generate(
            batch[3:], "text", 2, RUN_SEED
        )
        assert one == [c.fields["text"] for c in split]
        assert [c.id for c in large.generate(batch, "text", 2, RUN_SEED)] == [c.id for c in split]
        other = [c.fields["text"] for c in large.generate(batch, "text", 2, RUN_SEED + 1)]
        assert other != one


def test_nothing_to_replace_is_rejected_not_dropped(zh_method, models):
    seeds = [
        seed_record("classification", {"text": "and so it is."}, "x"),
        seed_record("classification", {"text": "？！。。"}, "x"),
    ]
    en = _method(models["bert"], "en")
    for m, seed in ((en, seeds[0]), (zh_method, seeds[1])):
        (cand,) = m.generate([seed], "text", 1, RUN_SEED)
        assert cand.rejection is not None
        assert (cand.rejection.stage, cand.rejection.code) == ("generate", "unchanged")
        assert cand.fields["text"] == seed.fields["text"] and cand.rejection.detail


def test_unknown_and_bad_params_are_config_errors():
    with pytest.raises(ConfigError, match=r"contextual: unknown parameter 'topk' \(did you mean 'top_k'\?\)"):
        build_method("contextual", {"topk": 5})
    for bad, key in (
        ({"top_k": 0}, "top_k"),
        ({"temperature": 0}, "temperature"),
        ({"batch_size": 0}, "batch_size"),
        ({"aug_p": 1.5}, "aug_p"),
        ({"aug_min": 3, "aug_max": 2}, "aug_min"),
        ({"model": 3}, "model"),
    ):
        with pytest.raises(ConfigError, match=rf"^methods\.params\.contextual\.{key}"):
            build_method("contextual", bad)
    with pytest.raises(ConfigError, match="device"):
        build_method("contextual", {"model": "x", "device": "tpu"}).setup(_ctx("en"))


def test_typed_config_with_help_and_shared_defaults():
    from augment.config import MethodsConfig
    from augment.steps import spec

    s = spec("method", "contextual")
    rows = {r["name"]: r for r in s.parameters()}
    assert list(rows) == "aug_p aug_min aug_max model top_k temperature device batch_size".split()
    assert all(r["help"] for r in rows.values()) and s.summary
    assert [rows[k]["default"] for k in ("aug_p", "top_k", "batch_size")] == [0.15, 10, 32]
    m = build_method("contextual", {})
    assert (m.aug_p, m.aug_min, m.aug_max, m.top_k, m.temperature, m.batch_size) == (0.15, 1, 6, 10, 1.0, 32)
    # --aug-p (methods.defaults) reaches contextual, a method's own params win
    methods = MethodsConfig(defaults={"aug_p": 0.3}, params={"contextual": {"aug_max": 2}})
    assert methods.method_params("contextual") == {"aug_p": 0.3, "aug_max": 2}
    m = build_method("contextual", methods.method_params("contextual"))
    assert (m.aug_p, m.aug_max) == (0.3, 2)


def test_dry_run_loads_nothing(tmp_path):
    missing = tmp_path / "no-such-model"
    m = build_method("contextual", {"model": str(missing)})
    m.setup(_ctx("zh", planning=True))  # would fail to load: a dry run does not try
    assert m._mlm is None and m.plan([], "text", 2) == {}


@pytest.mark.models  # goes as far as transformers' loader
def test_missing_model_is_one_clear_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(AugmentError) as info:
        build_method("contextual", {"model": str(missing)}).setup(_ctx("zh"))
    msg = str(info.value)
    assert "\n" not in msg and str(missing) in msg and "methods.params.contextual.model" in msg

    from huggingface_hub import constants

    if (Path(constants.HF_HUB_CACHE) / "models--google-bert--bert-base-chinese").exists():
        pytest.skip("the default Chinese model is in the local hub cache")
    with pytest.raises(BackendError) as info:  # the default model, with the hub offline
        build_method("contextual", {}).setup(_ctx("zh"))
    msg = str(info.value)
    assert "\n" not in msg and "google-bert/bert-base-chinese" in msg
    assert "methods.params.contextual.model" in msg and "local folder" in msg


def test_expand_end_to_end(models, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in read_jsonl(ZH_BANK / "seeds.jsonl")[:10]),
        encoding="utf-8",
    )
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "methods:\n  names: [contextual]\n  n_per_seed: 2\n  params:\n"
        f"    contextual: {{model: {json.dumps(str(models['bert']))}, top_k: 5, aug_p: 0.2}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = invoke(["expand", seeds, "-o", out, "--config", cfg])
    assert result.exit_code == 0, (result.output, result.exception)
    augmented, rejected = read_jsonl(out / "augmented.jsonl"), read_jsonl(out / "rejected.jsonl")
    generated = [r for r in augmented if r["origin"] == "augmented"] + rejected
    assert len(generated) == 20 and {r["method"] for r in generated} == {"contextual"}
    for row in generated:
        assert row["backend"].startswith("transformers ") and row["model"] == str(models["bert"])
        assert row["params"]["top_k"] == 5 and row["params"]["aug_p"] == 0.2 and row["field"] == "text"
        assert isinstance(row["random_seed"], int) and len(row["parent_ids"]) == 1
        assert " " not in row["text"]
    for row in rejected:
        assert row["rejected_by"] and row["reason"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    (entry,) = manifest["methods"]
    assert entry["name"] == "contextual" and entry["model"] == str(models["bert"])

    # a model folder that is not there: one error line, nothing written
    cfg.write_text(
        "methods:\n  names: [contextual]\n  params:\n    contextual: {model: "
        + json.dumps(str(tmp_path / "gone"))
        + "}\n",
        encoding="utf-8",
    )
    result = invoke(["expand", seeds, "-o", tmp_path / "out2", "--config", cfg])
    assert result.exit_code != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "gone" in lines[0] and "methods.params.contextual.model" in lines[0], lines
    assert not (tmp_path / "out2" / "augmented.jsonl").exists()
