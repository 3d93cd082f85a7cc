"""The response cache: completions kept in SQLite (``cache_dir()/responses.sqlite`` for a run) and a
generator wrapper that serves repeats from it and counts what was really generated."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from .base import Completion, Decoding, Decodings, Generator, Prompt, per_prompt


class ResponseCache:
    """SQLite cache of completions keyed by backend, model, endpoint, prompt, decoding and sample index.
    Never holds an API key (the key is not part of any request field stored here)."""

    def __init__(self, path: Path) -> None:
        import sqlite3

        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT)")
        self._lock = threading.Lock()

    @staticmethod
    def key(gen: Generator, prompt: Prompt, decoding: Decoding, index: int) -> str:
        from ..record import stable_hash

        where = getattr(gen, "base_url", None)
        return stable_hash(
            gen.backend,
            gen.model_id,
            gen.revision,
            where,
            gen.chat,
            prompt,
            decoding.to_dict(),
            index,
            length=40,
        )

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        d = json.loads(row[0])
        return Completion(d["text"], None, d["prompt_tokens"], d["completion_tokens"], cached=True)

    def put(self, key: str, c: Completion) -> None:
        if c.text is None:  # failures are retried on the next run, not cached
            return
        value = json.dumps(
            {"text": c.text, "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens},
            ensure_ascii=False,
        )
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, value))
            self._db.commit()


class CachedGenerator:
    """Serves repeated requests from the cache and counts what was really generated."""

    def __init__(self, inner: Generator, cache: ResponseCache | None) -> None:
        self.inner, self.cache = inner, cache
        self.backend, self.model_id, self.revision, self.chat = (
            inner.backend,
            inner.model_id,
            inner.revision,
            inner.chat,
        )
        self.calls = self.hits = self.completion_tokens = self.prompt_tokens = 0

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decodings) -> list[list[Completion]]:
        """Cached completions where there are, the rest from the backend in one call; each prompt is
        keyed with its own decoding (``decoding`` is shared or one per prompt)."""
        decodings = per_prompt(decoding, len(prompts))
        out: list[list[Completion | None]] = [[None] * n for _ in prompts]
        keys = {}
        missing: list[int] = []
        for p, prompt in enumerate(prompts):
            for i in range(n):
                keys[p, i] = ResponseCache.key(self.inner, prompt, decodings[p], i)
                hit = self.cache.get(keys[p, i]) if self.cache else None
                out[p][i] = hit
            if any(c is None for c in out[p]):
                missing.append(p)
            else:
                self.hits += n
        if missing:
            wanted = [decodings[p] for p in missing]
            # one shared decoding stays one (the form every backend has always taken)
            shared: Decodings = wanted[0] if all(d == wanted[0] for d in wanted) else wanted
            fresh = self.inner.generate([prompts[p] for p in missing], n, shared)
            for p, samples in zip(missing, fresh, strict=True):
                for i, c in enumerate(samples):
                    if out[p][i] is None:
                        out[p][i] = c
                        self.calls += 1
                        self.completion_tokens += c.completion_tokens
                        self.prompt_tokens += c.prompt_tokens
                        if self.cache:
                            self.cache.put(keys[p, i], c)
                    else:
                        self.hits += 1
        return out  # type: ignore[return-value]
