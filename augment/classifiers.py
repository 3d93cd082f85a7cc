"""Classifiers on sentence embeddings, trained on the seeds, with calibrated probabilities.

Three kinds, each a few lines on top of numpy / scikit-learn:

* ``knn`` — similarity-weighted vote of the k nearest labelled rows;
* ``prototype`` — cosine to each class's mean embedding;
* ``logreg`` — a logistic-regression head (SetFit's head without its pair training).

Raw scores of these live on very different scales (and e5's compressed cosines make it worse), so
each classifier is calibrated by temperature scaling: its logits on held-out folds of the seeds are
divided by the temperature that minimises their negative log-likelihood. Calibrated confidence is
what the pseudo-labeller thresholds and the label-consistency filter's margin are measured on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError

KINDS = ("knn", "prototype", "logreg")
LOGREG_C = 10.0  # the logreg classifier's inverse regularisation (when there is nothing to choose C on)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_logreg(x: np.ndarray, y: Sequence, c: float, *, weights: np.ndarray | None = None, seed: int = 0):
    """scikit-learn's logistic regression with inverse regularisation ``c`` and row ``weights``: the
    one learner behind the ``logreg`` classifier, the recipe's proxy (:mod:`augment.recipe`) and
    ``augment finetune --method embedding`` (:mod:`finetune.embedding`)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    lr.fit(x, y, sample_weight=weights)
    return lr


def logreg_logits(lr, x: np.ndarray) -> np.ndarray:
    """A fitted logistic regression's decision values, one column per class in ``lr.classes_``
    order (scikit-learn keeps one column for binary problems: it becomes -s/2, s/2)."""
    scores = lr.decision_function(x)
    if scores.ndim == 1:
        scores = np.stack([-scores / 2, scores / 2], axis=1)
    return scores


@dataclass
class EmbeddingClassifier:
    kind: str
    k: int = 5
    seed: int = 0
    classes: list[str] = field(default_factory=list)
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"classifier must be one of {', '.join(KINDS)}, got {self.kind!r}")

    # -- raw logits --------------------------------------------------------------------------------
    def _fit_raw(self, x: np.ndarray, y: np.ndarray) -> None:
        self._x, self._y = x, y
        n_classes = len(self.classes)
        if self.kind == "prototype":
            protos = np.stack([x[y == c].mean(axis=0) for c in range(n_classes)])
            self._protos = protos / np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
        elif self.kind == "logreg":
            self._lr = fit_logreg(x, y, LOGREG_C, seed=self.seed)

    def _logits(self, x: np.ndarray, chunk: int = 8192) -> np.ndarray:
        n_classes = len(self.classes)
        if self.kind == "prototype":
            return x @ self._protos.T
        if self.kind == "logreg":
            return logreg_logits(self._lr, x)
        # knn: similarity-weighted votes of the k nearest rows, as log vote shares
        k = min(self.k, len(self._x))
        out = np.empty((len(x), n_classes), np.float64)
        for start in range(0, len(x), chunk):
            sims = x[start : start + chunk] @ self._x.T
            idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            w = np.take_along_axis(sims, idx, axis=1)
            w = np.exp((w - w.max(axis=1, keepdims=True)) * 20.0)  # nearer neighbours count more
            votes = np.zeros((len(idx), n_classes))
            np.add.at(votes, (np.arange(len(idx))[:, None], self._y[idx]), w)
            out[start : start + chunk] = np.log(votes / votes.sum(axis=1, keepdims=True) + 1e-3)
        return out

    # -- public ------------------------------------------------------------------------------------
    def fit(self, x: np.ndarray, labels: Sequence[str]) -> EmbeddingClassifier:
        """Fit on ``x`` (L2-normalised rows) and calibrate the temperature on held-out folds."""
        self.classes = sorted(set(labels))
        if len(self.classes) < 2:
            raise ConfigError("a classifier needs at least two labels in the seeds")
        y = np.array([self.classes.index(label) for label in labels])
        self.temperature = self._calibrate(x, y)
        self._fit_raw(x, y)
        return self

    def _calibrate(self, x: np.ndarray, y: np.ndarray) -> float:
        counts = np.bincount(y, minlength=len(self.classes))
        folds = int(min(5, counts.min()))
        if folds < 2:
            return 1.0
        from sklearn.model_selection import StratifiedKFold

        oof = np.zeros((len(x), len(self.classes)))
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(x, y):
            self._fit_raw(x[train], y[train])
            oof[test] = self._logits(x[test])
        from scipy.optimize import minimize_scalar

        def nll(log_t: float) -> float:
            p = softmax(oof / np.exp(log_t))
            return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())

        res = minimize_scalar(nll, bounds=(-8.0, 5.0), method="bounded")
        return float(np.exp(res.x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self._logits(x) / self.temperature)


def margin_for(proba: np.ndarray, classes: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """P(intended label) minus the highest probability of any other label (in [-1, 1])."""
    idx = np.array([classes.index(lbl) if lbl in classes else -1 for lbl in labels])
    out = np.full(len(labels), -1.0)
    ok = idx >= 0
    if ok.any():
        p = proba[ok]
        own = p[np.arange(len(p)), idx[ok]]
        other = p.copy()
        other[np.arange(len(p)), idx[ok]] = -np.inf
        out[ok] = own - other.max(axis=1)
    return np.round(out, 6)  # compared with a threshold: not on the last bits of a float sum
