"""Cheap text checks that run before any model: too short, or the same text as its parent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..language import normalise
from ..record import Record
from .base import FilterContext, Verdict


@dataclass
class QualityFilter:
    min_chars: int = 2
    min_length_ratio: float = 0.0
    max_length_ratio: float = float("inf")
    name: str = "quality"
    needs_embeddings: bool = False

    def __call__(self, candidates: Sequence[Record], ctx: FilterContext) -> list[Verdict]:
        out = []
        for cand in candidates:
            text = cand.fields.get(ctx.field, "")
            parent = ctx.parent_of(cand)
            parent_text = parent.fields.get(ctx.field, "") if parent else ""
            ratio = round(len(text) / max(len(parent_text), 1), 4) if parent is not None else None
            if len(text.strip()) < self.min_chars:
                out.append(
                    Verdict(False, ratio, "too_short", f"{len(text.strip())} < {self.min_chars} chars")
                )
            elif parent is not None and normalise(text) == normalise(parent_text):
                out.append(
                    Verdict(False, ratio, "same_as_parent", "differs only in case, spacing or punctuation")
                )
            elif parent is not None and ratio < self.min_length_ratio:
                out.append(
                    Verdict(
                        False,
                        ratio,
                        "too_short_for_parent",
                        f"length ratio {ratio} < {self.min_length_ratio}",
                    )
                )
            elif parent is not None and ratio > self.max_length_ratio:
                out.append(
                    Verdict(
                        False, ratio, "too_long_for_parent", f"length ratio {ratio} > {self.max_length_ratio}"
                    )
                )
            else:
                out.append(Verdict(True, ratio))
        return out
