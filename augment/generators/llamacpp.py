"""llama.cpp backend: a GGUF file through llama-cpp-python, the fast CPU path (and the embedded
defaults' backend under ``backend: auto`` when llama-cpp-python is installed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import BackendError
from .base import Completion, Decoding, Prompt, package_version


class LlamaCppGenerator:
    backend = "llama.cpp"

    def __init__(
        self,
        model_path: str,
        *,
        chat: bool = True,
        n_ctx: int = 2048,
        model_id: str | None = None,
        n_threads: int | None = None,
        chat_format: str | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama

            self._llm = Llama(
                model_path=model_path,
                n_ctx=n_ctx,
                n_threads=n_threads or os.cpu_count(),
                chat_format=chat_format,  # None: the template inside the GGUF
                verbose=False,
            )
        except ImportError as exc:
            raise BackendError(
                "the llama.cpp backend needs llama-cpp-python (pip install llama-cpp-python)"
            ) from exc
        except Exception as exc:
            raise BackendError(f"llama.cpp could not load {model_path}: {exc}") from exc
        self.model_id = model_id or model_path
        self.revision = package_version("llama-cpp-python")
        self.chat = chat

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decoding) -> list[list[Completion]]:
        out = []
        for prompt in prompts:
            samples = []
            for i in range(n):
                kwargs = dict(
                    max_tokens=decoding.max_new_tokens,
                    temperature=decoding.temperature,
                    top_p=decoding.top_p,
                    stop=list(decoding.stop) or None,
                    seed=decoding.seed + i,
                )
                try:
                    if self.chat:
                        r = self._llm.create_chat_completion(messages=prompt, **kwargs)
                        text = r["choices"][0]["message"]["content"]
                    else:
                        r = self._llm.create_completion(prompt=prompt, **kwargs)
                        text = r["choices"][0]["text"]
                    usage = r.get("usage", {})
                    samples.append(
                        Completion(
                            text, None, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
                        )
                    )
                except Exception as exc:  # one failed sample is data, not a crash
                    samples.append(Completion(None, f"llama.cpp: {exc}"))
            out.append(samples)
        return out
