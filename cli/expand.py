"""`augment expand SEEDS -o OUT`: flags and a YAML file resolved into an ExpandConfig, then a run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from .options import config_option, data_options, filter_options, generator_options, test_option

# flag name -> path in the config dict; a flag given on the command line overrides the YAML file
FLAG_PATHS: dict[str, tuple[str, ...]] = {
    "task": ("task",),
    "language": ("language",),
    "seed": ("seed",),
    "embedder": ("embedder",),
    "batch_size": ("batch_size",),
    "text_column": ("data", "text_column"),
    "text_pair_column": ("data", "text_pair_column"),
    "label_column": ("data", "label_column"),
    "instruction_column": ("data", "instruction_column"),
    "input_column": ("data", "input_column"),
    "output_column": ("data", "output_column"),
    "augment_fields": ("data", "augment_fields"),
    "encoding": ("data", "encoding"),
    "methods": ("methods", "names"),
    "n_per_seed": ("methods", "n_per_seed"),
    "aug_p": ("methods", "defaults", "aug_p"),
    "min_similarity": ("filters", "min_similarity"),
    "max_similarity": ("filters", "max_similarity"),
    "near_duplicate": ("filters", "near_duplicate"),
    "filters": ("filters", "chain"),
    "minhash_threshold": ("filters", "minhash_threshold"),
    "label_margin": ("filters", "label_margin"),
    "min_novelty": ("filters", "min_novelty"),
    "per_class_budget": ("filters", "per_class_budget"),
    "backend": ("generator", "backend"),
    "model": ("generator", "model"),
    "base_url": ("generator", "base_url"),
    "api_key_env": ("generator", "api_key_env"),
    "endpoint": ("generator", "endpoint"),
    "concurrency": ("generator", "concurrency"),
    "max_new_tokens": ("generator", "max_new_tokens"),
    "temperature": ("generator", "temperature"),
    "max_tokens_total": ("generator", "max_tokens_total"),
    "recipe": ("recipe", "mode"),
    "executor": ("executor",),
    "ray_address": ("ray_address",),
    "ray_cpus": ("ray_cpus",),
}
LIST_FLAGS = {"methods", "augment_fields", "filters"}


def parse_params(items: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """``-P backtranslate.pivots=[de,fr]`` -> ``{"backtranslate": {"pivots": ["de", "fr"]}}``."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        method, dot, name = key.strip().partition(".")
        if not sep or not dot or not method or not name:
            raise click.BadParameter(f"{item!r}: expected METHOD.KEY=VALUE", param_hint="--param")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        out.setdefault(method, {})[name] = value
    return out


def resolve_config(config_file: str | None, flags: dict[str, Any], params: tuple[str, ...] = ()):
    """YAML file (if any) overlaid with the flags that were given; validated into an ExpandConfig."""
    from augment.config import ExpandConfig, load_yaml, merge

    data: dict[str, Any] = load_yaml(config_file) if config_file else {}
    overrides: dict[str, Any] = {}
    if params:
        overrides["methods"] = {"params": parse_params(params)}
    for name, value in flags.items():
        if value is None:
            continue
        if name in LIST_FLAGS:
            value = [v.strip() for v in value.split(",") if v.strip()]
        node = overrides
        path = FLAG_PATHS[name]
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return ExpandConfig.from_dict(merge(data, overrides))




@click.command("expand")
@click.argument("seeds", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), help="Output folder.")
@data_options
@click.option(
    "--unlabeled",
    "--pool",
    "pool",
    type=click.Path(path_type=Path),
    help="Unlabelled in-domain texts (same text column), kept beside the seeds.",
)
@click.option(
    "--dev",
    "dev",
    type=click.Path(path_type=Path),
    help="Labelled dev rows (same columns): the recipe keeps what raises a proxy learner's dev score. "
    "Never written to the output.",
)
@test_option
@config_option(
    "--recipe",
    field="recipe.mode",
    type=click.Choice(["auto", "dev", "cv", "off"]),
    help="how much pool and which methods to keep; off: keep all that pass the filters",
    auto="scored on --dev, else cross-validation on the seeds",
)
@click.option(
    "-m",
    "--methods",
    default=None,
    help="Comma-separated: swap,delete,insert,synonym,spelling,keyboard,backtranslate,paraphrase,"
    "contextual,self_instruct,pseudo_label [default: those that suit the language].",
)
@click.option(
    "-P",
    "--param",
    "params",
    multiple=True,
    metavar="METHOD.KEY=VALUE",
    help="A method parameter, repeatable; VALUE is read as YAML, e.g. -P backtranslate.pivots=[de,fr] "
    "-P backtranslate.model=./opus-mt-{src}-{tgt} -P paraphrase.backend=ctranslate2.",
)
@config_option("--n-per-seed", field="methods.n_per_seed", type=int)
@click.option("--aug-p", type=float, default=None, help="Fraction of words changed [0.15].")
@config_option("--text-pair-column", field="data.text_pair_column")
@config_option(
    "--augment-fields",
    field="data.augment_fields",
    help="fields to rewrite, comma-separated; default text (classification), instruction (instruction)",
)
@filter_options
@generator_options
@config_option("--seed", field="seed", type=int)
@config_option("--batch-size", field="batch_size", type=int)
@config_option(
    "--executor",
    field="executor",
    type=click.Choice(["local", "ray"]),
    help="local: in this process; ray: per-seed methods and embedding as Ray Data map_batches (same outputs)",
)
@config_option(
    "--ray-address",
    field="ray_address",
    help="ray: a running cluster (auto, HOST:PORT or ray://HOST:PORT); default: start Ray on this machine",
)
@config_option("--ray-cpus", field="ray_cpus", type=int)
@click.option("--dump-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@click.option("--dry-run", is_flag=True, help="Print the LLM calls and a token / time estimate, then exit.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option(
    "--resume", is_flag=True, help="Finish an interrupted run in OUT, reusing its finished batches."
)
def expand_command(
    seeds, out, config_file, pool, dev, test, params, dump_config, dry_run, overwrite, resume, no_cache, **flags
) -> None:
    """Expand the labelled rows in SEEDS into a larger, filtered set in OUT.

    SEEDS is a .jsonl, .json, .csv, .tsv or .parquet file, or a folder written by
    datasets' save_to_disk. OUT gets augmented.jsonl (seeds + kept rows, with lineage),
    rejected.jsonl (with reasons) and manifest.json.
    """
    from augment import report
    from augment.config import dump_yaml

    config = resolve_config(config_file, flags, params)
    if no_cache:
        config.generator.cache = False
    if dump_config:
        if seeds is not None and not config.methods.names:  # the methods this run would use
            from augment.pipeline import planned_methods

            config.methods.names = planned_methods(seeds, config, pool_path=pool)
        click.echo(dump_yaml(config), nl=False)
        if not config.methods.names:
            click.echo("# methods.names: null = the defaults for the task and language; give SEEDS to list them")
        return
    if seeds is None:
        raise click.UsageError("missing argument SEEDS")
    if dry_run:
        from augment.pipeline import plan

        click.echo(report.plan_table(plan(seeds, config, pool_path=pool)))
        return
    if out is None:
        raise click.UsageError("missing option -o/--out")
    from augment.pipeline import expand

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = expand(
        seeds, out, config, pool_path=pool, dev_path=dev, overwrite=overwrite, resume=resume, test_path=test
    )
    click.echo(report.summary(result.manifest, result.rejected, result.out_dir))
