"""Which methods a run uses when the user names none: the policy in one place."""

from __future__ import annotations

from ..record import CLASSIFICATION
from .lexical import default_methods

# Instruction data: lexical noise on an instruction (a deleted or inserted word, a swap) changes what
# is asked while the copied answer stays, so the defaults rewrite with the LLM instead (the embedded
# one when none is configured), which keeps the meaning the answer fits.
INSTRUCTION_DEFAULTS = ("paraphrase",)


def methods_for_run(named: list[str] | None, language: str, task: str, *, has_pool: bool) -> list[str]:
    """The methods named; else, for instruction data, :data:`INSTRUCTION_DEFAULTS` (no lexical
    method); else the language's lexical defaults, back-translation where Apertium can round-trip
    the language (rule-based: fast, no model weights), and pseudo-labelling when a classification
    run has an unlabelled pool."""
    if named:
        return list(named)
    if task != CLASSIFICATION:
        return list(INSTRUCTION_DEFAULTS)
    from ..translation import apertium_pivots

    names = default_methods(language)
    if apertium_pivots(language):
        names.append("backtranslate")
    return [*names, "pseudo_label"] if has_pool and task == CLASSIFICATION else names
