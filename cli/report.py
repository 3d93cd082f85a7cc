"""`augment report OUT [-o FILE]`: render an output folder's report.html again."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "-o",
    "--output",
    "target",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the page (default: OUT/report.html).",
)
@click.option(
    "--embed/--no-embed",
    default=True,
    show_default=True,
    help="Embed the rows again with the run's embedder when OUT/report_points.json is missing or stale "
    "(--no-embed: leave the map out instead).",
)
def report_command(out: Path, target: Path | None, embed: bool) -> None:
    """Render OUT/report.html from an `augment expand` or `augment filter` output folder: the funnel
    per method and label, score distributions with thresholds, the embedding map, label balance, the
    recipe's evidence and searchable rows with lineage. One offline file (plotly.js inlined)."""
    missing = [n for n in ("manifest.json", "augmented.jsonl") if not (out / n).is_file()]
    if missing:
        raise click.ClickException(f"{out}: not an augment output folder (no {', '.join(missing)})")
    from augment.html_report import write_report

    path = write_report(out, target, embed=embed)
    click.echo(str(path))
