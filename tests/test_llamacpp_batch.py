"""The llama.cpp backend's batched decoding (several sequences per ``llama_decode``) on the packaged
SmolLM2: the same texts as one prompt at a time, stops, length caps, per-prompt decodings, seeded
samples, a failing sequence among good ones, and the prompt text it renders (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from augment import packaged_gguf
from augment.generators import Decoding, LlamaCppGenerator, smollm2_gguf

PROMPTS = [
    [{"role": "user", "content": "List three symptoms of flu, numbered."}],
    [{"role": "user", "content": "Name two colours."}],
    [{"role": "user", "content": "Describe a lost bank card in one sentence."}],
    [{"role": "user", "content": "What should a patient with a sprained ankle do?"}],
    [{"role": "user", "content": "Explain what an overdraft is."}],
]
GREEDY = Decoding(max_new_tokens=16, temperature=0.0)
# resolved at import, before the tests' throwaway cache folder replaces the real one
_MODELS = packaged_gguf.models_dir()
QWEN = _MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GEMMA = _MODELS / "gemma-3-270m-q4_k_m.gguf"


@pytest.fixture(scope="module")
def smol():
    return LlamaCppGenerator(str(smollm2_gguf()), chat=True, model_id="smollm2", parallel=4)


def texts(out):
    return [[(c.text, c.prompt_tokens, c.completion_tokens, c.error) for c in s] for s in out]


def test_batched_greedy_equals_one_prompt_at_a_time(smol):
    batched = smol.generate(PROMPTS, 1, GREEDY)  # 5 prompts on 4 slots: one waits for a free slot
    assert all(s[0].text and s[0].error is None and 0 < s[0].completion_tokens <= 16 for s in batched)
    # the same engine, one prompt per call, in another order (other slots, other neighbours)
    alone = {i: smol.generate([PROMPTS[i]], 1, GREEDY) for i in reversed(range(len(PROMPTS)))}
    assert texts(batched) == [texts(alone[i])[0] for i in range(len(PROMPTS))]
    smol.parallel = 1  # llama-cpp-python's create_chat_completion, one prompt at a time
    try:
        old = smol.generate(PROMPTS, 1, GREEDY)
    finally:
        smol.parallel = 4
    assert texts(batched) == texts(old)


def test_stop_strings_and_length_caps_as_create_chat_completion(smol):
    ((full,),) = smol.generate(PROMPTS[:1], 1, GREEDY)
    words = full.text.split()
    stop = words[len(words) // 2]  # a string the greedy answer contains
    d = Decoding(max_new_tokens=16, temperature=0.0, stop=("no such stop", stop))
    ((cut,),) = smol.generate(PROMPTS[:1], 1, d)
    assert cut.text == full.text[: full.text.index(stop)] and cut.completion_tokens < full.completion_tokens
    ((short,),) = smol.generate(PROMPTS[:1], 1, Decoding(max_new_tokens=3, temperature=0.0))
    assert short.completion_tokens == 3 and full.text.startswith(short.text)
    smol.parallel = 1
    try:
        assert texts(smol.generate(PROMPTS[:1], 1, d)) == [
            [(cut.text, cut.prompt_tokens, cut.completion_tokens, None)]
        ]
    finally:
        smol.parallel = 4


def test_one_decoding_per_prompt(smol):
    ds = [
        Decoding(max_new_tokens=4, temperature=0.0),
        Decoding(max_new_tokens=12, temperature=0.8, seed=7),
        Decoding(max_new_tokens=8, temperature=0.0, stop=(",",)),
    ]
    out = smol.generate(PROMPTS[:3], 1, ds)
    assert out[0][0].completion_tokens == 4 and "," not in out[2][0].text
    assert texts(out) == [texts(smol.generate([p], 1, d))[0] for p, d in zip(PROMPTS[:3], ds, strict=True)]
    with pytest.raises(ValueError, match="2 decodings for 3 prompts"):
        smol.generate(PROMPTS[:3], 1, ds[:2])


def test_seeded_samples_are_reproducible_and_independent_of_the_batch(smol):
    d = Decoding(max_new_tokens=12, temperature=0.8, top_p=0.95, seed=5)
    a = smol.generate(PROMPTS[:2], 3, d)
    assert [len(s) for s in a] == [3, 3] and all(c.text for s in a for c in s)
    assert len({c.text for c in a[0]}) > 1  # three seeds, not one sample three times
    assert texts(smol.generate(PROMPTS[:2], 3, d)) == texts(a)  # same bytes, run to run
    # sample i is seeded with seed + i, whatever else is in the batch
    ((one,),) = smol.generate([PROMPTS[1]], 1, Decoding(max_new_tokens=12, temperature=0.8, seed=7))
    assert one.text == a[1][2].text


def test_a_prompt_longer_than_the_context_fails_alone():
    gen = LlamaCppGenerator(str(smollm2_gguf()), chat=True, n_ctx=256, parallel=2)
    long = [{"role": "user", "content": "word " * 400}]
    out = gen.generate([PROMPTS[1], long, PROMPTS[2]], 2, Decoding(max_new_tokens=8, temperature=0.0))
    assert [c.text is None for s in out for c in s] == [False, False, True, True, False, False]
    assert "exceed context window" in out[1][0].error and out[1][1].error == out[1][0].error
    assert out[0][0].text == out[0][1].text and out[2][0].completion_tokens > 0
    # a prompt that fits with little room left: the completion is cut at the context's end
    tight = [{"role": "user", "content": "word " * 190}]
    ((c,),) = gen.generate([tight], 1, Decoding(max_new_tokens=24, temperature=0.0))
    assert c.error is None and c.prompt_tokens + c.completion_tokens <= 256


def test_score_still_works_next_to_batched_generation(smol):
    prompt = [{"role": "user", "content": "Is the sky blue? Answer yes or no."}]
    before = smol.score(prompt, ["yes", "no"])
    smol.generate(PROMPTS[:2], 1, GREEDY)
    assert smol.score(prompt, ["yes", "no"]) == before


def _prompt_tokens_match(gen: LlamaCppGenerator) -> None:
    """The tokens generation starts from are those of the text ``score`` renders (``_prompt_text``),
    and are what ``create_chat_completion`` would evaluate (``_prepare`` stops it just before)."""
    for prompt in PROMPTS[:2] + [[{"role": "system", "content": "Be brief."}, *PROMPTS[0]]]:
        tokens, stops, _ = gen._prepare(prompt if gen.chat else prompt[-1]["content"], GREEDY)
        text = gen._prompt_text(prompt if gen.chat else prompt[-1]["content"])
        add_bos = not text.startswith("<") if gen.chat else True
        assert tokens == gen._llm.tokenize(text.encode(), add_bos=add_bos, special=True)
        assert not gen.chat or stops  # the template's end-of-turn text is a stop string


def test_rendered_prompt_is_the_chat_template_for_smollm2(smol):
    _prompt_tokens_match(smol)


@pytest.mark.skipif(not QWEN.exists(), reason="Qwen2.5 not fetched (augment models fetch qwen2.5-0.5b)")
def test_rendered_prompt_is_chatml_for_qwen():
    _prompt_tokens_match(LlamaCppGenerator(str(QWEN), chat=True, chat_format="chatml", n_ctx=512))


@pytest.mark.skipif(not GEMMA.exists(), reason="Gemma-3-270m not assembled in the cache")
def test_gemma_completion_prompts_batched_equal_one_at_a_time():
    gen = LlamaCppGenerator(str(GEMMA), chat=False, n_ctx=512, parallel=2)
    _prompt_tokens_match(gen)
    prompts = ["银行卡丢了怎么办？答：", "The three primary colours are"]
    d = Decoding(max_new_tokens=12, temperature=0.0)
    batched = gen.generate(prompts, 1, d)
    gen.parallel = 1
    assert texts(gen.generate(prompts, 1, d)) == texts(batched)


def test_parallel_must_be_positive():
    from augment.errors import BackendError

    with pytest.raises(BackendError, match="parallel"):
        LlamaCppGenerator(str(Path("unused.gguf")), parallel=0)
