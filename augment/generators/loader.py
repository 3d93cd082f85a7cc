"""Which backend a config and language call for, built once per process."""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError
from .base import Generator, GeneratorConfig
from .defaults import default_model
from .hf_transformers import TransformersGenerator
from .llamacpp import LlamaCppGenerator
from .openai_compat import OpenAIGenerator

logger = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _load(
    backend: str,
    model: str,
    gguf_file: str | None,
    chat: bool | None,
    n_ctx: int,
    model_id: str | None,
    base_url: str | None,
    api_key_env: str,
    endpoint: str,
    timeout: float,
    max_retries: int,
    concurrency: int,
    chat_format: str | None = None,
) -> Generator:
    if backend == "llama.cpp":
        return LlamaCppGenerator(
            model, chat=True if chat is None else chat, n_ctx=n_ctx, model_id=model_id, chat_format=chat_format
        )
    if backend == "transformers":
        return TransformersGenerator(model, gguf_file=gguf_file, chat=chat)
    return OpenAIGenerator(
        model,
        base_url or "",
        api_key_env=api_key_env,
        endpoint="completions" if endpoint == "completions" or chat is False else "chat",
        timeout=timeout,
        max_retries=max_retries,
        concurrency=concurrency,
    )


def load_generator(cfg: GeneratorConfig, language: str) -> Generator:
    """Build (once per process) the generator a config and language call for."""
    backend, model, chat, model_id, chat_format = cfg.backend, cfg.model, cfg.chat, None, None
    if model is None:
        if backend == "openai":
            raise ConfigError("the openai backend needs --model (the served model's name)")
        path, model_id, default_chat, chat_format = default_model(language)
        model, chat = path, default_chat if chat is None else chat
        if backend == "auto":
            backend = "llama.cpp" if importlib.util.find_spec("llama_cpp") else "transformers"
        if backend == "transformers":  # the same GGUF through transformers (needs the gguf package)
            return _load(
                "transformers",
                str(Path(path).parent),
                Path(path).name,
                chat,
                cfg.n_ctx,
                None,
                None,
                cfg.api_key_env,
                cfg.endpoint,
                cfg.timeout,
                cfg.max_retries,
                cfg.concurrency,
            )
    elif backend == "auto":
        backend = "llama.cpp" if str(model).endswith(".gguf") else "transformers"
    logger.info("loading generator %s:%s", backend, model)
    return _load(
        backend,
        model,
        cfg.gguf_file,
        chat,
        cfg.n_ctx,
        model_id,
        cfg.base_url,
        cfg.api_key_env,
        cfg.endpoint,
        cfg.timeout,
        cfg.max_retries,
        cfg.concurrency,
        chat_format,
    )
