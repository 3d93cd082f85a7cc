"""Pseudo-labelling of an unlabelled pool with classifiers on sentence embeddings (self-training).

Each round fits the chosen classifiers (kNN, class prototypes, logistic regression; see
``augment/classifiers.py``) on the seeds plus the pseudo-labels accepted so far, scores the rest of
the pool, and accepts a row when the classifiers' averaged calibrated confidence reaches the
threshold and at least ``agree`` of them predict the same label. At most ``per_class`` rows per
label are accepted per round, most confident first, so no class swamps the set. Rows never
accepted come back as rejected candidates with the reason (low confidence, disagreement, quota).
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..classifiers import KINDS, EmbeddingClassifier
from ..errors import ConfigError
from ..record import CLASSIFICATION, PSEUDO_LABELLED, Lineage, Record, Rejection
from .base import register

logger = logging.getLogger(__name__)

FIXED_THRESHOLD = 0.8  # the gate when no recipe chooses (no dev file and too few seeds to cross-validate)

DEFAULTS: dict[str, Any] = {
    "classifiers": ["logreg", "prototype", "knn"],
    # "auto": the recipe (augment/recipe.py) chooses how much of the pool to keep by the proxy's dev /
    # cross-validation score; a number: a fixed confidence gate. None (set by the pipeline): no gate.
    "threshold": "auto",
    "agree": 2,
    "per_class": None,  # default: the median number of seeds per label
    "rounds": 2,
    "k": 5,
}


class PseudoLabelMethod:
    """Labels pool rows; ``source = "pool"`` tells the pipeline to call :meth:`label_pool`."""

    source = "pool"
    backend = "embedding classifiers (numpy, scikit-learn)"

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        # the lexical knobs (aug_p, ...) are passed to every method; they mean nothing here
        params = {k: v for k, v in params.items() if k not in ("aug_p", "aug_min", "aug_max")}
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"methods.params.{name}: unknown keys {sorted(unknown)}")
        p = {**DEFAULTS, **params}
        self.name = name
        self.classifiers = list(p["classifiers"])
        for kind in self.classifiers:
            if kind not in KINDS:
                raise ConfigError(f"methods.params.{name}.classifiers: {kind!r} is not one of {KINDS}")
        threshold = p["threshold"]
        if threshold is not None and threshold != "auto":
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
                raise ConfigError(
                    f"methods.params.{name}.threshold must be 'auto' or a number in [0, 1], got {threshold!r}"
                )
            threshold = float(threshold)
        self.threshold: float | str | None = threshold
        self.agree = int(p["agree"])
        if not 1 <= self.agree <= len(self.classifiers):
            raise ConfigError(
                f"methods.params.{name}.agree must be between 1 and {len(self.classifiers)}, got {self.agree}"
            )
        self.per_class = p["per_class"]
        self.rounds = int(p["rounds"])
        self.k = int(p["k"])
        self.model: str | None = None
        self.model_revision: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "classifiers": self.classifiers,
            "threshold": self.threshold,
            "agree": self.agree,
            "per_class": self.per_class,
            "rounds": self.rounds,
            "k": self.k,
        }

    def setup(self, seeds: Sequence[Record], language: str) -> None:
        if not seeds or seeds[0].task != CLASSIFICATION:
            raise ConfigError("pseudo_label works on classification seeds (they carry the labels)")
        counts = Counter(s.label for s in seeds)
        if len(counts) < 2:
            raise ConfigError("pseudo_label needs at least two labels in the seeds")
        if self.per_class is None:
            self.per_class = max(1, int(statistics.median(counts.values())))

    @property
    def gated(self) -> bool:
        """False when every pool row becomes a labelled candidate and the recipe chooses among them."""
        return self.threshold is not None

    def resolve_threshold(self, recipe_chooses: bool) -> None:
        """``auto`` becomes no gate when the recipe chooses, else the fixed gate."""
        if self.threshold == "auto":
            self.threshold = None if recipe_chooses else FIXED_THRESHOLD

    def relabeller(self, run_seed: int):
        """``(train_x, train_y, pool_x) -> (labels, confidence)``: the same classifiers, refitted (the
        recipe uses it to label the pool without a cross-validation fold's held-out seeds)."""

        def relabel(train_x: np.ndarray, train_y: list[str], pool_x: np.ndarray):
            labels, conf, _ = score_pool(self.classifiers, self.k, run_seed, train_x, train_y, pool_x)
            return labels, conf

        return relabel

    def generate(self, batch, field, n, run_seed):  # pragma: no cover - pool methods use label_pool
        raise TypeError("pseudo_label reads the unlabelled pool; the pipeline calls label_pool()")

    def label_pool(
        self,
        pool: Sequence[Record],
        seeds: Sequence[Record],
        field: str,
        embedder: Any,
        run_seed: int,
    ) -> list[Record]:
        """Candidates for every pool row: accepted ones labelled, the rest rejected with a reason."""
        self.resolve_threshold(False)  # not resolved by a pipeline: the fixed gate
        self.model = embedder.model_id
        self.model_revision = embedder.revision
        seed_x = embedder.encode([s.fields[field] for s in seeds])
        pool_x = embedder.encode([r.fields["text"] for r in pool])
        train_x, train_y = seed_x, [s.label for s in seeds]
        remaining = np.arange(len(pool))
        accepted: dict[int, tuple[str, float, int, int]] = {}  # pool index -> label, conf, votes, round
        last: dict[int, tuple[str, float, int]] = {}
        for rnd in range(1, self.rounds + 1):
            if len(remaining) == 0:
                break
            labels, conf, votes = score_pool(
                self.classifiers, self.k, run_seed, train_x, train_y, pool_x[remaining]
            )
            conf = np.round(conf, 6)  # the gate and the order: not on the last bits of a float sum
            taken_per_class: Counter = Counter()
            order = np.argsort(-conf, kind="stable")
            newly = []
            for j in order:
                i = int(remaining[j])
                label = labels[j]
                last[i] = (label, float(conf[j]), int(votes[j]))
                if not self.gated:  # the recipe chooses later: every row is a labelled candidate
                    accepted[i] = (label, float(conf[j]), int(votes[j]), rnd)
                    continue
                if conf[j] < self.threshold or votes[j] < self.agree:
                    continue
                if taken_per_class[label] >= self.per_class:
                    continue
                taken_per_class[label] += 1
                accepted[i] = (label, float(conf[j]), int(votes[j]), rnd)
                newly.append(i)
            if not self.gated:
                break  # one labelling pass; the recipe picks the fraction to keep
            logger.info("pseudo_label round %d: accepted %d of %d", rnd, len(newly), len(remaining))
            if not newly:
                break
            train_x = np.concatenate([train_x, pool_x[newly]])
            train_y = train_y + [accepted[i][0] for i in newly]
            remaining = np.array([i for i in remaining if i not in accepted], dtype=int)

        out: list[Record] = []
        base = self.params()
        for i, row in enumerate(pool):
            if i in accepted:
                label, conf, votes, rnd = accepted[i]
            else:
                label, conf, votes = last.get(i, (None, 0.0, 0))
                rnd = None
            lineage = Lineage(
                backend=self.backend,
                model=self.model,
                model_revision=self.model_revision,
                params={**base, "field": field, "round": rnd, "confidence": round(conf, 4), "votes": votes},
                random_seed=run_seed,
            )
            seedlike = Record(
                id=row.id,
                task=CLASSIFICATION,
                fields={field: row.fields["text"]},
                label=None,
                origin=row.origin,
                source=row.source,
            )
            cand = seedlike.derive(
                field,
                row.fields["text"],
                method=self.name,
                lineage=lineage,
                index=0,
                origin=PSEUDO_LABELLED,
                label=label or "",
            )
            cand = cand.with_scores(confidence=round(conf, 4))
            if i not in accepted:
                if conf < self.threshold:
                    why = Rejection("pseudo_label", "low_confidence", f"{conf:.3f} < {self.threshold}")
                elif votes < self.agree:
                    why = Rejection(
                        "pseudo_label",
                        "disagreement",
                        f"{votes} of {len(self.classifiers)} < {self.agree} agree",
                    )
                else:
                    why = Rejection(
                        "pseudo_label", "over_quota", f"{label} reached {self.per_class} per round"
                    )
                cand = cand.rejected(why)
            out.append(cand)
        return out


def score_pool(
    classifiers: Sequence[str],
    k: int,
    run_seed: int,
    train_x: np.ndarray,
    train_y: Sequence[str],
    pool_x: np.ndarray,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each pool row's label, averaged calibrated confidence, and how many classifiers agree."""
    models = [EmbeddingClassifier(kind, k=k, seed=run_seed).fit(train_x, list(train_y)) for kind in classifiers]
    classes = models[0].classes
    probas = [m.predict_proba(pool_x) for m in models]
    mean = np.mean(probas, axis=0)
    best = mean.argmax(axis=1)
    conf = mean[np.arange(len(best)), best]
    votes = np.sum([p.argmax(axis=1) == best for p in probas], axis=0)
    return [classes[b] for b in best], conf, votes


register("pseudo_label", PseudoLabelMethod)
