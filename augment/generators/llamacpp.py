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
        self._chat_format = chat_format

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

    # -- scoring: log-likelihood of given continuations (the ICL baseline's label constraint) --------
    def _prompt_text(self, prompt: Prompt) -> str:
        """A chat prompt as the text the model sees (its template, with the assistant turn opened)."""
        if not self.chat or isinstance(prompt, str):
            return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        from llama_cpp import llama_chat_format as fmt

        if self._chat_format == "chatml":
            return fmt.format_chatml(prompt).prompt
        template = self._llm.metadata.get("tokenizer.chat_template")
        if template:
            model = self._llm._model
            eos = model.token_get_text(self._llm.token_eos()) if self._llm.token_eos() >= 0 else ""
            bos = model.token_get_text(self._llm.token_bos()) if self._llm.token_bos() >= 0 else ""
            return fmt.Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)(messages=prompt).prompt
        return fmt.format_chatml(prompt).prompt

    def _last_logprobs(self):
        import numpy as np

        logits = np.ctypeslib.as_array(self._llm._ctx.get_logits(), shape=(self._llm.n_vocab(),))
        logits = logits.astype(np.float64)
        m = logits.max()
        return logits - (m + np.log(np.exp(logits - m).sum()))

    def score(self, prompt: Prompt, options: Sequence[str]) -> list[float]:
        """Sum of the log-probabilities of each option's tokens after ``prompt``. The prompt is evaluated
        once; each option then continues from its cached state, one token at a time (llama.cpp keeps
        only the last token's logits unless the model was loaded with ``logits_all``)."""
        text = self._prompt_text(prompt)
        special = self.chat  # chat templates carry special tokens as text
        try:
            ids = self._llm.tokenize(text.encode("utf-8"), add_bos=not text.startswith("<"), special=special)
            # reuse the cached state of the longest prefix shared with what was evaluated last (the
            # instructions, and demonstrations shared by every row): only the rest is evaluated
            seen = self._llm.input_ids[: self._llm.n_tokens].tolist()
            common = 0
            for a, b in zip(seen, ids, strict=False):
                if a != b:
                    break
                common += 1
            self._llm.n_tokens = min(common, len(ids) - 1)  # at least one token evaluated: its logits
            self._llm.eval(ids[self._llm.n_tokens :])
            first = self._last_logprobs()
            n = self._llm.n_tokens
            out = []
            for option in options:
                toks = self._llm.tokenize(option.encode("utf-8"), add_bos=False, special=False)
                total, lp = 0.0, first
                self._llm.n_tokens = n  # back to the end of the prompt (the KV cache after it is dropped)
                for j, t in enumerate(toks):
                    total += float(lp[t])
                    if j + 1 < len(toks):
                        self._llm.eval([t])
                        lp = self._last_logprobs()
                out.append(total if toks else float("-inf"))
            return out
        except Exception as exc:
            raise BackendError(f"llama.cpp could not score: {exc}") from exc
