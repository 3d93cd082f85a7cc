"""Classification metrics (accuracy, macro-F1) from scikit-learn, mean ± std over repetitions, and a
text table.

Macro-F1 averages the per-class F1 over every class that occurs in the gold labels or the predictions
(scikit-learn's default); a class that is predicted but never gold (or gold but never predicted)
scores F1 = 0. scikit-learn is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def _check(gold: Sequence[str], pred: Sequence[str]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    if not gold:
        raise ValueError("no rows to score")


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    from sklearn.metrics import accuracy_score

    _check(gold, pred)
    return float(accuracy_score(list(gold), list(pred)))


def per_class_f1(gold: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    """F1 of each class in the gold labels or the predictions, in sorted order."""
    from sklearn.metrics import f1_score

    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    classes = sorted(set(gold) | set(pred))
    if not classes:
        return {}
    scores = f1_score(list(gold), list(pred), labels=classes, average=None, zero_division=0.0)
    return {c: float(f) for c, f in zip(classes, scores, strict=True)}


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    scores = per_class_f1(gold, pred)
    if not scores:
        raise ValueError("no rows to score")
    return sum(scores.values()) / len(scores)


def classification_metrics(gold: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    return {
        "n": len(gold),
        "accuracy": accuracy(gold, pred),
        "macro_f1": macro_f1(gold, pred),
        "per_class_f1": per_class_f1(gold, pred),
    }


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def paired_deltas(
    runs: Sequence[dict[str, Any]], variant: str, baseline: str, metric: str, *, higher_is_better: bool = True
) -> dict[str, Any]:
    """Per-repeat ``variant - baseline`` of ``metric`` (runs: each ``{"variants": {name: scores}}``,
    scored on the same test rows), over the repeats that have both: the deltas, their mean ± std,
    and in how many repeats the variant improved (strictly), tied or got worse."""
    deltas = [
        r["variants"][variant][metric] - r["variants"][baseline][metric]
        for r in runs
        if variant in r["variants"] and baseline in r["variants"]
    ]
    sign = 1.0 if higher_is_better else -1.0
    out: dict[str, Any] = {"per_repeat": deltas, "n": len(deltas)}
    if deltas:
        out.update({k: v for k, v in mean_std(deltas).items() if k != "n"})
    out["improved"] = sum(sign * d > 1e-12 for d in deltas)
    out["tied"] = sum(abs(d) <= 1e-12 for d in deltas)
    out["worse"] = len(deltas) - out["improved"] - out["tied"]
    return out


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-align the first column, right-align the others."""
    all_rows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]
    lines = []
    for r in all_rows:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, len(r))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
