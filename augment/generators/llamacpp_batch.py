"""Batched decoding for the llama.cpp backend: several sequences (prompts, and samples of a prompt) share
one llama context and advance together, one ``llama_decode`` per step.

Each sequence has its own KV stream (``kv_unified`` off, ``n_seq_max`` streams of ``n_ctx`` tokens each),
its own sampler chain (the one llama-cpp-python builds for ``create_completion``, seeded per sequence)
and its own stop / end-of-generation / length bookkeeping, copied from llama-cpp-python's
``_create_completion`` so that a sequence's text is what ``create_chat_completion`` returns for the same
prompt tokens, stops and seed. Scheduling is continuous: a finished sequence frees its slot (its KV
stream is cleared) and the next waiting sequence is admitted (its prompt evaluated by itself, then it
joins the others' steps).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .base import Completion, Decoding

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """One sequence to generate: a prepared prompt and how to sample it."""

    tokens: list[int]  # prompt tokens, exactly as llama-cpp-python would evaluate them
    stops: list[bytes]  # stop strings, in llama-cpp-python's order (the first listed that occurs wins)
    max_tokens: int  # completion tokens at most (already capped by the context)
    decoding: Decoding
    seed: int  # the sampler's seed (decoding.seed + sample index)


@dataclass
class _Slot:
    """A sequence in flight: its job, sampler and progress."""

    seq_id: int
    index: int  # position of the job in the run's list
    job: Job
    sampler: Any
    n_past: int = 0  # positions in the KV stream
    out: list[int] = field(default_factory=list)
    text: bytes = b""
    multibyte_fix: int = 0
    last: int | None = None  # the sampled token still to evaluate


def _common(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _incomplete_utf8(text: bytes, fix: int) -> int:
    """llama-cpp-python's test for a completion ending inside a multi-byte UTF-8 character: how many
    more tokens to take before looking for stop strings (verbatim from ``_create_completion``)."""
    for k, char in enumerate(text[-3:]):
        k = 3 - k
        for num, pattern in [(2, 192), (3, 224), (4, 240)]:
            if num > k and pattern & char == pattern:
                fix = num - k
    return fix


class BatchedDecoder:
    """A second llama context on a loaded model, for ``parallel`` sequences at a time.

    ``llm`` is the ``llama_cpp.Llama`` whose model (and sampler builder, tokenizer) is shared; its own
    context stays free for scoring and one-at-a-time generation."""

    def __init__(self, llm: Any, parallel: int, n_ctx: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._llm = llm
        self.parallel = parallel
        self.chunk = llm.n_batch  # prompt chunks, as Llama.eval takes them
        self.n_batch = max(self.chunk, parallel)
        params = llama_cpp.llama_context_default_params()
        for name, _ in llama_cpp.llama_context_params._fields_:  # threads, rope, attention: as the Llama's
            setattr(params, name, getattr(llm.context_params, name))
        params.n_ctx = n_ctx * parallel
        params.n_seq_max = parallel
        params.kv_unified = False  # a KV stream per sequence: attention only over its own tokens
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self.n_ctx_seq = llama_cpp.llama_n_ctx_seq(self._ctx.ctx)
        if self.n_ctx_seq < n_ctx:
            raise ValueError(f"llama.cpp gave {self.n_ctx_seq} tokens per sequence, not {n_ctx}")
        self._mem = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self._vocab = llm._model.vocab
        # the prompt tokens whose keys and values each stream holds, kept for the next sequence there
        self._kept: list[list[int]] = [[] for _ in range(parallel)]

    def close(self) -> None:
        """Free the context and its KV streams now (the model would otherwise keep them until it goes)."""
        self._batch.close()
        self._ctx.close()

    def _sampler(self, job: Job) -> Any:
        """The chain ``create_completion`` samples with (its defaults: top-k 40, min-p 0.05, no
        penalties), greedy at temperature 0, its random draw seeded with this sequence's seed."""
        d = job.decoding
        self._llm.set_seed(job.seed)
        return self._llm._init_sampler(temp=d.temperature, top_p=d.top_p, top_k=40, min_p=0.05)

    def run(self, jobs: list[Job]) -> list[Completion]:
        """Generate every job; a sequence that fails is ``Completion(None, error)``.

        A new sequence's prompt is evaluated by itself (after the prefix it shares with the prompt
        its stream held before, which is kept), in chunks of the ``Llama``'s ``n_batch`` as
        ``Llama.eval`` does, and every later decode holds exactly one token of each sequence: a
        sequence's logits then come from the same kernels as when it is generated alone. (llama.cpp's
        attention over a single query row rounds differently from its many-row path, so how a
        sequence's tokens are grouped into ubatches, not which other sequences share them, decides
        its numbers; at least two prompt tokens are always evaluated for that reason.)"""
        import llama_cpp

        try:
            return self._run(jobs)
        except BaseException:  # streams in an unknown state: start the next run from empty ones
            llama_cpp.llama_memory_clear(self._mem, True)
            self._kept = [[] for _ in range(self.parallel)]
            raise

    def _run(self, jobs: list[Job]) -> list[Completion]:
        import llama_cpp

        results: list[Completion | None] = [None] * len(jobs)
        waiting = list(range(len(jobs)))[::-1]  # popped from the end: in order
        free = list(range(self.parallel))
        active: list[_Slot] = []
        batch = self._batch.batch
        while waiting or active:
            while waiting and free:
                i = waiting.pop()
                job = jobs[i]
                if not job.tokens or job.max_tokens < 1:
                    results[i] = Completion(None, "llama.cpp: empty prompt or no room to generate")
                    continue
                # the free stream holding the longest prefix of this prompt (the first on ties)
                best = max(free, key=lambda q: (_common(self._kept[q], job.tokens), -q))
                free.remove(best)
                s = _Slot(best, i, job, None)
                active.append(s)
                try:
                    s.sampler = self._sampler(job)
                    row = self._prefill(s)
                    done = self._step(s, s.sampler.sample(self._ctx, row))
                except Exception as exc:  # one failed sequence is data
                    done = Completion(None, f"llama.cpp: {exc}")
                if done is not None:
                    results[i] = done
                    self._finish(s, active, free, failed=done.text is None)
            if not active:
                continue
            # one decode: the last sampled token of every sequence in flight
            for n, s in enumerate(active):
                self._put(batch, n, s.last, s.n_past, s.seq_id, True)  # type: ignore[arg-type]
            batch.n_tokens = len(active)
            rc = llama_cpp.llama_decode(self._ctx.ctx, batch)
            if rc != 0:  # the sequences of this decode fail; waiting ones still run
                for s in list(active):
                    results[s.index] = Completion(None, f"llama.cpp: llama_decode returned {rc}")
                    self._finish(s, active, free, failed=True)
                continue
            for n, s in enumerate(list(active)):
                s.n_past += 1
                try:
                    done = self._step(s, s.sampler.sample(self._ctx, n))
                except Exception as exc:
                    done = Completion(None, f"llama.cpp: {exc}")
                if done is not None:
                    results[s.index] = done
                    self._finish(s, active, free, failed=done.text is None)
        return [r if r is not None else Completion(None, "llama.cpp: not generated") for r in results]

    def _prefill(self, s: _Slot) -> int:
        """Evaluate a sequence's prompt by itself, after the prefix its stream already holds; the
        batch row holding the last prompt token's logits."""
        import llama_cpp

        batch, tokens, step = self._batch.batch, s.job.tokens, self.chunk
        keep = max(0, min(_common(self._kept[s.seq_id], tokens), len(tokens) - 2))
        self._kept[s.seq_id] = []
        if not llama_cpp.llama_memory_seq_rm(self._mem, s.seq_id, keep, -1):
            llama_cpp.llama_memory_seq_rm(self._mem, s.seq_id, -1, -1)  # a whole sequence always goes
            keep = 0
        for start in range(keep, len(tokens), step):
            chunk = tokens[start : start + step]
            for k, token in enumerate(chunk):
                self._put(batch, k, token, start + k, s.seq_id, k == len(chunk) - 1)
            batch.n_tokens = len(chunk)
            rc = llama_cpp.llama_decode(self._ctx.ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc} on the prompt")
        s.n_past = len(tokens)
        self._kept[s.seq_id] = list(tokens)
        return (len(tokens) - keep - 1) % step  # its row in the last chunk

    @staticmethod
    def _put(batch: Any, n: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
        batch.token[n] = token
        batch.pos[n] = pos
        batch.n_seq_id[n] = 1
        batch.seq_id[n][0] = seq_id
        batch.logits[n] = logits

    def _finish(self, s: _Slot, active: list[_Slot], free: list[int], failed: bool = False) -> None:
        """Free a sequence's slot; its prompt stays in the stream for the next one, unless it failed."""
        import llama_cpp

        active.remove(s)
        if failed:
            llama_cpp.llama_memory_seq_rm(self._mem, s.seq_id, -1, -1)
            self._kept[s.seq_id] = []
        free.append(s.seq_id)
        s.sampler = None

    def _step(self, s: _Slot, token: int) -> Completion | None:
        """Take a sampled token as ``_create_completion`` does; the finished Completion, or None."""
        import llama_cpp

        job = s.job

        def done(text: bytes) -> Completion:
            return Completion(text.decode("utf-8", errors="ignore"), None, len(job.tokens), len(s.out))

        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            return done(s.text)
        s.out.append(token)
        s.text += self._llm.detokenize([token])
        s.multibyte_fix = _incomplete_utf8(s.text, s.multibyte_fix)
        if s.multibyte_fix > 0:  # inside a multi-byte character: no stop test yet
            s.multibyte_fix -= 1
        else:
            hits = [stop for stop in job.stops if stop in s.text]
            if hits:
                return done(s.text[: s.text.index(hits[0])])
        if len(s.out) >= job.max_tokens:
            return done(s.text)
        s.last = token
        return None
