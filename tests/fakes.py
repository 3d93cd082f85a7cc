"""Test doubles for the model backends, so method, filter and pipeline tests run without loading a model.

:class:`FakeGenerator` implements the generator protocol of :mod:`augment.generators` (``backend``,
``model_id``, ``revision``, ``chat``, ``generate(prompts, n, decoding) -> list[list[Completion]]``). It
counts calls, samples and tokens, and answers deterministically: by default each answer is derived from
a hash of the prompt, the sample index and the decoding seed, shaped like what the prompt asks for
(a numbered list when the prompt shows a list of examples, otherwise one line reworded from the text
the prompt ends with). A test scripts it per call with :meth:`FakeGenerator.script`::

    fake.script(["1. 第一条\\n2. 第二条"])        # answers in order, then the default
    fake.script({"Translate": "hola"})             # the first key found in the prompt picks the answer
    fake.script(lambda prompt, i, decoding: None)  # a callable; None is a failed sample

The ``fake_generator`` fixture (tests/conftest.py) plugs one in wherever the engine loads a generator.
For embeddings, the engine's own model-free ``hashing`` embedder (``augment.embedders.HashingEmbedder``)
plays the same role; the ``hashing_embedder`` fixture returns it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Responder = Callable[[str, int, Any], "str | None | BaseException"]
Scorer = Callable[[str, str], float]

_LIST_LINE = re.compile(r"^\s*(?:\d{1,3}[.)、]|[-*•])\s*(?:\[[^\]]*\]\s*)?(.+?)\s*$")
_LEAD = re.compile(r"^[^\s:：]{1,16}\s*[:：]\s*")  # "Sentence:", "English:", "原句：" before the text
_OPEN_ITEM = re.compile(r"(?:^|\n)(\d{1,3})[.)、]\s*$")  # a completion prompt ends with "4." to continue
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def prompt_text(prompt: Any) -> str:
    """A prompt as one string: a plain completion prompt as is, chat messages joined by newlines."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content", "")) for m in prompt)


def digest(*parts: Any) -> int:
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8)
    return int.from_bytes(h.digest(), "little")


def reword(text: str, h: int) -> str:
    """A deterministic variant of ``text`` that differs from it: words (or, for CJK, characters)
    rotated by an amount taken from ``h``; a text that cannot change that way gets a mark appended."""
    text = text.strip()
    units = list(text) if _CJK.search(text) and " " not in text else text.split()
    joiner = "" if units == list(text) else " "
    if len(set(units)) > 1:
        k = 1 + h % (len(units) - 1)
        out = joiner.join(units[k:] + units[:k])
        if out != text:
            return out
    return f"{text} ({h % 97})" if text else f"fake {h % 97}"


def default_response(prompt: str, index: int, decoding: Any) -> str:
    """What the fake answers unscripted: a numbered list of variants of the prompt's listed examples
    (the few-shot prompts of self_instruct), else one variant of the text the prompt ends with (the
    translate, paraphrase and answer prompts)."""
    seed = getattr(decoding, "seed", 0)
    h = digest(prompt, index, seed)
    listed = first_list(prompt)
    if listed:
        items = [reword(listed[(h + j) % len(listed)], h >> (j + 1)) for j in range(3)]
        items = list(dict.fromkeys(it for it in items if it not in listed)) or [f"fake item {h % 997}"]
        start = _OPEN_ITEM.search(prompt)
        if start:  # a base model continues the open item, then numbers on
            k = int(start.group(1))
            return " " + items[0] + "".join(f"\n{k + j}. {it}" for j, it in enumerate(items[1:], 1))
        return "\n".join(f"{j + 1}. {it}" for j, it in enumerate(items))
    subjects = [_LEAD.sub("", ln.strip()) for ln in prompt.splitlines()]
    subject = next((s for s in reversed(subjects) if s), "")  # "Spanish:" ends a prompt: the line above
    return reword(subject, h)


def first_list(prompt: str) -> list[str]:
    """The items of the prompt's first list (the demonstrations; a later list holds contrasts)."""
    items: list[str] = []
    for line in prompt.splitlines():
        m = _LIST_LINE.match(line)
        if m:
            items.append(m.group(1))
        elif items:
            break
    return items


def count_tokens(text: str) -> int:
    """A stand-in token count: CJK characters plus other words (stable, cheap, never 0 for text)."""
    return max(1, len(_CJK.findall(text)) + len(_CJK.sub(" ", text).split())) if text else 0


class FakeGenerator:
    """A scripted, counting stand-in for an LLM backend (see the module docstring)."""

    def __init__(
        self,
        *,
        chat: bool = True,
        backend: str = "fake",
        model_id: str = "fake-llm",
        revision: str | None = "0",
        script: Sequence[str | None] | Mapping[str, str | None] | Responder | None = None,
        scores: bool = True,
    ) -> None:
        from augment.generators import Completion  # imported here: tests import this module lazily too

        self._completion = Completion
        self.backend, self.model_id, self.revision, self.chat = backend, model_id, revision, chat
        self.calls = 0  # generate() invocations
        self.samples = 0  # completions returned
        self.prompt_tokens = self.completion_tokens = 0
        self.prompts: list[str] = []  # every prompt seen, as text, in order (repeated once per call)
        self.decodings: list[Any] = []
        self.loads: list[tuple[Any, str]] = []  # (GeneratorConfig, language) per load_generator call
        self._queue: list[str | None] = []
        self._table: dict[str, str | None] = {}
        self._fn: Responder | None = None
        self.scored: list[tuple[str, list[str]]] = []  # (prompt text, options) per score() call
        self._scorer: Scorer | None = None
        if not scores:  # a backend without log-probabilities (like the OpenAI-compatible one)
            self.score = None  # type: ignore[assignment]
        if script is not None:
            self.script(script)

    def script(self, script: Sequence[str | None] | Mapping[str, str | None] | Responder) -> FakeGenerator:
        """Set what the next samples answer: a list (in order, then the default), a mapping from a
        substring of the prompt to the answer, or a callable ``(prompt, index, decoding)``. An answer of
        None (or an exception instance) is a failed sample."""
        if callable(script):
            self._fn = script
        elif isinstance(script, Mapping):
            self._table.update(script)
        else:
            self._queue.extend(script)
        return self

    def _answer(self, prompt: str, index: int, decoding: Any) -> str | None | BaseException:
        if self._queue:
            return self._queue.pop(0)
        for key, value in self._table.items():
            if key in prompt:
                return value
        if self._fn is not None:
            return self._fn(prompt, index, decoding)
        return default_response(prompt, index, decoding)

    def generate(self, prompts: Sequence[Any], n: int, decoding: Any) -> list[list[Any]]:
        from augment.generators.base import per_prompt

        self.calls += 1
        self.decodings.append(decoding)  # as given: one Decoding, or one per prompt
        out = []
        for prompt, dec in zip(prompts, per_prompt(decoding, len(prompts)), strict=True):
            text = prompt_text(prompt)
            self.prompts.append(text)
            samples = []
            for i in range(n):
                answer = self._answer(text, i, dec)
                self.samples += 1
                if answer is None or isinstance(answer, BaseException):
                    samples.append(self._completion(None, f"fake: {answer or 'scripted failure'}"))
                    continue
                stops = [s for s in getattr(dec, "stop", ()) if s]
                for s in stops:
                    answer = answer.split(s)[0]
                p, c = count_tokens(text), count_tokens(answer)
                self.prompt_tokens += p
                self.completion_tokens += c
                samples.append(self._completion(answer, None, p, c))
            out.append(samples)
        return out

    # -- scoring (the ICL baseline's label constraint): deterministic log-likelihood stand-ins --------
    def script_scores(self, scorer: Scorer) -> FakeGenerator:
        """Set how ``score`` rates an option: ``scorer(prompt_text, option) -> float``."""
        self._scorer = scorer
        return self

    def score(self, prompt: Any, options: Sequence[str]) -> list[float]:
        """Like a backend's ``score``: one number per option (higher: likelier). Unscripted, an option
        named in the prompt's last 3 lines scores 0 and others a hash-derived value below -1."""
        text = prompt_text(prompt)
        self.scored.append((text, list(options)))
        if self._scorer is not None:
            return [float(self._scorer(text, o)) for o in options]
        tail = "\n".join(text.splitlines()[-3:]).lower()
        return [0.0 if o.strip().lower() in tail else -1.0 - digest(text, o) % 1000 / 1000 for o in options]
