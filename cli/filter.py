"""`augment filter CANDIDATES --reference SEEDS -o OUT`: the filter chain on any candidate file."""

from __future__ import annotations

from pathlib import Path

import click

from .expand import resolve_config
from .options import config_option, data_options, filter_options, test_option


@click.command("filter")
@click.argument("candidates", type=click.Path(path_type=Path))
@click.option(
    "-r",
    "--reference",
    required=True,
    type=click.Path(path_type=Path),
    help="The labelled seeds the candidates are judged against.",
)
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@data_options
@test_option
@filter_options
@config_option("--seed", field="seed", type=int)
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
def filter_command(candidates, reference, out, config_file, test, overwrite, **flags) -> None:
    """Filter CANDIDATES (an `augment expand` output, or text+label rows from any tool)
    against the seeds in --reference, writing the same three outputs as `augment expand`.

    Rows from another tool have no parent, so the parent-based checks (length ratio,
    similarity band) pass them; dedup, label consistency, novelty and diversity apply.
    """
    from augment import report
    from augment.pipeline import filter_file

    config = resolve_config(config_file, flags)
    result = filter_file(candidates, reference, out, config, overwrite=overwrite, test_path=test)
    click.echo(report.summary(result.manifest, result.rejected, result.out_dir))
