"""The `augment` command. Only click is imported here, so `augment --help` is instant."""

from __future__ import annotations

import logging

import click

from .errors import EngineGroup
from .expand import expand_command
from .export import export_command
from .filter import filter_command
from .finetune import evaluate_command, finetune_command, predict_command
from .icl import icl_command
from .models import models_command
from .report import report_command
from .select import select_command
from .steps import list_command


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    noisy = (
        "transformers",
        "peft",
        "accelerate",
        "datasets",
        "sentence_transformers",
        "urllib3",
        "filelock",
        "jieba",
        "httpx",
    )
    for name in noisy:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


@click.group(cls=EngineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="augment-engine", prog_name="augment")
@click.option("-v", "--verbose", count=True, help="More logging (-vv includes libraries).")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
def cli(verbose: int, quiet: bool) -> None:
    """Turn a small labelled dataset into a larger, filtered training set with lineage."""
    # engine errors (augment.errors.AugmentError) of every subcommand become one-line click errors in
    # EngineGroup (cli/errors.py): commands do not catch them
    _setup_logging(verbose, quiet)


cli.add_command(expand_command)
cli.add_command(export_command)
cli.add_command(filter_command)
cli.add_command(finetune_command)
cli.add_command(predict_command)
cli.add_command(evaluate_command)
cli.add_command(icl_command)
cli.add_command(models_command)
cli.add_command(list_command)
cli.add_command(report_command)
cli.add_command(select_command)

if __name__ == "__main__":  # pragma: no cover
    cli()
