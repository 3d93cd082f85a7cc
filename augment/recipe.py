"""Choose what to keep by the downstream score of a fast proxy learner.

Filters judge candidates one by one; whether a *set* of rows helps a model is a different question,
and only a model can answer it. After the filters, the recipe trains the proxy learner — logistic
regression on the run's frozen sentence embeddings, the same family as ``augment finetune --method
embedding`` — on the seeds plus a candidate selection, and scores it on the dev file (``--dev``) or,
without one, by stratified k-fold cross-validation on the seeds. It decides:

1. **how much of the pseudo-labelled pool to keep**: the most confident fraction ``q`` of the rows
   predicted as each class, ``q`` in :data:`FRACTIONS` (``0`` = none), jointly with the proxy's
   regularisation ``C`` in :data:`C_GRID`;
2. **whether each augmentation method's rows hurt**: methods are tried one at a time (forward
   selection) and dropped when the proxy's accuracy with their rows is lower than without (by more
   than ``min_gain``, when set); a tie keeps them, since rows that sit next to their parents rarely
   move a decision at a small dev set's resolution.

A score is (accuracy, then lower log-loss). Under cross-validation the held-out seeds' descendants
are removed from each fold's training rows, and the pool is labelled again by a labeller that never
saw the held-out seeds, so the estimate is not flattered by leakage. Rows the recipe does not keep
become rejected rows with stage ``recipe`` and the numbers behind the decision; the choice and every
score go into the manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .classifiers import fit_logreg
from .record import PSEUDO_LABELLED, Record, Rejection

logger = logging.getLogger(__name__)

FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.4, 1.0)
C_GRID = (0.1, 1.0, 10.0, 100.0)
# pool rows the proxy learner trains on, at most, per fit: a 100,000-row pool would otherwise mean 120
# fits on 100,000 vectors each. A larger selection is scored on an even random sample of it (the
# fraction's choice needs its shape, not every row); the final selection still keeps every row of the
# chosen fraction. The benchmark pools (up to 13,000 rows) are below it: their choices are unchanged.
PROXY_MAX_ROWS = 20_000
MODES = ("auto", "dev", "cv", "off")

Labeller = Callable[[np.ndarray, list[str], np.ndarray], tuple[list[str], np.ndarray]]


@dataclass(frozen=True, order=True)
class Score:
    """Ordered so that ``max`` picks the best: higher accuracy, then lower log-loss, then simpler."""

    accuracy: float
    neg_log_loss: float
    simplicity: float = 0.0  # e.g. -C or -q: ties go to the smaller value

    def to_dict(self) -> dict[str, float]:
        return {"accuracy": round(self.accuracy, 4), "log_loss": round(-self.neg_log_loss, 4)}


@dataclass
class Fold:
    train: np.ndarray  # indices into the seeds
    x: np.ndarray  # validation vectors
    y: list[str]  # validation labels
    held_out_ids: frozenset[str] = frozenset()


@dataclass
class RecipeResult:
    kept: list[Record]
    rejected: list[Record]
    info: dict[str, Any] = field(default_factory=dict)


def _fit_lr(x: np.ndarray, y: Sequence[str], c: float, weights: np.ndarray | None, seed: int):
    return fit_logreg(x, list(y), c, weights=weights, seed=seed)


def _log_loss(lr, x: np.ndarray, y: Sequence[str]) -> float:
    proba = lr.predict_proba(x)
    index = {c: i for i, c in enumerate(lr.classes_)}
    p = np.array([proba[i, index[lbl]] if lbl in index else 0.0 for i, lbl in enumerate(y)])
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


class ProxyScorer:
    """Scores a training selection with the proxy learner on dev, or by cross-validation on seeds."""

    def __init__(
        self,
        seed_x: np.ndarray,
        seeds: Sequence[Record],
        *,
        dev_x: np.ndarray | None = None,
        dev_y: Sequence[str] | None = None,
        folds: int = 5,
        seed: int = 0,
    ) -> None:
        self.seed_x = seed_x
        self.seeds = list(seeds)
        self.seed_y = [s.label or "" for s in seeds]
        self.seed = seed
        if dev_x is not None and dev_y is not None and len(dev_y):
            self.mode = "dev"
            self.folds = [Fold(np.arange(len(seeds)), dev_x, list(dev_y))]
        else:
            from sklearn.model_selection import StratifiedKFold

            self.mode = "cv"
            k = min(folds, *_label_counts(self.seed_y).values())
            skf = StratifiedKFold(k, shuffle=True, random_state=seed)
            self.folds = [
                Fold(tr, seed_x[te], [self.seed_y[i] for i in te], frozenset(self.seeds[i].id for i in te))
                for tr, te in skf.split(seed_x, self.seed_y)
            ]

    def score(
        self, extra: Callable[[int, Fold], tuple[np.ndarray, list[str]]] | None, c: float
    ) -> Score:
        """Proxy score of seeds (each fold's training part) + ``extra(fold_index, fold)`` rows."""
        correct = 0
        total = 0
        loss = 0.0
        for i, fold in enumerate(self.folds):
            x = self.seed_x[fold.train]
            y = [self.seed_y[j] for j in fold.train]
            if extra is not None:
                ex, ey = extra(i, fold)
                if len(ey):
                    x = np.concatenate([x, ex])
                    y = y + list(ey)
            if len(set(y)) < 2:
                return Score(0.0, -np.inf)
            lr = _fit_lr(x, y, c, None, self.seed)
            pred = lr.predict(fold.x)
            correct += int(np.sum(pred == np.array(fold.y, dtype=object)))
            total += len(fold.y)
            loss += _log_loss(lr, fold.x, fold.y) * len(fold.y)
        # log-loss breaks accuracy ties: rounded, so the choice does not flip on a float sum's last bits
        return Score(correct / total, round(-loss / total, 6), -c)

    def best_c(self, extra) -> tuple[float, Score, dict[str, dict[str, float]]]:
        scores = {c: self.score(extra, c) for c in C_GRID}
        c = max(scores, key=lambda k: scores[k])
        return c, scores[c], {str(k): v.to_dict() for k, v in scores.items()}


def _label_counts(labels: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for lbl in labels:
        out[lbl] = out.get(lbl, 0) + 1
    return out


def top_fraction(labels: Sequence[str], conf: np.ndarray, q: float) -> np.ndarray:
    """Indices of the most confident ``q`` of the rows predicted as each class (at least one row per
    class when ``q > 0``), in a stable order."""
    if q <= 0 or not len(labels):
        return np.zeros(0, dtype=int)
    labels = np.array(labels, dtype=object)
    keep: list[int] = []
    for c in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == c)
        order = idx[np.argsort(-conf[idx], kind="stable")]
        n = max(1, int(round(q * len(idx))))
        keep.extend(order[:n].tolist())
    return np.array(sorted(keep), dtype=int)


def usable(mode: str, seeds: Sequence[Record], has_dev: bool, folds: int) -> tuple[str, str]:
    """The mode the recipe runs in ("dev", "cv" or "off") and why."""
    if mode == "off":
        return "off", "turned off (recipe.mode: off)"
    if has_dev and mode in ("auto", "dev"):
        return "dev", "scored on the dev file"
    if mode == "dev":
        return "off", "recipe.mode is dev but no dev file was given (--dev)"
    counts = _label_counts([s.label or "" for s in seeds])
    if min(counts.values()) < 2 or folds < 2:
        return "off", "cross-validation needs at least 2 seeds of every label; pass --dev FILE"
    return "cv", f"{min(folds, min(counts.values()))}-fold cross-validation on the seeds (no --dev file)"


def choose(
    seeds: Sequence[Record],
    kept: Sequence[Record],
    embed: Callable[[list[str]], np.ndarray],
    *,
    field_name: str,
    mode: str,
    dev: Sequence[Record] = (),
    folds: int = 5,
    seed: int = 0,
    relabel: Labeller | None = None,
    min_gain: float = 0.0,
) -> RecipeResult:
    """Select the rows that help the proxy learner (see the module docstring).

    ``kept`` are the candidates that passed the filters; pseudo-labelled rows carry their labeller
    confidence in ``scores["confidence"]``. ``relabel(train_x, train_y, pool_x)`` re-labels the pool
    for a cross-validation fold (the pseudo-labeller, fitted without the fold's held-out seeds).
    """
    text = lambda r: r.fields.get(field_name, "")  # noqa: E731
    seed_x = embed([text(s) for s in seeds])
    dev_x = embed([text(d) for d in dev]) if mode == "dev" else None
    scorer = ProxyScorer(
        seed_x, seeds, dev_x=dev_x, dev_y=[d.label or "" for d in dev] if mode == "dev" else None,
        folds=folds, seed=seed,
    )
    pseudo = [r for r in kept if r.origin == PSEUDO_LABELLED]
    others: dict[str, list[Record]] = {}
    for r in kept:
        if r.origin != PSEUDO_LABELLED:
            others.setdefault(r.method or "?", []).append(r)
    pool_x = embed([text(r) for r in pseudo]) if pseudo else np.zeros((0, seed_x.shape[1]), np.float32)
    pool_y = [r.label or "" for r in pseudo]
    pool_conf = np.array([float(r.scores.get("confidence", 0.0)) for r in pseudo])
    method_x = {m: embed([text(r) for r in rows]) for m, rows in others.items()}

    # the pool's labels per fold: dev mode uses the run's labels; cross-validation relabels the
    # pool with a labeller that did not see the fold's held-out seeds
    fold_labels: dict[int, tuple[list[str], np.ndarray]] = {}

    def labels_for(i: int, fold: Fold) -> tuple[list[str], np.ndarray]:
        if scorer.mode == "dev" or relabel is None:
            return pool_y, pool_conf
        if i not in fold_labels:
            fold_labels[i] = relabel(
                seed_x[fold.train], [scorer.seed_y[j] for j in fold.train], pool_x
            )
        return fold_labels[i]

    def method_rows(m: str, fold: Fold) -> tuple[np.ndarray, list[str]]:
        rows = others[m]
        ok = [j for j, r in enumerate(rows) if not (set(r.parent_ids) & fold.held_out_ids)]
        return method_x[m][ok], [rows[j].label or "" for j in ok]

    def extra_for(q: float, methods: Sequence[str]):
        def extra(i: int, fold: Fold) -> tuple[np.ndarray, list[str]]:
            xs, ys = [], []
            if q > 0 and len(pool_y):
                lab, conf = labels_for(i, fold)
                idx = top_fraction(lab, conf, q)
                if len(idx) > PROXY_MAX_ROWS:
                    rng = np.random.default_rng([seed, i])
                    idx = np.sort(rng.choice(idx, PROXY_MAX_ROWS, replace=False))
                xs.append(pool_x[idx])
                ys.extend(lab[j] for j in idx)
            for m in methods:
                mx, my = method_rows(m, fold)
                xs.append(mx)
                ys.extend(my)
            if not xs:
                return np.zeros((0, seed_x.shape[1]), np.float32), []
            return np.concatenate(xs), ys

        return extra

    info: dict[str, Any] = {"mode": scorer.mode, "folds": len(scorer.folds), "c_grid": list(C_GRID)}
    if len(pool_y) > PROXY_MAX_ROWS:
        info["proxy_max_pool_rows"] = PROXY_MAX_ROWS
    c0, base, grid0 = scorer.best_c(None)
    info["seed_only"] = {"C": c0, **base.to_dict(), "by_C": grid0}

    # 1. the pseudo-label fraction q, jointly with C
    q_best, c_best, s_best = 0.0, c0, base
    if pseudo:
        by_q: dict[str, Any] = {"0": {"C": c0, **base.to_dict()}}
        for q in FRACTIONS[1:]:
            c, s, _ = scorer.best_c(extra_for(q, []))
            by_q[str(q)] = {"C": c, **s.to_dict()}
            if (s.accuracy, s.neg_log_loss) > (s_best.accuracy + min_gain, s_best.neg_log_loss):
                q_best, c_best, s_best = q, c, s
        info["pseudo_label"] = {"fraction": q_best, "by_fraction": by_q}

    # 2. augmentation methods, forward selection: each must beat the selection without it
    chosen: list[str] = []
    method_info: dict[str, Any] = {}
    for m in sorted(others):
        c, s, _ = scorer.best_c(extra_for(q_best, [*chosen, m]))
        # do no harm: a method stays unless the proxy's accuracy drops with its rows (a tie keeps it:
        # at a small dev set's resolution, rows next to their parents rarely move a decision)
        helps = s.accuracy >= s_best.accuracy + min_gain
        method_info[m] = {
            "rows": len(others[m]),
            "with": {"C": c, **s.to_dict()},
            "without": {"C": c_best, **s_best.to_dict()},
            "kept": helps,
        }
        if helps:
            chosen.append(m)
            c_best, s_best = c, s
    info["methods"] = method_info
    info["chosen"] = {"pseudo_label_fraction": q_best if pseudo else None, "methods": chosen, "C": c_best}
    info["score"] = {"seed_only": base.to_dict(), "chosen": s_best.to_dict()}

    # 3. the final selection, with the run's own pool labels
    keep_pool = set(top_fraction(pool_y, pool_conf, q_best).tolist()) if pseudo else set()
    out_kept: list[Record] = []
    out_rej: list[Record] = []
    n_pred = _label_counts(pool_y)
    pseudo_pos = {id(r): j for j, r in enumerate(pseudo)}
    for r in kept:
        if r.origin == PSEUDO_LABELLED:
            j = pseudo_pos[id(r)]
            if j in keep_pool:
                out_kept.append(r)
            else:
                detail = (
                    f"not in the top {q_best:g} of the {n_pred.get(r.label or '', 0)} rows predicted "
                    f"{r.label!r} (confidence {pool_conf[j]:.3f}); {scorer.mode} accuracy "
                    f"{s_best.accuracy:.3f} at fraction {q_best:g}"
                )
                out_rej.append(r.rejected(Rejection("recipe", "below_fraction", detail)))
        elif (r.method or "?") in chosen:
            out_kept.append(r)
        else:
            mi = method_info[r.method or "?"]
            detail = (
                f"{r.method} rows lower the proxy's {scorer.mode} accuracy: "
                f"{mi['with']['accuracy']:.3f} with, {mi['without']['accuracy']:.3f} without"
            )
            out_rej.append(r.rejected(Rejection("recipe", "lowers_score", detail)))
    logger.info(
        "recipe (%s): seed-only %.3f -> %.3f; pseudo-label fraction %s; methods kept: %s",
        scorer.mode, base.accuracy, s_best.accuracy, q_best if pseudo else "-", ", ".join(chosen) or "none",
    )
    return RecipeResult(out_kept, out_rej, info)
