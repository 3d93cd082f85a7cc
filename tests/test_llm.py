"""LLM generation on real backends: llama.cpp and transformers on the packaged SmolLM2 GGUF, Gemma-3-270m
for Chinese, and the OpenAI-compatible client against llama-cpp-python's own server on loopback."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest
from conftest import EN_CLINIC, ZH_INSTRUCTIONS, invoke, llama_server, read_jsonl, write_jsonl

from augment.generators import (
    CachedGenerator,
    Decoding,
    LlamaCppGenerator,
    OpenAIGenerator,
    ResponseCache,
    TransformersGenerator,
    smollm2_gguf,
)
from augment.prompts import parse_items
from augment.rouge import rouge_l

CHAT = [
    [{"role": "user", "content": "List three symptoms of flu, numbered."}],
    [{"role": "user", "content": "Name two colours."}],
]
KEY = "sk-test-do-not-leak-1234"


# -- pure helpers ------------------------------------------------------------------------------
def test_rouge_l_counts_chinese_characters():
    assert rouge_l("请解释劳动合同试用期的规定", "请解释劳动合同试用期的规定") == 1.0
    assert 0.3 < rouge_l("请解释劳动合同试用期", "请说明劳动合同的解除条件") < 0.7
    assert rouge_l("Explain the probation rules", "explain probation rules") == pytest.approx(6 / 7)
    assert rouge_l("", "abc") == 0.0


@pytest.mark.parametrize(
    "raw, items",
    [
        (
            'Sure! Here are examples:\n1. My card is gone\n2) "Lost my wallet"\n3、卡丢了',
            ["My card is gone", "Lost my wallet", "卡丢了"],
        ),
        ('{"text": "a b"}\n{"text": "c d"}', ["a b", "c d"]),
        ('["x y", "z w"]', ["x y", "z w"]),
        ("- **Fever** and chills\n- [cardiac] chest pain", ["Fever and chills", "chest pain"]),
        ("一、银行卡丢了\n二、密码忘了", ["银行卡丢了", "密码忘了"]),
        ("I cannot help with that.", []),
        ("", []),
    ],
)
def test_parse_items(raw, items):
    assert parse_items(raw) == items


# -- llama.cpp and transformers ----------------------------------------------------------------
@pytest.fixture(scope="module")
def llama():
    return LlamaCppGenerator(str(smollm2_gguf()), chat=True, model_id="smollm2")


def test_llama_cpp_generates_and_is_reproducible(llama):
    d = Decoding(max_new_tokens=24, temperature=0.8, seed=5)
    out = llama.generate(CHAT, 2, d)
    assert [len(s) for s in out] == [2, 2]
    assert all(c.text and c.completion_tokens > 0 and c.error is None for s in out for c in s)
    again = llama.generate(CHAT[:1], 2, d)
    assert [c.text for c in again[0]] == [c.text for c in out[0]]  # same seed, same text


def test_transformers_backend_on_the_packaged_gguf():
    p = smollm2_gguf()
    gen = TransformersGenerator(str(p.parent), gguf_file=p.name)
    assert gen.chat and gen.backend == "transformers"
    out = gen.generate(CHAT, 1, Decoding(max_new_tokens=16, temperature=0.0))
    assert all(s[0].text and s[0].completion_tokens <= 16 for s in out)
    # the dequantised copy is cached: a second load does not convert the GGUF again
    t = time.perf_counter()
    TransformersGenerator(str(p.parent), gguf_file=p.name)
    assert time.perf_counter() - t < 15


def test_cache_serves_repeats_and_counts(llama, tmp_path):
    cache = ResponseCache(tmp_path / "r.sqlite")
    d = Decoding(max_new_tokens=12, seed=1)
    first = CachedGenerator(llama, cache)
    a = first.generate(CHAT, 1, d)
    assert first.calls == 2 and first.hits == 0
    second = CachedGenerator(llama, cache)
    b = second.generate(CHAT, 1, d)
    assert second.calls == 0 and second.hits == 2
    assert [s[0].text for s in a] == [s[0].text for s in b] and all(s[0].cached for s in b)
    third = CachedGenerator(llama, cache)
    third.generate(CHAT, 1, Decoding(max_new_tokens=12, seed=2))  # other decoding: other key
    assert third.calls == 2


# -- OpenAI-compatible: a real server on loopback ----------------------------------------------
@pytest.fixture(scope="module")
def server():
    with llama_server("--api_key", KEY) as url:
        yield url


def test_openai_backend_chat_and_completions(server, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("AUGMENT_TEST_KEY", KEY)
    caplog.set_level("DEBUG")
    chat = OpenAIGenerator("smollm2", server, api_key_env="AUGMENT_TEST_KEY", endpoint="chat", concurrency=2)
    cache = ResponseCache(tmp_path / "r.sqlite")
    out = CachedGenerator(chat, cache).generate(CHAT, 2, Decoding(max_new_tokens=16, seed=3))
    assert all(c.text and c.completion_tokens > 0 for s in out for c in s)
    comp = OpenAIGenerator("smollm2", server, api_key_env="AUGMENT_TEST_KEY", endpoint="completions")
    ((c,),) = comp.generate(["The three primary colours are"], 1, Decoding(max_new_tokens=8, temperature=0.0))
    assert c.text
    # the key never reaches the cache or the logs
    assert KEY.encode() not in (tmp_path / "r.sqlite").read_bytes()
    assert KEY not in caplog.text


def test_openai_backend_without_the_key_fails_per_sample(server, monkeypatch):
    monkeypatch.delenv("AUGMENT_TEST_KEY", raising=False)
    gen = OpenAIGenerator("smollm2", server, api_key_env="AUGMENT_TEST_KEY", max_retries=3)
    t = time.perf_counter()
    ((c,),) = gen.generate(CHAT[:1], 1, Decoding(max_new_tokens=4))
    assert c.text is None and "HTTP 401" in c.error and "1 attempt" in c.error  # 4xx: no retry
    assert time.perf_counter() - t < 5


def test_openai_backend_retries_with_backoff():
    """A real HTTP server on loopback that fails twice with 503, then answers."""
    hits = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            hits.append(self.path)
            self.rfile.read(int(self.headers["Content-Length"]))
            if len(hits) <= 2:
                self.send_response(503)
                self.end_headers()
                return
            body = json.dumps(
                {"choices": [{"message": {"content": "ok"}}], "usage": {"completion_tokens": 1}}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        gen = OpenAIGenerator("m", f"http://127.0.0.1:{srv.server_port}/v1", max_retries=3)
        ((c,),) = gen.generate(CHAT[:1], 1, Decoding(max_new_tokens=4))
        assert c.text == "ok" and len(hits) == 3 and hits[0] == "/v1/chat/completions"
    finally:
        srv.shutdown()


# -- self_instruct through the CLI -------------------------------------------------------------
@pytest.fixture(scope="module")
def en_subset(tmp_path_factory):
    rows = read_jsonl(EN_CLINIC / "seeds.jsonl")
    picked = [r for r in rows if r["label"] in ("cardiac", "dermatological")][:8]
    return write_jsonl(tmp_path_factory.mktemp("si") / "seeds.jsonl", picked)


SI = ["--methods", "self_instruct", "--n-per-seed", "3", "--max-new-tokens", "90", "--batch-size", "4"]


@pytest.fixture(scope="module")
def en_si_run(en_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("si_en") / "out"
    result = invoke(["expand", en_subset, "-o", out, *SI])
    assert result.exit_code == 0, result.output
    return out, result


def test_self_instruct_english_rows_have_lineage(en_si_run, en_subset):
    out, _ = en_si_run
    seeds = {r["id"]: r for r in read_jsonl(out / "augmented.jsonl") if r["origin"] == "seed"}
    rows = [r for r in read_jsonl(out / "augmented.jsonl") if r["origin"] != "seed"]
    rejected = read_jsonl(out / "rejected.jsonl")
    assert rows, "SmolLM2 produced no kept row"
    for r in rows + rejected:
        assert r["method"] == "self_instruct" and r["backend"] == "llama.cpp"
        assert "SmolLM2-135M-Instruct" in r["model"]
        assert r["relation"] == "demo" and "relation" not in r["params"] and r["field"] == "text"
        assert r["parent_ids"] == r["params"]["demo_ids"]
        assert all(p in seeds for p in r["parent_ids"])
        assert r["label"] == seeds[r["parent_ids"][0]]["label"]  # generated for its anchor's label
    for r in rows:
        assert "similarity" not in r["scores"] and "label" in r["scores"]  # demo rows skip the band
    for r in rejected:
        if r["reason"] in ("parse_error", "copied_demos"):
            assert r["text"]  # the raw output is kept
    m = json.loads((out / "manifest.json").read_text())
    g = m["generation"]["self_instruct"]
    assert g["calls"] == 8 and g["completion_tokens"] > 0 and g["budget_exhausted"] is False


def test_self_instruct_rerun_is_served_from_the_cache(en_si_run, en_subset):
    out, _ = en_si_run
    before = (out / "augmented.jsonl").read_bytes()
    result = invoke(["expand", en_subset, "-o", out, "--overwrite", *SI])
    assert result.exit_code == 0, result.output
    g = json.loads((out / "manifest.json").read_text())["generation"]["self_instruct"]
    assert g["calls"] == 0 and g["cache_hits"] == 8
    assert (out / "augmented.jsonl").read_bytes() == before


def test_dry_run_estimates_without_loading_or_writing(en_subset, tmp_path):
    result = invoke(["expand", en_subset, "-o", tmp_path / "o", "--dry-run", *SI])
    assert result.exit_code == 0
    line = next(ln for ln in result.output.splitlines() if ln.startswith("self_instruct"))
    assert line.split()[1:3] == ["8", "8"] and "min" in line
    assert not (tmp_path / "o").exists()


def test_token_budget_stops_cleanly_and_resume_finishes(en_subset, tmp_path):
    out = tmp_path / "o"
    args = ["expand", en_subset, "-o", out, *SI, "--no-cache"]
    first = invoke([*args, "--max-tokens-total", "600"])
    assert first.exit_code == 0, first.output
    m = json.loads((out / "manifest.json").read_text())
    g = m["generation"]["self_instruct"]
    assert g["budget_exhausted"] is True and 0 < g["calls"] < 8


def test_the_same_run_against_the_server(server, en_subset, tmp_path, monkeypatch):
    monkeypatch.setenv("AUGMENT_TEST_KEY", KEY)
    out = tmp_path / "o"
    result = invoke(
        [
            "expand",
            en_subset,
            "-o",
            out,
            *SI,
            "--backend",
            "openai",
            "--model",
            "smollm2",
            "--base-url",
            server,
            "--api-key-env",
            "AUGMENT_TEST_KEY",
            "--no-cache",
        ]
    )
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "augmented.jsonl") + read_jsonl(out / "rejected.jsonl")
    assert any(r["origin"] == "augmented" for r in rows)
    assert all(r["backend"] == "openai" and r["model"] == "smollm2" for r in rows if r["origin"] != "seed")
    assert KEY not in (out / "manifest.json").read_text()


def test_self_instruct_chinese_instructions_with_gemma(tmp_path):
    seeds = write_jsonl(tmp_path / "s.jsonl", read_jsonl(ZH_INSTRUCTIONS / "seeds.jsonl")[:6])
    out = tmp_path / "o"
    result = invoke(
        [
            "expand",
            seeds,
            "-o",
            out,
            "--methods",
            "self_instruct",
            "--n-per-seed",
            "2",
            "--max-new-tokens",
            "80",
            "--batch-size",
            "3",
        ]
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "manifest.json").read_text())
    assert "gemma-3-270m" in m["generation"]["self_instruct"]["model"]
    seed_instr = [r["instruction"] for r in read_jsonl(seeds)]
    made = [r for r in read_jsonl(out / "augmented.jsonl") if r["origin"] != "seed"]
    rejected = read_jsonl(out / "rejected.jsonl")
    assert made or rejected
    for r in made:
        assert r["task"] == "instruction" and r["output"].strip()
        assert max(rouge_l(r["instruction"], s) for s in seed_instr) <= 0.7
    assert {r["reason"] for r in rejected} <= {
        "truncated",
        "repetitive",
        "parse_error",
        "rouge_too_close",
        "empty_output",
        "backend_error",
        "wrong_script",
        "exact_seed",
        "exact_candidate",
        "text_near_seed",
        "text_near_candidate",
        "near_seed",
        "near_candidate",
        "too_short",
    }


def test_templates_render_in_a_sandbox(tmp_path):
    from augment.errors import ConfigError
    from augment.prompts import render

    target = tmp_path / "pwned"
    evil = "{{ cycler.__init__.__globals__.os.popen('touch " + str(target) + "').read() }}"
    with pytest.raises(ConfigError, match="prompt template refused"):
        render("paraphrase", "chat", "en", evil, text="hello")
    assert not target.exists()
    assert render("paraphrase", "chat", "en", "Rewrite: {{ text | upper }}", text="hi") == "Rewrite: HI"
    with pytest.raises(ConfigError, match="prompt template: 'nope' is undefined"):
        render("paraphrase", "chat", "en", "{{ nope }}", text="hi")
