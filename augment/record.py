"""Record: one row flowing through the engine, with its lineage.

A record holds the row's task fields (``text``/``text_pair`` for classification,
``instruction``/``input``/``output`` for instruction data), its label, and where it came from:
origin, method, parent ids, backend, model and revision, the method's parameters, the random seed,
and the scores of the filters it passed. Rejected candidates also carry the first reason they failed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

CLASSIFICATION = "classification"
INSTRUCTION = "instruction"
TASK_FIELDS: dict[str, tuple[str, ...]] = {
    CLASSIFICATION: ("text", "text_pair"),
    INSTRUCTION: ("instruction", "input", "output"),
}

SEED = "seed"
AUGMENTED = "augmented"
PSEUDO_LABELLED = "pseudo-labelled"
POOL = "pool"


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short sha1 over a canonical JSON dump of ``parts``: equal inputs give equal ids on any run."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class Lineage:
    """How a generated record was made. Seeds have an empty lineage."""

    backend: str | None = None  # "nlpaug", "transformers", "ctranslate2", "llama.cpp", ...
    model: str | None = None  # hub id or local path
    model_revision: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    random_seed: int | None = None
    field: str | None = None  # which field of the row the method wrote
    relation: str = "rewrite"  # to the parents: "rewrite", or "demo" (they were demonstrations)

    def keyed_params(self) -> dict[str, Any]:
        """What a candidate id hashes: the params with the field (and a non-rewrite relation)."""
        keyed = dict(self.params)
        if self.field is not None:
            keyed["field"] = self.field
        if self.relation != "rewrite":
            keyed["relation"] = self.relation
        return keyed


@dataclass(frozen=True)
class Rejection:
    """The first filter (or generation step) a candidate failed, and why."""

    stage: str  # filter name, or "generate"
    code: str  # short machine-readable reason, e.g. "below_min"
    detail: str  # human-readable, with the numbers

    def __str__(self) -> str:
        return f"{self.stage}:{self.code} ({self.detail})"


@dataclass(frozen=True)
class Record:
    """One row with its lineage. Build seeds with :func:`seed_record`, candidates with :meth:`derive`."""

    id: str
    task: str
    fields: dict[str, str]
    label: str | None = None
    origin: str = SEED
    method: str | None = None
    parent_ids: tuple[str, ...] = ()
    lineage: Lineage = field(default_factory=Lineage)
    scores: dict[str, float] = field(default_factory=dict)
    source: dict[str, Any] | None = None  # for seeds/pool rows: file, row, original id
    rejection: Rejection | None = None

    def derive(
        self,
        field_name: str,
        new_text: str,
        *,
        method: str,
        lineage: Lineage,
        index: int,
        origin: str = AUGMENTED,
        label: str | None = None,
    ) -> Record:
        """A new candidate whose ``field_name`` is ``new_text`` (and ``label``, if given); everything
        else is inherited."""
        new_fields = dict(self.fields)
        new_fields[field_name] = new_text
        new_label = self.label if label is None else label
        rid = "a-" + stable_hash(
            self.id, method, lineage.keyed_params(), lineage.random_seed, index, new_text, new_label
        )
        return Record(
            id=rid,
            task=self.task,
            fields=new_fields,
            label=new_label,
            origin=origin,
            method=method,
            parent_ids=(self.id,),
            lineage=lineage,
        )

    @property
    def rewrites_parent(self) -> bool:
        """True when the row is a rewrite of its parent (paraphrase, typo, ...); False when the parents
        were only demonstrations in a prompt (self-instruct), so parent-based checks do not apply."""
        return self.lineage.relation == "rewrite"

    def with_scores(self, **scores: float) -> Record:
        return replace(self, scores={**self.scores, **scores})

    def rejected(self, rejection: Rejection) -> Record:
        return replace(self, rejection=rejection)

    def to_dict(self) -> dict[str, Any]:
        """The JSONL row: task fields at top level (ready to train on), then the lineage."""
        row: dict[str, Any] = {"id": self.id}
        row.update(self.fields)
        if self.task == CLASSIFICATION:
            row["label"] = self.label
        row["task"] = self.task
        row["origin"] = self.origin
        row["method"] = self.method
        row["parent_ids"] = list(self.parent_ids)
        row["backend"] = self.lineage.backend
        row["model"] = self.lineage.model
        row["model_revision"] = self.lineage.model_revision
        row["params"] = self.lineage.params
        row["random_seed"] = self.lineage.random_seed
        if self.lineage.field is not None:
            row["field"] = self.lineage.field
        if self.lineage.relation != "rewrite":
            row["relation"] = self.lineage.relation
        row["scores"] = self.scores
        if self.source is not None:
            row["source"] = self.source
        if self.rejection is not None:
            row["rejected_by"] = self.rejection.stage
            row["reason"] = self.rejection.code
            row["reason_detail"] = self.rejection.detail
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Record:
        task = row["task"]
        names = TASK_FIELDS[task]
        rejection = None
        params = dict(row.get("params") or {})
        field_name = row.get("field") or params.pop("field", None)  # files from before 0.x kept them in params
        relation = row.get("relation") or params.pop("relation", "rewrite")
        if row.get("rejected_by"):
            rejection = Rejection(row["rejected_by"], row["reason"], row.get("reason_detail", ""))
        return cls(
            id=row["id"],
            task=task,
            fields={k: row[k] for k in names if k in row},
            label=row.get("label"),
            origin=row["origin"],
            method=row.get("method"),
            parent_ids=tuple(row.get("parent_ids") or ()),
            lineage=Lineage(
                backend=row.get("backend"),
                model=row.get("model"),
                model_revision=row.get("model_revision"),
                params=params,
                random_seed=row.get("random_seed"),
                field=field_name,
                relation=relation,
            ),
            scores=row.get("scores") or {},
            source=row.get("source"),
            rejection=rejection,
        )


def seed_record(
    task: str,
    fields: dict[str, str],
    label: str | None,
    *,
    origin: str = SEED,
    source: dict[str, Any] | None = None,
) -> Record:
    """A seed (or pool) record whose id is a hash of its content, so reruns reproduce it."""
    prefix = "s-" if origin == SEED else "p-"
    rid = prefix + stable_hash(task, fields, label)
    return Record(id=rid, task=task, fields=fields, label=label, origin=origin, source=source)
