"""Cheap text checks that run before any model: too short, the same text as its parent, too short or
long for it, and, for generated text (an LLM's instruction or answer), loops (repeated n-grams) and
answers cut off mid-sentence."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..language import normalise
from ..record import CLASSIFICATION, Record
from ..steps import register_filter
from .base import FilterContext, FilterStep, Verdict


@dataclass
class QualityConfig:
    min_chars: int = field(default=2, metadata={"help": "drop candidates shorter than this"})
    min_length_ratio: float = field(default=0.3, metadata={"help": "length / parent length, lower"})
    max_length_ratio: float = field(default=3.0, metadata={"help": "length / parent length, upper"})
    max_repeat_ngram_ratio: float = field(
        default=0.3,
        metadata={
            "help": "drop text whose repeated n-grams (4 characters for CJK, 3 words otherwise) exceed "
            "this share of all its n-grams: a model looping; 1 turns it off"
        },
    )
    check_truncation: bool = field(
        default=True,
        metadata={
            "help": "drop a generated answer that ends without sentence-final punctuation when its "
            "parent's answer ends with it (cut off at the token limit)"
        },
    )

    def __post_init__(self) -> None:
        if not 0 <= self.max_repeat_ngram_ratio <= 1:
            raise ConfigError(f"max_repeat_ngram_ratio must be in [0, 1], got {self.max_repeat_ngram_ratio}")
        if self.min_chars < 0:
            raise ConfigError(f"min_chars must be >= 0, got {self.min_chars}")
        if self.min_length_ratio < 0:
            raise ConfigError(f"min_length_ratio must be >= 0, got {self.min_length_ratio}")
        if self.max_length_ratio < self.min_length_ratio:
            raise ConfigError(
                "max_length_ratio must be at least min_length_ratio, got "
                f"{self.max_length_ratio} < {self.min_length_ratio}"
            )


# sentence-final punctuation, Chinese and English, optionally followed by closing quotes/brackets
_FINAL = re.compile(r"[。！？!?.…；;:：~～]+[\"'”’」』）)\]】》]*$")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_MIN_NGRAMS = 8  # shorter texts are not judged for repetition
ANSWER = "output"


def repeat_ngram_ratio(text: str) -> float:
    """The share of a text's n-grams that repeat an earlier one: CJK character 4-grams (punctuation
    and spaces left out), else lower-cased word 3-grams; 0 for texts too short to judge."""
    if len(_CJK.findall(text)) * 2 >= len(text.replace(" ", "")):
        units, n = [ch for ch in text if ch.isalnum()], 4
    else:
        units, n = re.findall(r"\w+", text.lower()), 3
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    if len(grams) < _MIN_NGRAMS:
        return 0.0
    return round(1 - len(set(grams)) / len(grams), 4)


def ends_a_sentence(text: str) -> bool:
    return bool(_FINAL.search(text.rstrip()))


@register_filter(
    "quality",
    QualityConfig,
    summary="too short, the same text as its parent, too short/long for it, looping or cut off",
)
class QualityFilter(FilterStep):
    needs_embeddings = False
    default_position = 10

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        min_chars = self.config.min_chars
        min_ratio, max_ratio = self.config.min_length_ratio, self.config.max_length_ratio
        out = []
        for cand in candidates:
            text = cand.fields.get(ctx.field, "")
            parent = ctx.parent_of(cand)
            parent_text = parent.fields.get(ctx.field, "") if parent else ""
            ratio = round(len(text) / max(len(parent_text), 1), 4) if parent is not None else None
            if len(text.strip()) < min_chars:
                out.append(Verdict(False, ratio, "too_short", f"{len(text.strip())} < {min_chars} chars"))
            elif parent is not None and normalise(text) == normalise(parent_text):
                out.append(
                    Verdict(False, ratio, "same_as_parent", "differs only in case, spacing or punctuation")
                )
            elif parent is not None and ratio < min_ratio:
                out.append(
                    Verdict(
                        False,
                        ratio,
                        "too_short_for_parent",
                        f"length ratio {ratio} < {min_ratio}",
                    )
                )
            elif parent is not None and ratio > max_ratio:
                out.append(
                    Verdict(False, ratio, "too_long_for_parent", f"length ratio {ratio} > {max_ratio}")
                )
            else:
                out.append(self._generated(cand, parent, text, ratio, ctx))
        return out

    def _generated(
        self, cand: Record, parent: Record | None, text: str, ratio: float | None, ctx: FilterContext
    ) -> Verdict:
        """Loops in the rewritten text or in a generated answer (more than the limit, and more than
        the parent's own text repeats), and a generated answer cut off."""
        if parent is None:  # self-instruct rows written from demonstrations: compare with the first
            ids = [pid for pid in cand.parent_ids if pid in ctx.seed_index]
            parent = ctx.seeds[ctx.seed_index[ids[0]]] if ids else None
        if parent is None:  # pool rows: nothing generated
            return Verdict(True, ratio)
        answer = cand.fields.get(ANSWER, "")
        parent_answer = parent.fields.get(ANSWER, "")
        texts = {ctx.field: (text, parent.fields.get(ctx.field, ""))}
        generated_answer = bool(
            cand.task != CLASSIFICATION and ctx.field != ANSWER and answer and answer != parent_answer
        )
        if generated_answer:
            texts[ANSWER] = (answer, parent_answer)
        limit = self.config.max_repeat_ngram_ratio
        for name, (value, before) in texts.items():
            rep = repeat_ngram_ratio(value)
            if rep > limit and rep > repeat_ngram_ratio(before):
                return Verdict(False, ratio, "repetitive", f"{name}: repeated n-grams {rep} > {limit}")
        checks_answer = generated_answer or (ctx.field == ANSWER and cand.task != CLASSIFICATION)
        if self.config.check_truncation and checks_answer:
            ans = answer if generated_answer else text
            if ends_a_sentence(parent_answer) and not ends_a_sentence(ans):
                tail = ans.rstrip()[-12:]
                return Verdict(False, ratio, "truncated", f"answer ends mid-sentence: …{tail}")
        return Verdict(True, ratio)
