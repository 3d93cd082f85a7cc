"""`augment evaluate`: did augmentation help? The same recipe trained on seed-only data, on seeds +
all augmented rows, and (optionally) on seeds + each method's rows, over several repetitions.

Each repetition has its own random seed. Without a separate test file it also draws its own
stratified held-out part of the SEEDS as the test set (so repetitions are different few-shot
splits), and every row derived from a held-out seed (``parent_ids``, followed transitively) or with
the same text is dropped from all training variants: see :mod:`finetune.splits`. Classification is
scored by accuracy and macro-F1, instruction data by the response-token loss; each is reported as
mean ± std over the repetitions. Since every variant of a repetition is scored on the same test rows,
each is also compared with seed-only *within* the repetition: the paired delta (variant minus
seed-only) per repeat, its mean ± std, and in how many repeats the variant improved.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from augment.config import DataConfig
from augment.errors import ConfigError, DataError
from augment.record import SEED

from .config import TrainConfig
from .data import Examples, read_examples, select
from .metrics import format_table, mean_std, paired_deltas
from .splits import against, holdout
from .train import fit, package_versions, plan, warn_test_overlap

logger = logging.getLogger(__name__)

SEED_ONLY = "seed-only"
AUGMENTED = "seed+augmented"
METRICS = {"classification": ("accuracy", "macro_f1"), "instruction": ("loss", "perplexity")}
HIGHER_IS_BETTER = {"accuracy": True, "macro_f1": True, "loss": False, "perplexity": False}


def variants(train: Examples, per_method: bool) -> dict[str, Examples]:
    out = {SEED_ONLY: select(train, origins={SEED}), AUGMENTED: train}
    if per_method:
        for m in sorted({r.method for r in train.rows if r.origin != SEED and r.method}):
            out[f"seed+{m}"] = select(train, methods={m})
    return out


def evaluate(
    data: str | Path,
    config: TrainConfig,
    *,
    test: str | Path | None = None,
    repeats: int = 3,
    test_fraction: float = 0.25,
    per_method: bool = False,
    columns: DataConfig | None = None,
    language: str = "auto",
    baseline: str | None = None,
    icl_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the comparison; returns the report (config, per-repetition scores, mean ± std summary).
    ``baseline="icl"`` adds the in-context-learning baseline (:mod:`finetune.icl`: the embedded LLM,
    zero-shot and k-shot with the repeat's seeds as demonstrations) on each repeat's test rows."""
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    if baseline not in (None, "icl"):
        raise ConfigError(f"baseline must be icl, got {baseline!r}")
    examples = read_examples(data, columns, task=config.task)
    if not any(r.origin != SEED for r in examples.rows):
        raise DataError(f"{examples.path}: no augmented rows to compare with (run `augment expand` first)")
    test_set = read_examples(test, columns, task=examples.task) if test is not None else None
    if test_set is not None:
        warn_test_overlap(examples, test_set)
    base = plan(examples, config, language=language)  # method and model fixed for every variant
    fixed = dataclasses.replace(config, method=base.method, model=base.model)
    t0 = time.perf_counter()
    reps: list[dict[str, Any]] = []
    for r in range(repeats):
        seed = config.seed + r
        if test_set is None:
            split = holdout(examples, fraction=test_fraction, seed=seed)
        else:
            split = against(examples, test_set)
        rep: dict[str, Any] = {
            "repeat": r,
            "seed": seed,
            "test_rows": len(split.held_out),
            "excluded_from_training": split.excluded,
            "variants": {},
        }
        for name, train in variants(split.train, per_method).items():
            p = plan(train, dataclasses.replace(fixed, seed=seed), language=base.language)
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="augment-eval-") as work:
                fitted = fit(train, None, p, Path(work))
                scores = fitted.predictor.score(split.held_out)
            keep = {k: scores[k] for k in METRICS[examples.task]}
            rep["variants"][name] = {
                "train_rows": len(train),
                **keep,
                "seconds": round(time.perf_counter() - t, 2),
            }
            head = fitted.predictor.head
            if head is not None and head.c is not None:
                rep["variants"][name]["C"] = head.c
            logger.info(
                "repeat %d/%d %-18s %4d rows  %s",
                r + 1, repeats, name, len(train), "  ".join(f"{k} {v:.4f}" for k, v in keep.items()),
            )  # fmt: skip
            del fitted
            gc.collect()
        if baseline == "icl":
            from .icl import icl_variants

            rep["variants"].update(
                icl_variants(select(split.train, origins={SEED}), split.held_out, base.language, **(icl_options or {}))
            )
        reps.append(rep)
    summary: dict[str, Any] = {}
    for name in reps[0]["variants"]:
        runs = [rep["variants"][name] for rep in reps if name in rep["variants"]]
        summary[name] = {"train_rows": mean_std([v["train_rows"] for v in runs])["mean"]}
        for k in METRICS[examples.task]:
            summary[name][k] = mean_std([v[k] for v in runs])
        if name != SEED_ONLY:
            summary[name]["paired_delta"] = {
                k: paired_deltas(reps, name, SEED_ONLY, k, higher_is_better=HIGHER_IS_BETTER[k])
                for k in METRICS[examples.task]
            }
    return {
        "kind": "evaluate",
        "data": str(examples.path),
        "test": str(test_set.path) if test_set is not None else None,
        "test_fraction": None if test_set is not None else test_fraction,
        "task": examples.task,
        "language": base.language,
        "method": base.method,
        "model": base.model,
        "config": dataclasses.asdict(fixed),
        **({"baseline": baseline} if baseline else {}),
        "repeats": repeats,
        "runs": reps,
        "summary": summary,
        "seconds": round(time.perf_counter() - t0, 2),
        "versions": package_versions(),
    }


def table(report: dict[str, Any]) -> str:
    """The summary as text: one row per variant, mean ± std, and the paired change against seed-only
    (mean ± std of the per-repeat differences, and in how many repeats the variant improved)."""
    names = METRICS[report["task"]]
    last = names[-1].replace("_", "-")
    header = [
        "variant",
        "train rows",
        *[n.replace("_", "-") for n in names],
        f"Δ {last} (paired)",
        "improved",
    ]
    rows = []
    for name, s in report["summary"].items():
        cells = [name, f"{s['train_rows']:.0f}"]
        for n in names:
            cells.append(f"{s[n]['mean']:.3f} ± {s[n]['std']:.3f}")
        d = s.get("paired_delta", {}).get(names[-1])
        if d is None or not d["n"]:
            cells += ["", ""]
        else:
            cells += [f"{d['mean']:+.3f} ± {d['std']:.3f}", f"{d['improved']} of {d['n']}"]
        rows.append(cells)
    split = (
        f"test: {report['test']}"
        if report["test"]
        else f"test: {report['test_fraction']:.0%} of the seeds held out per repeat, descendants excluded"
    )
    foot = (
        f"{report['task']}, {report['language']}, method {report['method']}, model {report['model']}; "
        f"{report['repeats']} repeats (seeds {report['config']['seed']}..{report['config']['seed'] + report['repeats'] - 1}); "
        f"{split}; {report['seconds']:.0f} s\n"
        f"Δ: each repeat's variant minus that repeat's seed-only score on the same test rows; "
        f"improved: repeats where the variant scored {'higher' if HIGHER_IS_BETTER[names[-1]] else 'lower'}"
    )
    return format_table(header, rows) + "\n\n" + foot
