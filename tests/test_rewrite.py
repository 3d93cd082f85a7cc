"""Back-translation and paraphrase: the seq2seq layer on tiny real-architecture models (transformers and
CTranslate2), Apertium, an LLM, and the methods end to end through `augment expand`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import EN_CLINIC, ZH_BANK, error_lines, invoke, read_jsonl, write_jsonl
from tiny_seq2seq import build_m2m100, build_marian, build_nllb, build_t5, sample_texts

from augment.errors import BackendError, ConfigError
from augment.seq2seq import CTranslate2Seq2Seq, Seq2SeqDecoding, TransformersSeq2Seq, lang_token

APERTIUM = shutil.which("apertium") is not None
needs_apertium = pytest.mark.skipif(
    not APERTIUM and not os.environ.get("CI"), reason="apertium not installed (CI installs it)"
)
ZH = ["我的银行卡丢了，怎么挂失？", "查一下余额", "转账三天了还没到账，钱去哪了？"]
EN = ["Fever and cough for three days.", "Chest pain on exertion, relieved by rest.", "Rash on both arms."]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-s2s")
    texts = sample_texts()
    return {
        "marian_zh_en": build_marian(root / "opus-mt-zh-en", texts),
        "marian_en_zh": build_marian(root / "opus-mt-en-zh", texts),
        "m2m": build_m2m100(root / "m2m", texts),
        "nllb": build_nllb(root / "nllb", texts),
        "t5": build_t5(root / "t5-paraphrase", texts),
    }


def _all(outs: list[list[str]]) -> list[str]:
    return [o for row in outs for o in row]


# -- the seq2seq layer ---------------------------------------------------------------------------
def test_language_tokens_for_m2m_and_nllb(models):
    from transformers import AutoTokenizer

    m2m = AutoTokenizer.from_pretrained(models["m2m"])
    nllb = AutoTokenizer.from_pretrained(models["nllb"])
    marian = AutoTokenizer.from_pretrained(models["marian_zh_en"])
    assert lang_token(m2m, "zh") == "__zh__" and lang_token(m2m, "de") == "__de__"
    assert lang_token(nllb, "zh") == "zho_Hans" and lang_token(nllb, "en") == "eng_Latn"
    assert lang_token(nllb, "yue", {"yue": "yue_Hant"}) == "yue_Hant"
    assert lang_token(marian, "en") is None  # a one-pair model has no language tokens


def test_m2m100_tokenizer_without_listed_language_tokens_is_repaired(models, tmp_path):
    """transformers 5 registers M2M-100's __xx__ tokens only when the tokenizer files list them."""
    import json

    from transformers import AutoTokenizer

    from augment.seq2seq import fix_tokenizer

    stripped = tmp_path / "m2m-stripped"
    shutil.copytree(models["m2m"], stripped)
    cfg_path = stripped / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in ("additional_special_tokens", "extra_special_tokens"):
        cfg.pop(key, None)
    cfg.pop("added_tokens_decoder", None)
    cfg_path.write_text(json.dumps(cfg))
    for name in ("special_tokens_map.json", "added_tokens.json"):
        (stripped / name).unlink(missing_ok=True)
    tok = AutoTokenizer.from_pretrained(stripped)
    before = "__zh__" in tok.get_vocab()
    fix_tokenizer(tok)
    assert "__zh__" in tok.get_vocab()
    tok.src_lang = "zh"
    assert "__zh__" not in tok.decode(tok("查一下余额").input_ids, skip_special_tokens=True)
    assert not before, "transformers registers the tokens itself now: fix_tokenizer can go"


def test_transformers_beams_and_samples_keep_the_input_order(models):
    eng = TransformersSeq2Seq(str(models["marian_zh_en"]), batch_size=1)
    texts = ZH + ["好"]
    beams = eng.generate(texts, 2, Seq2SeqDecoding(num_beams=2, max_new_tokens=8))
    assert [len(r) for r in beams] == [2] * len(texts)
    # length-sorted batches are put back in input order: the same text gives the same beams anywhere
    again = eng.generate(list(reversed(texts)), 2, Seq2SeqDecoding(num_beams=2, max_new_tokens=8))
    assert list(reversed(again)) == beams
    dec = Seq2SeqDecoding(sample=True, temperature=1.0, top_p=0.9, max_new_tokens=8, seed=7)
    s1, s2 = eng.generate(ZH, 3, dec), eng.generate(ZH, 3, dec)
    assert s1 == s2 and all(len(r) == 3 for r in s1)  # seeded sampling is reproducible
    assert eng.device == "cpu" and eng.backend.startswith("transformers")


def test_fixed_output_length(models):
    eng = TransformersSeq2Seq(str(models["marian_zh_en"]))
    dec = Seq2SeqDecoding(num_beams=1, min_new_tokens=6, max_new_tokens=6)
    ids = eng.tokenizer(eng.generate(EN, 1, dec)[0][0], add_special_tokens=False).input_ids
    assert 0 < len(ids) <= 6


@pytest.mark.parametrize(
    "name,src,tgt,prefix", [("m2m", "zh", "de", "__de__"), ("nllb", "zh", "en", "eng_Latn")]
)
def test_multilingual_models_on_both_runtimes(models, name, src, tgt, prefix, tmp_path, monkeypatch):
    monkeypatch.setenv("AUGMENT_CACHE_DIR", str(tmp_path / "cache"))
    hf = TransformersSeq2Seq(str(models[name]))
    ct = CTranslate2Seq2Seq(str(models[name]))
    dec = Seq2SeqDecoding(num_beams=2, max_new_tokens=10)
    for eng in (hf, ct):
        outs = eng.generate(ZH, 2, dec, src_lang=src, tgt_lang=tgt)
        assert [len(r) for r in outs] == [2, 2, 2]
        assert not any(prefix in o or "__zh__" in o for o in _all(outs))  # language tokens stripped
    assert ct.compute_type == "int8" and "int8" in ct.backend and ct.device == "cpu"
    with pytest.raises(ConfigError, match="no language token"):
        hf.generate(ZH, 1, dec, src_lang="zh", tgt_lang="xx")


def test_ctranslate2_converts_once_into_the_cache(models, tmp_path, monkeypatch):
    monkeypatch.setenv("AUGMENT_CACHE_DIR", str(tmp_path / "cache"))
    first = CTranslate2Seq2Seq(str(models["marian_zh_en"]))
    folders = [p.parent for p in (tmp_path / "cache" / "ctranslate2").glob("opus-mt-zh-en-int8-*/model.bin")]
    assert len(folders) == 1
    stamp = (folders[0] / "model.bin").stat().st_mtime_ns
    second = CTranslate2Seq2Seq(str(models["marian_zh_en"]))
    assert second.folder == first.folder and (folders[0] / "model.bin").stat().st_mtime_ns == stamp
    # a converted folder is used as it is (tokenizer from the original)
    direct = CTranslate2Seq2Seq(str(first.folder), tokenizer=str(models["marian_zh_en"]))
    dec = Seq2SeqDecoding(num_beams=2, max_new_tokens=8)
    assert direct.generate(ZH, 2, dec) == first.generate(ZH, 2, dec)
    samples = first.generate(ZH, 2, Seq2SeqDecoding(sample=True, top_k=10, max_new_tokens=8, seed=3))
    assert all(len(r) == 2 for r in samples)


def test_t5_paraphraser_on_ctranslate2(models, tmp_path, monkeypatch):
    monkeypatch.setenv("AUGMENT_CACHE_DIR", str(tmp_path / "cache"))
    eng = CTranslate2Seq2Seq(str(models["t5"]))
    outs = eng.generate(EN + ZH, 2, Seq2SeqDecoding(num_beams=2, max_new_tokens=8), prefix="paraphrase: ")
    assert len(outs) == 6 and all(len(r) == 2 for r in outs)


@pytest.mark.models  # goes as far as transformers' and CTranslate2's loaders
def test_missing_model_is_one_clear_error(tmp_path):
    with pytest.raises(BackendError, match="could not load seq2seq model"):
        TransformersSeq2Seq(str(tmp_path / "nope"))
    empty = tmp_path / "no-tokenizer"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(BackendError):
        CTranslate2Seq2Seq(str(empty))


# -- the methods through the CLI -----------------------------------------------------------------
@pytest.fixture(scope="module")
def zh_seeds_small(tmp_path_factory) -> Path:
    rows = read_jsonl(ZH_BANK / "seeds.jsonl")
    picked, seen = [], {}
    for r in rows:  # two seeds of each of the first four labels
        if seen.get(r["label"], 0) < 2 and (r["label"] in seen or len(seen) < 4):
            seen[r["label"]] = seen.get(r["label"], 0) + 1
            picked.append(r)
    return write_jsonl(tmp_path_factory.mktemp("zh8") / "seeds.jsonl", picked)


def _rows(out: Path, method: str) -> list[dict]:
    rows = read_jsonl(out / "augmented.jsonl") + read_jsonl(out / "rejected.jsonl")
    return [r for r in rows if r.get("method") == method]


def test_backtranslate_with_a_marian_pair_template(models, zh_seeds_small, tmp_path):
    template = str(models["marian_zh_en"].parent / "opus-mt-{src}-{tgt}")
    out = tmp_path / "out"
    r = invoke(
        ["expand", zh_seeds_small, "-o", out, "--methods", "backtranslate", "--n-per-seed", "2",
         "-P", f"backtranslate.model={template}", "-P", "backtranslate.max_new_tokens=12"]
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = _rows(out, "backtranslate")
    assert len(rows) == 16  # 2 per seed: kept or rejected, never dropped
    for row in rows:
        assert row["backend"].startswith("transformers")
        assert row["model"] == f"{models['marian_zh_en']} -> {models['marian_en_zh']}"
        assert row["params"]["pivots"] == ["en"] and row["params"]["backend"] == "transformers"
        assert row["params"]["decoding"] == {"num_beams": 4, "sample": False, "max_new_tokens": 12}
        assert "pivot_text" in row["params"] and row["random_seed"] is not None
        assert row.get("reason") != "backend_error"


def test_backtranslate_two_pivots_on_ctranslate2_with_m2m(models, zh_seeds_small, tmp_path, monkeypatch):
    monkeypatch.setenv("AUGMENT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    r = invoke(
        ["expand", zh_seeds_small, "-o", out, "--methods", "backtranslate", "--n-per-seed", "3",
         "-P", f"backtranslate.model={models['m2m']}", "-P", "backtranslate.backend=ctranslate2",
         "-P", "backtranslate.pivots=[en, de>fr]", "-P", "backtranslate.sample=true",
         "-P", "backtranslate.max_new_tokens=12"]
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = _rows(out, "backtranslate")
    assert len(rows) == 24
    by_pivot: dict[str, int] = {}
    for row in rows:
        key = ">".join(row["params"]["pivots"])
        by_pivot[key] = by_pivot.get(key, 0) + 1
        assert row["backend"].startswith("ctranslate2") and "int8" in row["backend"]
        assert row["model"] == str(models["m2m"])
        assert row["params"]["decoding"]["sample"] is True
    assert by_pivot == {"en": 16, "de>fr": 8}  # 3 candidates: 2 from the first pivot, 1 from the second
    manifest = (out / "manifest.json").read_text()
    assert "backtranslate" in manifest


def test_paraphrase_with_a_t5_model(models, zh_seeds_small, tmp_path):
    out = tmp_path / "out"
    r = invoke(
        ["expand", zh_seeds_small, "-o", out, "--methods", "paraphrase", "--n-per-seed", "2",
         "-P", f"paraphrase.model={models['t5']}", "-P", "paraphrase.max_new_tokens=12"]
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = _rows(out, "paraphrase")
    assert len(rows) == 16
    p = rows[0]["params"]
    assert p["prefix"] == "paraphrase: " and p["model"] == str(models["t5"])
    assert p["decoding"]["sample"] is True and "temperature" in p["decoding"]


@pytest.mark.parametrize(
    "params,message",
    [
        (["-P", "backtranslate.pivot=de"], "'pivot' (did you mean 'pivots'?)"),
        (["-P", "backtranslate.pivots=[zh]"], "contains the source language"),
        (["-P", "backtranslate.backend=moses"], "backend must be one of"),
        pytest.param(
            ["-P", "backtranslate.model=/nonexistent/mt"],
            "could not load seq2seq model '/nonexistent/mt'",
            marks=pytest.mark.models,  # goes as far as transformers' loader
        ),
        (["-P", "backtranslate"], "expected METHOD.KEY=VALUE"),
    ],
)
def test_bad_settings_are_one_line_errors(zh_seeds_small, tmp_path, params, message):
    r = invoke(["expand", zh_seeds_small, "-o", tmp_path / "o", "--methods", "backtranslate", *params])
    assert r.exit_code != 0
    lines = error_lines(r)
    assert any(message in ln for ln in lines), lines
    assert not (tmp_path / "o" / "augmented.jsonl").exists()


def test_paraphrase_on_a_model_backend_needs_a_model(zh_seeds_small, tmp_path):
    r = invoke(
        [
            "expand",
            zh_seeds_small,
            "-o",
            tmp_path / "o",
            "--methods",
            "paraphrase",
            "-P",
            "paraphrase.backend=ctranslate2",
        ]
    )
    assert r.exit_code != 0 and any("paraphrase.model is needed" in ln for ln in error_lines(r))


# -- Apertium (English default) -------------------------------------------------------------------
@needs_apertium
@pytest.mark.models  # the default embedder filters the rows
def test_apertium_round_trip_is_the_english_default(tmp_path):
    rows = read_jsonl(EN_CLINIC / "seeds.jsonl")[:10]
    seeds = write_jsonl(tmp_path / "seeds.jsonl", rows)
    out = tmp_path / "out"
    r = invoke(["expand", seeds, "-o", out, "--methods", "backtranslate"])
    assert r.exit_code == 0, r.output
    made = _rows(out, "backtranslate")
    assert len(made) == 10  # rule-based: one output per pivot
    kept = [m for m in made if "reason" not in m]
    assert len(kept) >= 5
    for m in made:
        assert m["backend"].startswith("apertium") and m["model"] == "apertium eng-spa -> apertium spa-eng"
        assert m["params"] == {
            "backend": "apertium",
            "pivots": ["es"],
            "decoding": {},
            "pivot_text": m["params"]["pivot_text"],
        }
        assert m["field"] == "text"
    spanish = " ".join(m["params"]["pivot_text"] for m in made)
    assert any(w in spanish.split() for w in ("el", "la", "de", "con", "y"))


@needs_apertium
def test_apertium_keeps_one_line_per_text():
    from augment.translation import ApertiumTranslator

    t = ApertiumTranslator()
    texts = [
        "Fever.\nCough for two days.",
        "Rash on both arms.",
        "",
        "Dr. Smith saw the patient. Then he left.",
    ]
    out = t.translate(texts, "en", "es", 2, Seq2SeqDecoding())
    assert len(out) == 4 and all(len(o) == 1 for o in out)
    assert out[2] == [None] and "ambas" in (out[1][0] or "")


# -- LLM (Chinese default) ---------------------------------------------------------------------------
@pytest.mark.models
def test_llm_backtranslation_and_paraphrase_for_chinese(tmp_path):
    """The embedded multilingual LLM (Gemma-3-270m via llama.cpp) translates zh -> en -> zh and paraphrases."""
    rows = read_jsonl(ZH_BANK / "seeds.jsonl")[:3]
    seeds = write_jsonl(tmp_path / "seeds.jsonl", rows)
    out = tmp_path / "out"
    r = invoke(
        [
            "expand",
            seeds,
            "-o",
            out,
            "--methods",
            "backtranslate,paraphrase",
            "--n-per-seed",
            "1",
            "--language",
            "zh",
        ]
    )
    assert r.exit_code == 0, r.output
    bt = _rows(out, "backtranslate")
    para = _rows(out, "paraphrase")
    assert len(bt) == 3 and len(para) == 3
    for row in bt:
        assert row["params"]["backend"] == "llm" and row["params"]["pivots"] == ["en"]
        assert "gemma" in row["model"].lower()
    english = [row["params"]["pivot_text"] for row in bt if row["params"]["pivot_text"]]
    assert english and all(sum(c.isascii() for c in t) > len(t) / 2 for t in english)  # the pivot is English
    assert all(p["params"]["mode"] == "completion" and "gemma" in p["model"].lower() for p in para)
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generation"]["backtranslate"]["calls"] >= 6


def test_dry_run_loads_no_translation_model(zh_seeds_small):
    r = invoke(
        ["expand", zh_seeds_small, "--dry-run", "-m", "backtranslate,paraphrase",
         "-P", "backtranslate.model=/nonexistent/mt", "-P", "paraphrase.model=/nonexistent/para"]
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "backtranslate" in r.output and "paraphrase" in r.output


def test_ctranslate2_cpu_threads_split_the_cores(monkeypatch):
    import augment.seq2seq as s2s

    monkeypatch.setattr(s2s.os, "sched_getaffinity", lambda _pid: set(range(2)), raising=False)
    assert s2s.cpu_threads() == (2, 1)  # 2 cores: two single-threaded replicas
    assert s2s.cpu_threads(replicas=1) == (1, 2)
    monkeypatch.setattr(s2s.os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    assert s2s.cpu_threads() == (4, 4) and s2s.cpu_threads(threads=8) == (2, 8)
