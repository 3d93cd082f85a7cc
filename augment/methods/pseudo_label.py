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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..classifiers import KINDS, EmbeddingClassifier
from ..errors import ConfigError
from ..record import CLASSIFICATION, PSEUDO_LABELLED, Lineage, Record, Rejection
from .base import PoolLabeller, register_method

if TYPE_CHECKING:
    from ..context import RunContext

logger = logging.getLogger(__name__)

FIXED_THRESHOLD = 0.8  # the gate when no recipe chooses (no dev file and too few seeds to cross-validate)

@dataclass
class PseudoLabelConfig:
    """How pool rows get labels (see the module doc)."""

    classifiers: list[str] = field(
        default_factory=lambda: ["logreg", "prototype", "knn"],
        metadata={"help": f"embedding classifiers that vote: any of {', '.join(KINDS)}"},
    )
    threshold: float | str | None = field(
        default="auto",
        metadata={
            "help": "auto: the recipe chooses how much of the pool to keep (else a 0.8 gate); "
            "a number in [0, 1]: a fixed confidence gate"
        },
    )
    agree: int = field(default=2, metadata={"help": "at least this many classifiers predict the label"})
    per_class: int | None = field(
        default=None, metadata={"help": "rows accepted per label per round (default: median seeds per label)"}
    )
    rounds: int = field(default=2, metadata={"help": "self-training rounds (with a fixed gate)"})
    k: int = field(default=5, metadata={"help": "neighbours of the kNN classifier"})

    def __post_init__(self) -> None:
        for kind in self.classifiers:
            if kind not in KINDS:
                raise ConfigError(f"classifiers: {kind!r} is not one of {KINDS}")
        t = self.threshold
        if t is not None and t != "auto":
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
                raise ConfigError(f"threshold must be 'auto' or a number in [0, 1], got {t!r}")
            self.threshold = float(t)
        if not 1 <= self.agree <= len(self.classifiers):
            raise ConfigError(f"agree must be between 1 and {len(self.classifiers)}, got {self.agree}")
        if self.per_class is not None and self.per_class < 1:
            raise ConfigError(f"per_class must be >= 1, got {self.per_class}")
        if self.rounds < 1 or self.k < 1:
            raise ConfigError(f"rounds and k must be >= 1, got {self.rounds} and {self.k}")


@register_method("pseudo_label", PseudoLabelConfig, summary="labels rows of the unlabelled pool (--unlabeled)")
class PseudoLabelMethod(PoolLabeller):
    """Labels pool rows (the pipeline calls :meth:`label_pool`)."""

    backend = "embedding classifiers (numpy, scikit-learn)"

    def __init__(self, name: str, config: PseudoLabelConfig) -> None:
        super().__init__(name, config)
        self.classifiers = list(config.classifiers)
        self.threshold: float | str | None = config.threshold
        self.agree = config.agree
        self.per_class = config.per_class
        self.rounds = config.rounds
        self.k = config.k

    def params(self) -> dict[str, Any]:
        return {
            "classifiers": self.classifiers,
            "threshold": self.threshold,
            "agree": self.agree,
            "per_class": self.per_class,
            "rounds": self.rounds,
            "k": self.k,
        }

    def prepare(self, ctx: RunContext) -> None:
        seeds = ctx.seeds
        if not ctx.pool and not ctx.planning:
            raise ConfigError(f"method {self.name!r} labels an unlabelled pool: pass one with --unlabeled")
        self.resolve_threshold(ctx.recipe_chooses)
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
                params={**base, "round": rnd, "confidence": round(conf, 4), "votes": votes},
                random_seed=run_seed,
                field=field,
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


