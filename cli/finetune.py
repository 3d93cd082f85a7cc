"""`augment finetune`, `augment predict` and `augment evaluate`: thin wrappers over finetune/.

The option bundles come from :mod:`cli.options` (help and defaults from ``TrainConfig`` and
``DataConfig``); engine errors become click errors in the ``augment`` group (:mod:`cli.errors`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .options import COLUMN_FLAGS, column_options, train_options

CONFIG_FLAGS = (
    "model", "method", "task", "epochs", "learning_rate", "batch_size", "rank", "virtual_tokens",
    "max_length", "patience", "target_steps", "seed", "pseudo_weight", "aug_weight", "pairs_per_row",
    "max_pairs",
)  # fmt: skip


def _split(flags: dict[str, Any]):
    from augment.config import DataConfig
    from finetune.config import TrainConfig

    config = TrainConfig(**{k: flags.pop(k) for k in CONFIG_FLAGS if flags.get(k) is not None})
    for k in CONFIG_FLAGS:
        flags.pop(k, None)
    cols = {k: flags.pop(k) for k in COLUMN_FLAGS if flags.get(k) is not None}
    for k in COLUMN_FLAGS:
        flags.pop(k, None)
    return config, DataConfig(**cols)


def _fmt(metrics: dict[str, Any]) -> str:
    keys = ("accuracy", "macro_f1", "loss", "perplexity")
    return (
        ", ".join(f"{k.replace('_', '-')} {metrics[k]:.4f}" for k in keys if k in metrics)
        + f" (n={metrics['n']})"
    )


@click.command("finetune")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@train_options
@click.option("--dev", type=click.Path(path_type=Path), help="Dev file: early stopping and best model.")
@click.option(
    "--dev-fraction",
    type=float,
    default=None,
    help="Hold out this part of the seeds as dev (their augmented rows leave training). Without --dev, "
    "--dev-fraction and --test, 0.2 of the seeds is held out and only scored, so metrics.json has a "
    "number; 0: none.",
)
@click.option("--test", type=click.Path(path_type=Path), help="Test file, scored after training.")
@column_options
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
def finetune_command(data, out, dev, dev_fraction, test, overwrite, language, **flags) -> None:
    """Fine-tune a model on DATA and save it (adapter + head, tokenizer, manifest) in OUT.

    DATA is an `augment expand` output folder or its augmented.jsonl, or a plain
    .jsonl/.csv/.tsv/.parquet of text,label (classification) or instruction,input,output rows.
    """
    from finetune.train import finetune

    config, columns = _split(flags)
    result = finetune(
        data, out, config, dev=dev, dev_fraction=dev_fraction, test=test, columns=columns,
        language=language, overwrite=overwrite,
    )  # fmt: skip
    m = result.manifest
    if not m:  # another rank of a distributed run
        return
    rows = m["data"]["train"]["rows"]
    cfg = m["config"]
    detail = []
    if m["method"] != "embedding":
        detail.append(
            f"{cfg['epochs']:g} epochs{'' if m['method'] == 'setfit' else ' max'}, lr {cfg['learning_rate']:g}"
        )
    if "C" in m.get("embedding", {}):
        sel = m["embedding"]["c_selection"]
        detail.append(f"head C={m['embedding']['C']:g} by {sel['by']}")
    lines = [
        f"{m['task']}, language {m['language']}, method {m['method']}, model {m['model']['description']}",
        f"trained on {rows} rows in {m['seconds']['train']:.1f} s"
        + (f" ({'; '.join(detail)})" if detail else ""),
    ]
    for split in ("dev", "test"):
        if split in result.metrics:
            lines.append(f"  {split}: {_fmt(result.metrics[split])}")
    lines.append(f"  {result.out_dir}  adapter/head, tokenizer, manifest.json, metrics.json")
    click.echo("\n".join(lines))


@click.command("predict")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "-o", "--out", "out", type=click.Path(path_type=Path), help="Write predictions (JSONL) here [stdout]."
)
@click.option("--generate", is_flag=True, help="Instruction models: write generated answers.")
@click.option("--max-new-tokens", type=int, default=128, help="Generation length [128].")
@column_options
def predict_command(model_dir, data, out, generate, max_new_tokens, **flags) -> None:
    """Reload a model saved by `augment finetune` from MODEL_DIR and predict DATA.

    Predictions go to -o, or to stdout as JSONL (the other lines then go to stderr). With labels
    (or outputs) in DATA it prints the metrics, and says whether they equal the ones recorded at
    training time when DATA is that run's test file.
    """
    from augment.config import DataConfig
    from augment.io import jsonl, write_atomic
    from finetune.predict import predict_file

    columns = DataConfig(**{k: v for k, v in flags.items() if v is not None})
    result = predict_file(model_dir, data, columns=columns, generate=generate, max_new_tokens=max_new_tokens)
    if out is not None:
        if result.rows is None:
            raise click.UsageError("instruction models write predictions with --generate")
        write_atomic(out, jsonl(result.rows))
    lines = []
    if out is not None:
        lines.append(f"{len(result.rows)} predictions -> {out}")
    if result.metrics is not None:
        lines.append(f"{data}: {_fmt(result.metrics)}")
        if result.reproduces is not None:
            lines.append(
                "reproduces the test metrics recorded at training time"
                if result.reproduces
                else f"DIFFERS from the test metrics recorded at training time: {_fmt(result.recorded)}"
            )
    to_stdout = out is None and result.rows is not None
    if to_stdout:
        click.echo(jsonl(result.rows), nl=False)
    if lines:
        click.echo("\n".join(lines), err=to_stdout)


@click.command("evaluate")
@click.argument("data", type=click.Path(path_type=Path))
@train_options
@click.option(
    "--test", type=click.Path(path_type=Path), help="A separate test file [default: held-out seeds]."
)
@click.option("--repeats", "-k", type=int, default=3, help="Repetitions (random seeds and splits) [3].")
@click.option("--test-fraction", type=float, default=0.25, help="Seeds held out per repeat [0.25].")
@click.option("--per-method", is_flag=True, help="Also seeds + each method's rows alone.")
@click.option(
    "--baseline",
    type=click.Choice(["icl"]),
    help="Also the in-context-learning baseline: the embedded LLM, zero- and 4-shot (seeds as demos).",
)
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), help="Write the report (JSON) here.")
@column_options
def evaluate_command(data, test, repeats, test_fraction, per_method, baseline, out, language, **flags) -> None:
    """Did augmentation help? Train the same recipe on seed-only and on seed + augmented rows of
    DATA (an `augment expand` output), k times, and print accuracy and macro-F1 as mean ± std.

    Without --test, each repeat holds out a stratified part of the seeds as test and drops every
    augmented row derived from a held-out seed from training.
    """
    from augment.io import write_atomic
    from finetune.evaluate import evaluate, table

    config, columns = _split(flags)
    report = evaluate(
        data, config, test=test, repeats=repeats, test_fraction=test_fraction, per_method=per_method,
        columns=columns, language=language, baseline=baseline,
    )  # fmt: skip
    if out is not None:
        from augment.html_report import render_evaluate

        write_atomic(out, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        page = Path(out).with_suffix(".html")
        write_atomic(page, render_evaluate(report))  # the run report's style, next to the JSON
    click.echo(table(report))
    if out is not None:
        click.echo(f"report: {out} ({page.name} beside it)")
