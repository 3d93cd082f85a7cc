"""A scripted generator for model-free tests of LLM methods: the generator interface (backend,
model_id, revision, chat, ``generate(prompts, n, decoding)``) answering from a script, counting calls.

``use_scripted(monkeypatch, script)`` makes the run context load it in place of a real model:
``script(prompt_text, decoding)`` returns the completion text, ``None`` (a backend error) or a
:class:`~augment.generators.Completion`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from augment.generators import Completion

PROMPT_TOKENS, COMPLETION_TOKENS = 50, 20


def prompt_text(prompt: Any) -> str:
    """A prompt as text: chat messages joined, completion prompts as they are."""
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


class ScriptedGenerator:
    backend = "scripted"

    def __init__(
        self, script: Callable[[str, Any], Any], *, chat: bool = True, model_id: str = "scripted-llm"
    ):
        self.script, self.chat, self.model_id, self.revision = script, chat, model_id, "r0"
        self.prompts: list[str] = []

    @property
    def calls(self) -> int:
        return len(self.prompts)

    def generate(self, prompts, n, decoding):
        from augment.generators.base import per_prompt

        out = []
        for p, dec in zip(prompts, per_prompt(decoding, len(prompts)), strict=True):
            text = prompt_text(p)
            samples = []
            for _ in range(n):
                self.prompts.append(text)
                made = self.script(text, dec)
                if isinstance(made, Completion):
                    samples.append(made)
                elif made is None:
                    samples.append(Completion(None, "scripted backend error"))
                else:
                    samples.append(Completion(made, None, PROMPT_TOKENS, COMPLETION_TOKENS))
            out.append(samples)
        return out


def use_scripted(
    monkeypatch, script: Callable[[str, Any], Any], *, chat: bool | None = None
) -> list[ScriptedGenerator]:
    """Every generator the run context loads from now on is a ScriptedGenerator (returned list: the
    ones loaded, so a test can count loads and calls)."""
    import augment.generators as generators

    loaded: list[ScriptedGenerator] = []

    def load(cfg, language):
        gen = ScriptedGenerator(
            script, chat=(cfg.chat if cfg.chat is not None else True) if chat is None else chat
        )
        loaded.append(gen)
        return gen

    monkeypatch.setattr(generators, "load_generator", load)
    return loaded


def refuse_loading(monkeypatch) -> None:
    """Loading any generator fails the test (a dry run must not load one)."""
    import augment.generators as generators

    def load(cfg, language):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(generators, "load_generator", load)
