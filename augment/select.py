"""`augment select`: which pool rows an expert should label next.

A classifier trained on the labelled rows (the seeds, plus the rows of an ``augment expand`` output
when one is given) on frozen sentence embeddings — the engine's calibrated logistic-regression head
(:class:`augment.classifiers.EmbeddingClassifier`) — scores every pool row. A row is worth labelling
when the classifier is unsure of it (**uncertainty**: ``1 - (p1 - p2)`` for ``margin``, normalised
entropy for ``entropy``), when it is unlike what is labelled or already chosen (**diversity**:
distance to the nearest labelled or chosen row, as k-center greedy measures it), and the choices are
**spread over the predicted classes** (each predicted class gets an equal share of the budget; a class
with too few candidates hands its share on).

Selection, as in diverse mini-batch active learning:

1. the ``candidates x budget`` most uncertain pool rows are the candidates;
2. the budget is shared among the predicted classes of the candidates (``balance``);
3. greedily, the class furthest below its share takes the candidate that maximises
   ``uncertainty * distance ** diversity`` (``diversity = 0``: most uncertain first; larger: more
   k-center; 2 by default), where distance is 1 - cosine to the nearest labelled or already chosen
   row; times ``typicality ** density`` (closeness to the pool's dense regions, as TypiClust measures
   it; ``density`` 1 by default, 0 turns it off), so that outliers and noise are not preferred.

``benchmarks/select_benefit.py`` measures the rule against random rows in a simulated labelling loop
(``benchmarks/RESULTS_select.md``): the defaults are the variant with the best dev-file gain over
random rows (margin, diversity 2, density 1, balance); on the test files they beat random rows by
+1.2 / +0.8 / +0.3 points at N = 20 / 50 / 100 (mean of five sets), short of the +2 target at N = 50.

Everything here is a pure function of embeddings and probabilities except :func:`select_file`,
which reads the files, embeds, and writes the output in one of four formats (:data:`FORMATS`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataError

logger = logging.getLogger(__name__)

MEASURES = ("margin", "entropy")
FORMATS = ("jsonl", "csv", "label-studio", "argilla")
AGENT = "augment select"


@dataclass
class SelectConfig:
    budget: int = field(metadata={"help": "how many pool rows to choose"})
    uncertainty: str = field(default="margin", metadata={"help": "margin or entropy"})
    diversity: float = field(
        default=2.0, metadata={"help": "weight of the distance to labelled/chosen rows (0: uncertainty only)"}
    )
    candidates: float = field(
        default=10.0, metadata={"help": "the most uncertain candidates x budget rows are considered"}
    )
    uncertainty_weight: float = field(
        default=1.0, metadata={"help": "exponent of the uncertainty in the score (0: representative rows only)"}
    )
    density: float = field(
        default=1.0, metadata={"help": "weight of typicality (closeness to the pool's dense regions; 0: off)"}
    )
    balance: bool = field(default=True, metadata={"help": "share the budget among the predicted classes"})
    seed: int = field(default=13, metadata={"help": "random seed (classifier folds, ties)"})

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ConfigError(f"--budget must be >= 1, got {self.budget}")
        if self.uncertainty not in MEASURES:
            raise ConfigError(f"--uncertainty must be one of {', '.join(MEASURES)}, got {self.uncertainty!r}")
        if self.diversity < 0:
            raise ConfigError(f"--diversity must be >= 0, got {self.diversity}")
        if self.uncertainty_weight < 0:
            raise ConfigError(f"uncertainty_weight must be >= 0, got {self.uncertainty_weight}")
        if self.density < 0:
            raise ConfigError(f"--density must be >= 0, got {self.density}")
        if self.candidates < 1:
            raise ConfigError(f"--candidates must be >= 1, got {self.candidates}")


@dataclass
class Choice:
    """One chosen pool row: its index, and why it was chosen."""

    index: int
    rank: int  # order of choice, 1 = first
    predicted: str
    confidence: float
    uncertainty: float
    uncertainty_rank: int  # 1 = the most uncertain pool row
    distance: float  # 1 - cosine to the nearest labelled or earlier chosen row, when chosen
    typicality: float | None  # 1 = in the densest region of the pool (None when density is off)
    score: float
    diversity_rank: int = 0  # 1 = the chosen row farthest from the labelled rows and earlier choices


# -- pure functions ------------------------------------------------------------------------------
def uncertainty(proba: np.ndarray, measure: str = "margin") -> np.ndarray:
    """Per row in [0, 1], higher = less sure: ``1 - (p1 - p2)`` (margin) or entropy / log(classes)."""
    if measure not in MEASURES:
        raise ConfigError(f"uncertainty must be one of {', '.join(MEASURES)}, got {measure!r}")
    p = np.asarray(proba, dtype=np.float64)
    if p.shape[1] < 2:
        return np.zeros(len(p))
    if measure == "margin":
        top2 = -np.sort(-p, axis=1)[:, :2]
        return np.clip(1.0 - (top2[:, 0] - top2[:, 1]), 0.0, 1.0)
    h = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=1)
    return np.clip(h / np.log(p.shape[1]), 0.0, 1.0)


def typicality(x: np.ndarray, rows: np.ndarray, k: int = 10, chunk: int = 1024) -> np.ndarray:
    """Of ``x[rows]``: 1 / mean cosine distance to its ``k`` nearest other rows of ``x`` (TypiClust's
    typicality), divided by the largest: 1 = the row in the densest region."""
    k = max(1, min(k, len(x) - 1))
    out = np.empty(len(rows))
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        sims = x[part] @ x.T
        sims[np.arange(len(part)), part] = -np.inf  # not itself
        near = -np.partition(-sims, k - 1, axis=1)[:, :k]
        out[start : start + chunk] = 1.0 / np.maximum(1.0 - near.mean(axis=1), 1e-6)
    return out / out.max() if len(out) else out


def class_quotas(predicted: np.ndarray, n_classes: int, budget: int) -> np.ndarray:
    """An equal share of ``budget`` per class, capped by the candidates each class has; what a class
    cannot use goes to the others (the larger classes first, then the lower class index)."""
    avail = np.bincount(predicted, minlength=n_classes)
    quota = np.zeros(n_classes, int)
    left = min(budget, int(avail.sum()))
    while left > 0:
        open_ = np.flatnonzero(quota < avail)
        share = max(1, left // len(open_))
        for c in sorted(open_, key=lambda c: (-(avail[c] - quota[c]), c)):
            take = min(share, avail[c] - quota[c], left)
            quota[c] += take
            left -= take
            if left == 0:
                break
    return quota


def choose(
    pool_x: np.ndarray,
    proba: np.ndarray,
    labelled_x: np.ndarray,
    config: SelectConfig,
    classes: Sequence[str] | None = None,
) -> list[Choice]:
    """The rows of ``pool_x`` to label, in the order chosen (see the module's docstring).

    ``pool_x`` and ``labelled_x`` are L2-normalised embeddings; ``proba`` the classifier's
    probabilities on the pool (columns in ``classes`` order)."""
    n, n_classes = proba.shape
    classes = list(classes) if classes is not None else [str(c) for c in range(n_classes)]
    if n == 0:
        return []
    unc = uncertainty(proba, config.uncertainty)
    # most uncertain first; ties by pool order (stable), so the choice is deterministic
    order = np.argsort(-unc, kind="stable")
    unc_rank = np.empty(n, int)
    unc_rank[order] = np.arange(1, n + 1)
    n_cand = min(n, max(config.budget, int(round(config.candidates * config.budget))))
    cand = order[:n_cand]
    pred = proba.argmax(axis=1)
    budget = min(config.budget, n)
    if config.balance:
        quota = class_quotas(pred[cand], n_classes, budget)
    else:
        quota = np.zeros(n_classes, int)
    x = pool_x[cand].astype(np.float32)
    if len(labelled_x):
        dist = 1.0 - (x @ labelled_x.astype(np.float32).T).max(axis=1)
    else:
        dist = np.ones(len(cand), np.float32)
    dist = np.clip(dist.astype(np.float64), 0.0, 2.0)
    cu = unc[cand]
    typ = typicality(pool_x.astype(np.float32), cand) if config.density > 0 and n > 1 else np.ones(len(cand))
    base = cu**config.uncertainty_weight * typ**config.density
    cpred = pred[cand]
    taken = np.zeros(len(cand), bool)
    count = np.zeros(n_classes, int)
    out: list[Choice] = []
    for rank in range(1, budget + 1):
        score = base * dist**config.diversity if config.diversity > 0 else base.copy()
        score = np.where(taken, -np.inf, score)
        if config.balance:
            # the class furthest below its share (lowest count/quota; then the lower class index)
            need = np.flatnonzero(count < quota)
            c = min(need, key=lambda c: (count[c] / quota[c], c))
            score = np.where(cpred == c, score, -np.inf)
        j = int(np.argmax(score))  # first of equal scores: the more uncertain (candidate order)
        i = int(cand[j])
        out.append(
            Choice(
                index=i,
                rank=rank,
                predicted=classes[cpred[j]],
                confidence=round(float(proba[i].max()), 4),
                uncertainty=round(float(cu[j]), 4),
                uncertainty_rank=int(unc_rank[i]),
                distance=round(float(dist[j]), 4),
                typicality=round(float(typ[j]), 4) if config.density > 0 else None,
                score=round(float(score[j]), 4),
            )
        )
        taken[j] = True
        count[cpred[j]] += 1
        dist = np.minimum(dist, np.clip(1.0 - x @ x[j], 0.0, 2.0))
    for r, ch in enumerate(sorted(out, key=lambda ch: (-ch.distance, ch.rank)), start=1):
        ch.diversity_rank = r
    return out


def fit_classifier(x: np.ndarray, labels: Sequence[str], seed: int = 13):
    """The engine's calibrated logistic-regression head on frozen embeddings."""
    from .classifiers import EmbeddingClassifier

    return EmbeddingClassifier("logreg", seed=seed).fit(x, list(labels))


# -- output formats ------------------------------------------------------------------------------
def rows_for(texts: Sequence[str], ids: Sequence[str | None], choices: Sequence[Choice], measure: str) -> list[dict]:
    """The labelling file's rows: text, an empty label to fill, the suggestion and why it was chosen."""
    rows = []
    for ch in choices:
        rows.append(
            {
                "id": ids[ch.index] or f"pool-{ch.index + 1}",
                "text": texts[ch.index],
                "label": None,
                "suggested_label": ch.predicted,
                "confidence": ch.confidence,
                "why": {
                    "rank": ch.rank,
                    "predicted_class": ch.predicted,
                    "uncertainty": ch.uncertainty,
                    "measure": measure,
                    "uncertainty_rank": ch.uncertainty_rank,
                    "distance": ch.distance,
                    "diversity_rank": ch.diversity_rank,
                    **({"typicality": ch.typicality} if ch.typicality is not None else {}),
                    "score": ch.score,
                },
            }
        )
    return rows


def render(rows: Sequence[dict], fmt: str, label_names: Sequence[str]) -> str:
    """``rows`` (from :func:`rows_for`) as text in format ``fmt``:

    * ``jsonl`` — the rows as they are; fill ``label`` and give the file to ``augment expand``;
    * ``csv`` — flat columns (``id,text,label,suggested_label,confidence,predicted_class,uncertainty,...``),
      which Label Studio and Argilla import as they are;
    * ``label-studio`` — a JSON list of Label Studio tasks, ``{"data": {"text", "id"}, "predictions":
      [{"model_version", "score", "result": [{"from_name": "label", "to_name": "text", "type": "choices",
      "value": {"choices": [suggested]}}]}]}``, for a labelling config with ``<Text name="text">`` and
      ``<Choices name="label" toName="text">``;
    * ``argilla`` — JSONL of Argilla 2 records, ``{"id", "fields": {"text"}, "suggestions":
      [{"question_name": "label", "value", "score", "agent"}], "metadata"}``, for a dataset with a text
      field ``text`` and a label question ``label``: ``rg.Record(id=r["id"], fields=r["fields"],
      metadata=r["metadata"], suggestions=[rg.Suggestion(**s) for s in r["suggestions"]])``.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        cols = ["id", "text", "label", "suggested_label", "confidence"]
        why = [k for k in (rows[0]["why"] if rows else {})]
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols + why)
        for r in rows:
            w.writerow([r[c] if r[c] is not None else "" for c in cols] + [r["why"][k] for k in why])
        return buf.getvalue()
    if fmt == "label-studio":
        tasks = [
            {
                "data": {"text": r["text"], "id": r["id"]},
                "meta": r["why"],
                "predictions": [
                    {
                        "model_version": AGENT,
                        "score": r["confidence"],
                        "result": [
                            {
                                "from_name": "label",
                                "to_name": "text",
                                "type": "choices",
                                "value": {"choices": [r["suggested_label"]]},
                            }
                        ],
                    }
                ],
            }
            for r in rows
        ]
        return json.dumps(tasks, ensure_ascii=False, indent=1) + "\n"
    records = [
        {
            "id": r["id"],
            "fields": {"text": r["text"]},
            "suggestions": [
                {"question_name": "label", "value": r["suggested_label"], "score": r["confidence"], "agent": AGENT}
            ],
            "metadata": {k: v for k, v in r["why"].items()},
        }
        for r in rows
    ]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def label_studio_config(label_names: Sequence[str]) -> str:
    """A Label Studio labelling config matching the ``label-studio`` tasks."""
    choices = "".join(f'<Choice value="{_xml(n)}"/>' for n in label_names)
    return f'<View><Text name="text" value="$text"/><Choices name="label" toName="text">{choices}</Choices></View>'


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def format_for(path: Path | None, fmt: str | None) -> str:
    """``--format``, or from the output's suffix (.csv, .json: label-studio), else jsonl."""
    if fmt:
        return fmt
    if path is not None:
        if path.suffix.lower() == ".csv":
            return "csv"
        if path.suffix.lower() == ".json":
            return "label-studio"
    return "jsonl"


# -- files ---------------------------------------------------------------------------------------
@dataclass
class SelectResult:
    rows: list[dict]
    text: str  # the rendered output
    format: str
    classes: list[str]
    embedder: str
    counts: dict[str, Any]


def _augmented_file(path: Path) -> Path:
    if path.is_dir():
        f = path / "augmented.jsonl"
        if not f.exists():
            raise DataError(f"{path}: no augmented.jsonl in this folder (is it an `augment expand` output?)")
        return f
    return path


def select_file(
    pool: str | Path,
    seeds: str | Path,
    config: SelectConfig,
    *,
    augmented: str | Path | None = None,
    out: str | Path | None = None,
    fmt: str | None = None,
    embedder: str = "auto",
    language: str = "auto",
    data: Any = None,
) -> SelectResult:
    """Read SEEDS (+ an expand output) and POOL, choose ``config.budget`` pool rows, write ``out``
    atomically in ``fmt`` (when ``out`` is given) and return the rows."""
    from .config import DataConfig
    from .embedders import load_embedder, resolve_embedder_spec
    from .io import load_records, write_atomic
    from .language import detect_language

    out = Path(out) if out is not None else None
    fmt = format_for(out, fmt)
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    data = data or DataConfig()
    task, seed_rows = load_records(seeds, data, labelled=True)
    if task != "classification":
        raise DataError(f"{seeds}: `augment select` needs classification rows (text and label)")
    labelled = [(r.fields["text"], str(r.label)) for r in seed_rows]
    n_aug = 0
    if augmented is not None:
        _, aug_rows = load_records(_augmented_file(Path(augmented)), data, task="classification", labelled=True)
        known = {t for t, _ in labelled}
        for r in aug_rows:
            if r.fields["text"] not in known:
                known.add(r.fields["text"])
                labelled.append((r.fields["text"], str(r.label)))
                n_aug += 1
    _, pool_rows = load_records(pool, data, labelled=False)
    known = {t for t, _ in labelled}
    texts: list[str] = []
    ids: list[str | None] = []
    seen: set[str] = set()
    for r in pool_rows:
        t = r.fields["text"]
        if t in known or t in seen:  # never offer a labelled text (or one twice) for labelling
            continue
        seen.add(t)
        texts.append(t)
        ids.append((r.source or {}).get("id"))
    if not texts:
        raise DataError(f"{pool}: no pool row left to choose from (every text is already labelled)")
    classes = sorted({lbl for _, lbl in labelled})
    if len(classes) < 2:
        raise DataError(f"{seeds}: the labelled rows have a single label ({classes[0]!r}); select needs two or more")
    lang = language if language != "auto" else detect_language([t for t, _ in labelled] + texts[:200])
    spec = resolve_embedder_spec(embedder, lang)
    emb = load_embedder(spec)
    lx = emb.encode([t for t, _ in labelled])
    px = emb.encode(texts)
    clf = fit_classifier(lx, [lbl for _, lbl in labelled], seed=config.seed)
    proba = clf.predict_proba(px)
    choices = choose(px, proba, lx, config, clf.classes)
    rows = rows_for(texts, ids, choices, config.uncertainty)
    text = render(rows, fmt, clf.classes)
    if out is not None:
        write_atomic(out, text)
    per_class: dict[str, int] = {}
    for ch in choices:
        per_class[ch.predicted] = per_class.get(ch.predicted, 0) + 1
    counts = {
        "seeds": len(seed_rows),
        "augmented": n_aug,
        "pool": len(texts),
        "chosen": len(choices),
        "per_predicted_class": dict(sorted(per_class.items())),
        "language": lang,
    }
    return SelectResult(rows, text, fmt, list(clf.classes), emb.model_id, counts)
