"""Language/script check: a candidate must be written in the run's language (by script).

Catches generations that drift into another language (an LLM answering a Chinese prompt in
English, a back-translation stuck in the pivot language). Applies to languages the detector
tells apart (zh, en); for others every candidate passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..language import cjk_ratio
from ..record import Record
from ..steps import register_filter
from .base import FilterContext, FilterStep, Verdict

MIN_CJK = {"zh": 0.3, "ja": 0.3}  # share of Han/kana letters a Chinese (Japanese) text must have
MAX_CJK = {"en": 0.1}  # share an English text may have


@dataclass
class ScriptConfig:
    """No parameters: the script follows from the run's language."""


@register_filter(
    "script", ScriptConfig, summary="the candidate is written in the run's language (by script: zh, en)"
)
class ScriptFilter(FilterStep):
    needs_embeddings = False
    default_position = 20

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        lang = self.language.split("-")[0].lower()
        out = []
        for cand in candidates:
            ratio = round(cjk_ratio([cand.fields.get(ctx.field, "")]), 4)
            if lang in MIN_CJK and ratio < MIN_CJK[lang]:
                out.append(
                    Verdict(False, ratio, "wrong_script", f"{ratio:.2f} of letters are Han < {MIN_CJK[lang]}")
                )
            elif lang in MAX_CJK and ratio > MAX_CJK[lang]:
                out.append(
                    Verdict(False, ratio, "wrong_script", f"{ratio:.2f} of letters are Han > {MAX_CJK[lang]}")
                )
            else:
                out.append(Verdict(True, ratio))
        return out
