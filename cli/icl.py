"""`augment icl DATA --test FILE`: the in-context-learning baseline (finetune/icl.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import COLUMN_FLAGS, column_options, generator_options

GENERATOR_FLAGS = (
    "backend", "model", "base_url", "api_key_env", "endpoint", "max_new_tokens", "temperature", "max_tokens_total",
    "concurrency",
)  # fmt: skip


@click.command("icl")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--test", required=True, type=click.Path(path_type=Path), help="The rows to classify.")
@click.option(
    "--shots", type=int, default=4, show_default=True, help="Demonstrations per prompt (0: zero-shot only)."
)
@click.option(
    "--demos",
    type=click.Choice(["similar", "random"]),
    default="similar",
    show_default=True,
    help="Demonstrations nearest the row by embedding, or drawn at random.",
)
@click.option("--no-zero-shot", is_flag=True, help="Only the k-shot setting.")
@click.option(
    "--answer",
    type=click.Choice(["auto", "score", "generate"]),
    default="auto",
    show_default=True,
    help="score: each label's log-likelihood (llama.cpp, transformers); generate: a parsed answer "
    "(auto: score where the backend can).",
)
@click.option("--label-names", type=click.Path(path_type=Path), help="labels.json: a list, or label -> name.")
@click.option("--embedder", default="auto", show_default=True, help="Embedder for similar demonstrations.")
@click.option("--domain", help="A few words on the field, for the prompt.")
@click.option("--language", default="auto", show_default=True, help="zh, en, ... (auto: from the data).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random demonstrations' seed.")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), help="Per-row predictions (JSONL).")
@click.option("--report", type=click.Path(path_type=Path), help="Write the report (JSON) here.")
@generator_options
@column_options
def icl_command(
    data, test, shots, demos, no_zero_shot, answer, label_names, embedder, domain, seed, out, report, no_cache,
    language, **flags,
) -> None:  # fmt: skip
    """Classify TEST with an LLM from a prompt alone: zero-shot and k-shot, demonstrations from the
    training rows of DATA (seeds, or an `augment expand` output), answers constrained to the labels.

    The baseline to beat before fine-tuning: accuracy, macro-F1 and how many answers named no label.
    """
    from augment.config import DataConfig
    from augment.generators import GeneratorConfig
    from augment.io import jsonl, write_atomic
    from finetune.icl import icl, read_label_names, table

    gen = GeneratorConfig(**{k: flags[k] for k in GENERATOR_FLAGS if flags.get(k) is not None})
    if no_cache:
        gen.cache = False
    columns = DataConfig(**{k: flags[k] for k in COLUMN_FLAGS if flags.get(k) is not None})
    result = icl(
        data, test, shots=shots, demos=demos, generator=gen, embedder=embedder,
        label_names=read_label_names(label_names), answer=answer, columns=columns, language=language,
        seed=seed, zero_shot=not no_zero_shot, domain=domain,
    )  # fmt: skip
    if out is not None:
        rows = [{"setting": s["setting"], **p} for s in result["settings"] for p in s["predictions"]]
        write_atomic(out, jsonl(rows))
    if report is not None:
        write_atomic(report, json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    click.echo(table(result))
    if out is not None:
        click.echo(f"predictions: {out}")
