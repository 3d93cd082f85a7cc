"""`augment export OUT --format F -o PATH`: an expand output as a training tool's dataset."""

from __future__ import annotations

from pathlib import Path

import click

FORMATS = (
    "alpaca",
    "sharegpt",
    "messages",
    "setfit",
    "hf",
)  # augment.export.FORMATS (not imported: --help stays instant)


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@click.command("export")
@click.argument("source", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "-f",
    "--format",
    "fmt",
    required=True,
    type=click.Choice(FORMATS),
    help="alpaca, sharegpt, messages (instruction data; JSONL + LLaMA-Factory dataset_info.json); "
    "setfit (text/label JSONL), hf (a datasets folder with a ClassLabel feature).",
)
@click.option(
    "-o", "--out", "out", type=click.Path(path_type=Path), help="The JSONL file (hf: the folder) to write."
)
@click.option(
    "--origins",
    default=None,
    help="Keep rows of these origins, comma-separated: seed, augmented, pseudo-labelled [all].",
)
@click.option(
    "--methods", default=None, help="Keep seeds plus the rows these methods made, comma-separated [all]."
)
@click.option("--with-lineage", is_flag=True, help="Add a 'lineage' column: each row's lineage as JSON text.")
@click.option("--name", default=None, help="The dataset's name in dataset_info.json [the file name].")
@click.option(
    "--push-to-hub", "push_to_hub", metavar="REPO", default=None, help="Also upload it with datasets."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing PATH.")
def export_command(source, fmt, out, origins, methods, with_lineage, name, push_to_hub, overwrite) -> None:
    """Export the rows of OUT (an `augment expand` or `augment filter` output) for a training tool."""
    from augment.export import export

    result = export(
        source,
        out,
        fmt,
        origins=_names(origins),
        methods=_names(methods),
        with_lineage=with_lineage,
        name=name,
        overwrite=overwrite,
        push_to_hub=push_to_hub,
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.by_origin.items()))
    where = result.path if result.path is not None else result.pushed_to
    click.echo(f"{result.rows} rows ({counts}) -> {where} ({fmt})")
    if result.dataset_info is not None:
        click.echo(f"  LLaMA-Factory: dataset '{result.name}' in {result.dataset_info}")
    if result.labels:
        click.echo(f"  labels (index order): {', '.join(result.labels)}")
    if result.pushed_to is not None and result.path is not None:
        click.echo(f"  pushed to {result.pushed_to}")
