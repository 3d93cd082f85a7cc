"""Cheap text checks that run before any model: too short, or the same text as its parent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..language import normalise
from ..record import Record
from ..steps import register_filter
from .base import FilterContext, FilterStep, Verdict


@dataclass
class QualityConfig:
    min_chars: int = field(default=2, metadata={"help": "drop candidates shorter than this"})
    min_length_ratio: float = field(default=0.3, metadata={"help": "length / parent length, lower"})
    max_length_ratio: float = field(default=3.0, metadata={"help": "length / parent length, upper"})

    def __post_init__(self) -> None:
        if self.min_chars < 0:
            raise ConfigError(f"min_chars must be >= 0, got {self.min_chars}")
        if self.min_length_ratio < 0:
            raise ConfigError(f"min_length_ratio must be >= 0, got {self.min_length_ratio}")
        if self.max_length_ratio < self.min_length_ratio:
            raise ConfigError(
                "max_length_ratio must be at least min_length_ratio, got "
                f"{self.max_length_ratio} < {self.min_length_ratio}"
            )


@register_filter(
    "quality", QualityConfig, summary="too short, the same text as its parent, or too short/long for it"
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
                out.append(Verdict(True, ratio))
        return out
