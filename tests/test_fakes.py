"""The model-free stand-ins of the fast test layer: the ``hashing`` embedder and the fake generator."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeGenerator, default_response

from augment.generators import Decoding


# -- hashing embedder ------------------------------------------------------------------------------
def test_hashing_embedder_is_deterministic_normalised_and_model_free(hashing_embedder):
    from augment.embedders import HashingEmbedder

    texts = ["我的银行卡丢了怎么办", "The patient has a mild fever", "", "!!!"]
    a = hashing_embedder.encode(texts)
    b = HashingEmbedder().encode(texts)  # a fresh instance: the same vectors (no salted hash)
    assert a.shape == (4, 512) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)  # blank text too
    assert hashing_embedder.encode([]).shape == (0, 512)
    assert hashing_embedder.model_id == "hashing" and hashing_embedder.revision


def test_hashing_embedder_scores_near_copies_high_and_unrelated_texts_low(hashing_embedder):
    texts = [
        "我的银行卡丢了怎么办",
        "我的银行卡丢了，怎么办？",
        "今天天气很好",
        "The patient has a mild fever",
        "the patient has a mild fever.",
        "Book a flight to Paris",
    ]
    v = hashing_embedder.encode(texts)
    sim = v @ v.T
    assert sim[0, 1] > 0.8 and sim[3, 4] > 0.95  # CJK character n-grams; words and char n-grams
    assert abs(sim[0, 2]) < 0.3 and abs(sim[3, 5]) < 0.3


def test_hashing_is_an_embedder_spec():
    from augment.embedders import load_embedder, resolve_embedder_spec

    assert resolve_embedder_spec("hashing", "zh") == "hashing"
    small = load_embedder("hashing-64")
    assert small.encode(["a b c"]).shape == (1, 64) and small.model_id == "hashing-64"


def test_expand_runs_with_the_hashing_embedder(zh_subset, tmp_path):
    from conftest import invoke, read_jsonl

    out = tmp_path / "out"
    args = ["--methods", "swap", "--n-per-seed", "1", "--recipe", "off", "--embedder", "hashing"]
    result = invoke(["expand", zh_subset, *args, "-o", out])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "loading embedder" not in result.output
    assert read_jsonl(out / "augmented.jsonl")


# -- fake generator --------------------------------------------------------------------------------
def test_fake_generator_counts_and_is_deterministic():
    fake = FakeGenerator()
    dec = Decoding(seed=3)
    chat = [{"role": "user", "content": "Rewrite this:\n\nmy card is lost"}]
    prompts = [chat, "Sentence: I lost it\nRewording:"]
    first = fake.generate(prompts, 2, dec)
    again = FakeGenerator().generate(prompts, 2, dec)
    assert [[c.text for c in row] for row in first] == [[c.text for c in row] for row in again]
    assert fake.calls == 1 and fake.samples == 4 and len(fake.prompts) == 2
    assert fake.completion_tokens == sum(c.completion_tokens for row in first for c in row) > 0
    assert all(c.text and c.text != "my card is lost" for c in first[0])
    assert all(c.text and "lost" in c.text and c.text != "I lost it" for c in first[1])


def test_fake_generator_answers_a_list_prompt_with_a_numbered_list():
    prompt = "Examples with this label:\n- my card is lost\n- I cannot find my card\nWrite 2 new examples."
    text = default_response(prompt, 0, Decoding())
    lines = text.splitlines()
    assert lines and all(ln.split(". ", 1)[0].isdigit() for ln in lines)
    assert not {ln.split(". ", 1)[1] for ln in lines} & {"my card is lost", "I cannot find my card"}


def test_fake_generator_is_scripted_per_test():
    fake = FakeGenerator(script=["one", None])
    fake.script({"Translate": "hola"})
    out = fake.generate(["a", "b", "Translate: hi", "c"], 1, Decoding(stop=("\n",)))
    assert [row[0].text for row in out[:3]] == ["one", None, "hola"]
    assert out[1][0].error  # a scripted failure is a failed sample, not an exception
    fake.script(lambda prompt, i, decoding: f"{prompt}!\nsecond line")
    assert fake.generate(["x"], 1, Decoding(stop=("\n",)))[0][0].text == "x!"  # stops apply


def test_fake_generator_fixture_replaces_every_generator_load(fake_generator, zh_seeds):
    from augment.context import RunContext

    ctx = RunContext(seeds=zh_seeds, language="zh")
    gen = ctx.generator()
    gen.generate(["你好"], 2, Decoding())
    assert fake_generator.loads and fake_generator.calls == 1 and fake_generator.samples == 2


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completion"])
def test_self_instruct_runs_on_the_fake(fake_generator, zh_seeds, chat):
    from augment.context import RunContext
    from augment.methods import build_method
    from augment.steps import build_config

    fake_generator.chat = chat
    method = build_method("self_instruct", build_config("method", "self_instruct", {}))
    method.setup(RunContext(seeds=zh_seeds, language="zh"))
    out = method.generate(zh_seeds[:2], "text", 2, 13)
    assert fake_generator.calls == 1 and len(fake_generator.prompts) == 2  # one call, a prompt per anchor
    kept = [r for r in out if r.rejection is None]
    assert kept and all(r.method == "self_instruct" for r in out)
    assert all(r.fields["text"] not in {s.fields["text"] for s in zh_seeds} for r in kept)


def test_expand_with_llm_methods_runs_model_free(fake_generator, zh_subset, tmp_path):
    """The whole pipeline with LLM methods, on the fake generator and the hashing embedder."""
    from conftest import invoke, read_jsonl

    out = tmp_path / "out"
    args = ["--methods", "self_instruct,paraphrase", "-P", "paraphrase.backend=llm", "--n-per-seed", "2"]
    result = invoke(["expand", zh_subset, *args, "--recipe", "off", "--embedder", "hashing", "-o", out])
    assert result.exit_code == 0, (result.output, result.exception)
    rows = read_jsonl(out / "augmented.jsonl") + read_jsonl(out / "rejected.jsonl")
    made = {r["method"] for r in rows if r["origin"] != "seed"}
    assert {"self_instruct", "paraphrase"} <= made
    assert fake_generator.calls > 0 and len(fake_generator.loads) >= 1
    assert all(r["model"] == "fake-llm" for r in rows if r.get("method") == "self_instruct")
