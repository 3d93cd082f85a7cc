"""augment/record.py: content ids, the JSONL row round trip, and lineage of derived candidates."""

from __future__ import annotations

import json

import pytest

from augment.record import (
    AUGMENTED,
    CLASSIFICATION,
    INSTRUCTION,
    POOL,
    SEED,
    Lineage,
    Record,
    Rejection,
    seed_record,
    stable_hash,
)

ZH = "我的银行卡丢了，请帮我挂失"
EN = "Chest pain radiating to left arm, BP 150/95."


def _lineage(seed: int = 7) -> Lineage:
    return Lineage(
        backend="nlpaug 1.1.11",
        model="WordNet 3.0",
        model_revision="r1",
        params={"aug_p": 0.15, "tokenizer": "jieba"},
        random_seed=seed,
        field="text",
    )


def _json_round_trip(rec: Record) -> Record:
    return Record.from_dict(json.loads(json.dumps(rec.to_dict(), ensure_ascii=False)))


@pytest.mark.parametrize("text", [ZH, EN])
def test_seed_id_is_stable_for_same_content(text):
    a = seed_record(CLASSIFICATION, {"text": text}, "card_lost", source={"file": "a.jsonl", "line": 1})
    b = seed_record(CLASSIFICATION, {"text": text}, "card_lost", source={"file": "b.csv", "row": 9})
    assert a.id == b.id  # where a row came from does not change what it is
    assert a.id.startswith("s-") and len(a.id) == 2 + 16
    # and it is a pure function of the content: the same on any run (pinned to the hash definition)
    assert a.id == "s-" + stable_hash(CLASSIFICATION, {"text": text}, "card_lost")


@pytest.mark.parametrize(
    "other",
    [
        dict(task=CLASSIFICATION, fields={"text": ZH + "吧"}, label="card_lost"),
        dict(task=CLASSIFICATION, fields={"text": ZH}, label="password_reset"),
        dict(task=CLASSIFICATION, fields={"text": ZH, "text_pair": "谢谢"}, label="card_lost"),
        dict(task=INSTRUCTION, fields={"instruction": ZH, "input": "", "output": "好的"}, label=None),
    ],
    ids=["text", "label", "text_pair", "task"],
)
def test_seed_id_changes_with_content(other):
    base = seed_record(CLASSIFICATION, {"text": ZH}, "card_lost")
    assert seed_record(other["task"], other["fields"], other["label"]).id != base.id


def test_pool_rows_get_their_own_prefix():
    seed = seed_record(CLASSIFICATION, {"text": ZH}, None)
    pool = seed_record(CLASSIFICATION, {"text": ZH}, None, origin=POOL)
    assert seed.id.startswith("s-") and pool.id.startswith("p-")
    assert seed.id[2:] == pool.id[2:]
    assert pool.origin == POOL and seed.origin == SEED


def test_derive_sets_lineage_and_inherits_the_rest():
    parent = seed_record(
        INSTRUCTION,
        {
            "instruction": "解释什么是年化收益率。",
            "input": "",
            "output": "年化收益率是把收益换算成一年的比率。",
        },
        None,
        source={"file": "seeds.jsonl", "line": 3},
    )
    lin = _lineage()
    child = parent.derive("instruction", "请解释什么是年化收益率。", method="swap", lineage=lin, index=0)
    assert child.parent_ids == (parent.id,)
    assert child.origin == AUGMENTED
    assert child.method == "swap"
    assert child.lineage == lin
    assert child.task == INSTRUCTION
    assert child.fields == {**parent.fields, "instruction": "请解释什么是年化收益率。"}
    assert parent.fields["instruction"] == "解释什么是年化收益率。"  # the parent is not mutated
    assert child.source is None and child.rejection is None and child.scores == {}
    assert child.id.startswith("a-") and child.id != parent.id

    again = parent.derive("instruction", "请解释什么是年化收益率。", method="swap", lineage=lin, index=0)
    assert again.id == child.id
    # every ingredient of a candidate changes its id
    variants = [
        parent.derive("instruction", "请解释年化收益率。", method="swap", lineage=lin, index=0),
        parent.derive("instruction", "请解释什么是年化收益率。", method="delete", lineage=lin, index=0),
        parent.derive("instruction", "请解释什么是年化收益率。", method="swap", lineage=lin, index=1),
        parent.derive("instruction", "请解释什么是年化收益率。", method="swap", lineage=_lineage(8), index=0),
    ]
    assert len({v.id for v in variants} | {child.id}) == 5


def test_derive_keeps_the_label_and_accepts_another_origin():
    parent = seed_record(CLASSIFICATION, {"text": EN}, "cardiac")
    child = parent.derive(
        "text",
        "Chest pain radiating to arm.",
        method="delete",
        lineage=_lineage(),
        index=3,
        origin="pseudo-labelled",
    )
    assert child.label == "cardiac" and child.origin == "pseudo-labelled"
    assert child.to_dict()["parent_ids"] == [parent.id]


def test_to_dict_puts_task_fields_at_top_level():
    parent = seed_record(CLASSIFICATION, {"text": ZH}, "card_lost", source={"file": "s.jsonl", "line": 2})
    row = parent.to_dict()
    assert row["text"] == ZH and row["label"] == "card_lost"
    assert row["origin"] == "seed" and row["parent_ids"] == [] and row["source"]["line"] == 2
    assert "rejected_by" not in row
    instr = seed_record(INSTRUCTION, {"instruction": "a", "input": "", "output": "b"}, None)
    assert "label" not in instr.to_dict()  # instruction rows have no label column


def test_round_trip_seed_candidate_and_rejected():
    seed = seed_record(
        CLASSIFICATION, {"text": ZH}, "card_lost", source={"file": "s.jsonl", "line": 4, "id": "zb-9"}
    )
    cand = seed.derive("text", "我银行卡丢了，请帮我挂失", method="delete", lineage=_lineage(), index=1)
    scored = cand.with_scores(quality=0.9231, similarity=0.97).with_scores(dedup=0.5)
    assert scored.scores == {"quality": 0.9231, "similarity": 0.97, "dedup": 0.5}
    rejected = scored.rejected(Rejection("similarity", "below_min", "0.507 < 0.6 (cosine 0.952)"))
    instr = seed_record(
        INSTRUCTION, {"instruction": "总结下文。", "input": "合同第三条。", "output": "略"}, None
    )
    for rec in (seed, cand, scored, rejected, instr):
        back = _json_round_trip(rec)
        assert back == rec
        assert back.to_dict() == rec.to_dict()

    row = rejected.to_dict()
    assert (row["rejected_by"], row["reason"], row["reason_detail"]) == (
        "similarity",
        "below_min",
        "0.507 < 0.6 (cosine 0.952)",
    )
    back = Record.from_dict(row)
    assert back.rejection == Rejection("similarity", "below_min", "0.507 < 0.6 (cosine 0.952)")
    assert str(back.rejection) == "similarity:below_min (0.507 < 0.6 (cosine 0.952))"
    assert back.parent_ids == (seed.id,) and isinstance(back.parent_ids, tuple)
