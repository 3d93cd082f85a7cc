"""Held-out splits of the seeds, with lineage so that no training row is derived from a test row.

A held-out seed takes its descendants with it: every row whose ``parent_ids`` lead (directly or
through other generated rows) to a held-out seed is dropped from training, and so is any row whose
text equals a held-out text. Without this, an augmented copy of a test sentence (a swapped word, a
typo) would sit in the training set and inflate the "augmentation helped" numbers.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from augment.errors import DataError
from augment.record import SEED, Record

from .data import Examples


@dataclass
class Split:
    train: Examples
    held_out: Examples
    excluded: dict[str, int] = field(default_factory=dict)  # reason -> rows dropped from training


def _key(row: Record) -> str:
    return " ".join("".join(row.fields.values()).split()).lower()


def descendants_of(rows: list[Record], roots: set[str]) -> set[str]:
    """Ids of the rows that have an ancestor in ``roots`` (following parent_ids transitively)."""
    parents = {r.id: r.parent_ids for r in rows}
    memo: dict[str, bool] = {}

    def tainted(rid: str, depth: int = 0) -> bool:
        if rid in memo:
            return memo[rid]
        memo[rid] = False  # cycles (malformed files) end here
        hit = any(
            p in roots or (p in parents and depth < 64 and tainted(p, depth + 1))
            for p in parents.get(rid, ())
        )
        memo[rid] = hit
        return hit

    return {r.id for r in rows if r.id not in roots and tainted(r.id)}


def holdout(examples: Examples, *, fraction: float, seed: int) -> Split:
    """Hold out a stratified ``fraction`` of the seeds (at least one per label, and at least one seed
    of each label left for training), and drop their descendants from the rest."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the held-out fraction must be in (0, 1), got {fraction}")
    seeds = [r for r in examples.rows if r.origin == SEED]
    rng = random.Random(seed)
    by_label: dict[str | None, list[Record]] = defaultdict(list)
    for r in seeds:
        by_label[r.label if examples.task == "classification" else None].append(r)
    held: list[Record] = []
    for label in sorted(by_label, key=str):
        group = sorted(by_label[label], key=lambda r: r.id)
        if len(group) < 2:
            raise DataError(
                f"{examples.path}: label {label!r} has {len(group)} seed; holding out needs at least 2"
            )
        n = min(len(group) - 1, max(1, round(fraction * len(group))))
        held.extend(rng.sample(group, n))
    return exclude(examples, held)


def exclude(examples: Examples, held: list[Record]) -> Split:
    """``held`` as the held-out set; training is everything else minus rows derived from it."""
    held_ids = {r.id for r in held}
    tainted = descendants_of(examples.rows, held_ids)
    held_text = {_key(r) for r in held}
    train, excluded = [], {"held_out_seed": len(held_ids), "derived_from_held_out": 0, "same_text": 0}
    for r in examples.rows:
        if r.id in held_ids:
            continue
        if r.id in tainted:
            excluded["derived_from_held_out"] += 1
        elif _key(r) in held_text:
            excluded["same_text"] += 1
        else:
            train.append(r)
    held_rows = [r for r in examples.rows if r.id in held_ids]
    return Split(examples.subset(train), examples.subset(held_rows), excluded)


def against(examples: Examples, test: Examples) -> Split:
    """A separate test file: its rows that are seeds of ``examples`` (same text; ids differ across
    files) leave training with their descendants, and so does any other row with a test text."""
    keys = {_key(r) for r in test.rows}
    held = [r for r in examples.rows if r.origin == SEED and _key(r) in keys]
    split = exclude(examples, held)
    others = [r for r in split.train.rows if _key(r) not in keys]
    split.excluded["same_text"] += len(split.train.rows) - len(others)
    return Split(examples.subset(others), test, split.excluded)
