"""Instruction data gets no lexical noise by default (it would change what is asked while the copied
answer stays), and `insert` draws its donor words from the same label (classification) or the same
seed (instruction data), never from another domain."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import ZH_INSTRUCTIONS

from augment.config import DataConfig
from augment.context import RunContext
from augment.io import load_records
from augment.methods import build_method
from augment.methods.defaults import methods_for_run

LEXICAL = {"swap", "delete", "insert", "synonym", "spelling", "keyboard", "contextual"}


@pytest.mark.parametrize("language", ["zh", "en"])
def test_instruction_defaults_hold_no_lexical_method(language):
    names = methods_for_run(None, language, "instruction", has_pool=False)
    assert names and not LEXICAL & set(names)
    assert set(names) <= {"paraphrase", "self_instruct"}
    # classification keeps the lexical defaults; named methods run as named
    assert "swap" in methods_for_run(None, language, "classification", has_pool=False)
    assert methods_for_run(["swap"], language, "instruction", has_pool=False) == ["swap"]


def _inserted(before: str, after: str) -> Counter:
    return Counter(after) - Counter(before)


def test_instruction_insert_uses_only_the_same_seeds_words():
    _, seeds = load_records(ZH_INSTRUCTIONS / "seeds.jsonl", DataConfig())
    m = build_method("insert", {})
    m.setup(RunContext(seeds=seeds, language="zh"))
    batch = seeds[:8]
    out = m.generate(batch, "instruction", 2, 13)
    by_id = {s.id: s for s in batch}
    changed = 0
    for cand in out:
        if cand.rejection is not None:
            continue
        seed = by_id[cand.parent_ids[0]]
        own = Counter("".join(seed.fields.values()))
        added = _inserted(seed.fields["instruction"], cand.fields["instruction"])
        assert added and all(ch in own for ch in added), (
            seed.fields["instruction"],
            cand.fields["instruction"],
        )
        changed += 1
    assert changed


def test_classification_insert_uses_only_the_same_labels_words(zh_seeds):
    m = build_method("insert", {})
    m.setup(RunContext(seeds=zh_seeds, language="zh"))
    for seed in zh_seeds[:12]:
        m._current, m._current_field = seed, "text"
        vocab = m._label_vocabulary()
        same = "".join(s.fields["text"] for s in zh_seeds if s.label == seed.label)
        assert vocab and all(w in same for w in vocab)
    a = next(s for s in zh_seeds if s.label != zh_seeds[0].label)
    m._current = zh_seeds[0]
    first = set(m._label_vocabulary())
    m._current = a
    assert first != set(m._label_vocabulary())
