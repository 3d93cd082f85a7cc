"""llama.cpp backend: a GGUF file through llama-cpp-python, the fast CPU path (and the embedded
defaults' backend under ``backend: auto`` when llama-cpp-python is installed)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from ..errors import BackendError
from .base import Completion, Decoding, Decodings, Prompt, package_version, per_prompt

logger = logging.getLogger(__name__)

# sequences decoded together by default: on 2 CPU cores one llama_decode of 8 SmolLM2-135M sequences
# gives ~1.8x the tokens/s of one (1.15-1.25x end to end, benchmarks/llm_speed.py); 16 adds little and
# costs twice the KV memory (parallel x n_ctx tokens)
DEFAULT_PARALLEL = 8


class _Prepared(Exception):
    """Raised by :class:`_Probe` where llama-cpp-python would start generating: the request's prompt
    tokens and stop strings, exactly as ``create_chat_completion`` / ``create_completion`` made them."""

    def __init__(self, tokens: list[int], stops: list[str]) -> None:
        super().__init__("prepared")
        self.tokens, self.stops = tokens, stops


class _Probe:
    """Stands in for the ``Llama`` object while its chat handler and ``_create_completion`` prepare a
    request (template, tokenisation, stop strings, context check), and stops them before generation."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self._stops: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def create_completion(self, **kwargs: Any) -> Any:  # what a chat handler calls
        from llama_cpp import Llama

        stop = kwargs.get("stop")
        self._stops = [stop] if isinstance(stop, str) else list(stop or [])
        kwargs["stream"] = False
        return next(Llama._create_completion(self, **kwargs))  # type: ignore[arg-type]

    def generate(self, tokens: Sequence[int], **_: Any) -> Any:
        raise _Prepared(list(tokens), self._stops)


def llm_threads() -> int:
    """CPU threads for llama.cpp: ``AUGMENT_LLM_THREADS`` when set (a Ray actor sets it to its own
    CPUs, so actors on one node do not oversubscribe it), else every core."""
    value = os.environ.get("AUGMENT_LLM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else os.cpu_count() or 1


class LlamaCppGenerator:
    """``parallel`` sequences (prompts, and samples of a prompt) are decoded together in a second llama
    context (:mod:`.llamacpp_batch`); ``parallel=1`` generates one sample at a time through
    ``create_chat_completion`` / ``create_completion``. Both give the same text for the same prompt,
    decoding and seed (a sequence's numbers do not depend on its neighbours in a batch). The one
    exception: llama-cpp-python re-evaluates a prompt it has just run from its last token alone, which
    rounds differently, so its samples 2..n (and a repeated prompt) can differ from the batched ones."""

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
        parallel: int = DEFAULT_PARALLEL,
    ) -> None:
        if parallel < 1:
            raise BackendError(f"llama.cpp: parallel must be at least 1, got {parallel}")
        try:
            from llama_cpp import Llama

            self._llm = Llama(
                model_path=model_path,
                n_ctx=n_ctx,
                n_threads=n_threads or llm_threads(),
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
        self.n_ctx = n_ctx
        self.parallel = parallel
        self._batched: Any = None  # the BatchedDecoder, made on first use

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decodings) -> list[list[Completion]]:
        """``n`` completions per prompt, in order; ``decoding`` shared or one per prompt. Sample ``i``
        of a prompt is seeded with ``decoding.seed + i``."""
        decodings = per_prompt(decoding, len(prompts))
        if self.parallel <= 1:
            return self._generate_one_at_a_time(prompts, n, decodings)
        return self._generate_batched(prompts, n, decodings)

    def _prepare(self, prompt: Prompt, decoding: Decoding) -> tuple[list[int], list[str], int]:
        """(prompt tokens, stop strings, completion tokens at most) as llama-cpp-python's
        ``create_chat_completion`` (chat) or ``create_completion`` prepares them: the same template,
        tokens and stops; a prompt that does not fit the context raises its ValueError."""
        from llama_cpp import Llama, llama_chat_format

        probe = _Probe(self._llm)
        stop = list(decoding.stop) or None
        try:
            if self.chat:
                llm = self._llm
                handler = (
                    llm.chat_handler
                    or llm._chat_handlers.get(llm.chat_format)
                    or llama_chat_format.get_chat_completion_handler(llm.chat_format)
                )
                handler(llama=probe, messages=prompt, stop=stop, max_tokens=decoding.max_new_tokens)
            else:
                probe._stops = list(decoding.stop)
                next(Llama._create_completion(probe, prompt=prompt, stop=stop))  # type: ignore[arg-type]
        except _Prepared as got:
            tokens, stops = got.tokens, got.stops
        else:  # pragma: no cover - llama-cpp-python changed how it prepares requests
            raise BackendError("llama.cpp: could not prepare the prompt")
        n_ctx, max_tokens = self._llm.n_ctx(), decoding.max_new_tokens
        if max_tokens <= 0 or max_tokens + len(tokens) >= n_ctx:  # as _create_completion caps it
            max_tokens = n_ctx - len(tokens)
        return tokens, stops, max_tokens

    def _generate_batched(
        self, prompts: Sequence[Prompt], n: int, decodings: list[Decoding]
    ) -> list[list[Completion]]:
        from .llamacpp_batch import BatchedDecoder, Job

        jobs: list[Job] = []
        where: list[tuple[int, int]] = []  # (prompt, sample) of each job
        out: list[list[Completion | None]] = [[None] * n for _ in prompts]
        for p, (prompt, d) in enumerate(zip(prompts, decodings, strict=True)):
            try:
                tokens, stops, max_tokens = self._prepare(prompt, d)
            except Exception as exc:  # a prompt that cannot run fails its samples, not the call
                out[p] = [Completion(None, f"llama.cpp: {exc}") for _ in range(n)]
                continue
            for i in range(n):
                jobs.append(Job(tokens, [s.encode("utf-8") for s in stops], max_tokens, d, d.seed + i))
                where.append((p, i))
        if jobs:
            try:
                if self._batched is None or self._batched.parallel != self.parallel:
                    if self._batched is not None:  # the old context goes before a new one is made
                        self._batched.close()
                        self._batched = None
                    self._batched = BatchedDecoder(self._llm, self.parallel, self._llm.n_ctx())
                done = self._batched.run(jobs)
            except Exception as exc:  # the context could not be made: every sample fails, no crash
                logger.warning("llama.cpp batched decoding failed: %s", exc)
                done = [Completion(None, f"llama.cpp: {exc}") for _ in jobs]
            for (p, i), c in zip(where, done, strict=True):
                out[p][i] = c
        return [
            [c if c is not None else Completion(None, "llama.cpp: not generated") for c in s] for s in out
        ]

    def _generate_one_at_a_time(
        self, prompts: Sequence[Prompt], n: int, decodings: list[Decoding]
    ) -> list[list[Completion]]:
        out = []
        for prompt, decoding in zip(prompts, decodings, strict=True):
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
