"""The thin CLI: option help generated from the config dataclasses, one place for engine errors, and
the summary / plan tables as pure functions in augment/report.py. No model is loaded here."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace as NS

import click
import pytest
from click.testing import CliRunner
from conftest import error_lines, invoke

from cli import options
from cli.errors import EngineGroup, engine_errors
from cli.expand import FLAG_PATHS, expand_command
from cli.filter import filter_command
from cli.main import cli


def _config_options(command: click.Command) -> list[options.ConfigOption]:
    return [p for p in command.params if isinstance(p, options.ConfigOption)]


def _all_commands(group: click.Group = cli):
    for command in group.commands.values():
        if isinstance(command, click.Group):
            yield from _all_commands(command)
        else:
            yield command


# -- help from the dataclasses ------------------------------------------------------------------
@pytest.mark.parametrize("command", [expand_command, filter_command], ids=["expand", "filter"])
def test_config_options_set_the_field_their_help_documents(command):
    # the field an option's help is read from is the one its value is written to
    opts = _config_options(command)
    assert len(opts) >= 15
    for opt in opts:
        root, path = opt.config
        assert root == options.EXPAND
        assert tuple(path.split(".")) == FLAG_PATHS[opt.name], opt.name
        assert opt.default is None  # only a given flag overrides the YAML file


def test_every_config_option_names_a_real_field_and_shows_its_default():
    seen = 0
    for command in [*_all_commands(), options.train_options(lambda **kw: None)]:
        params = command.params if isinstance(command, click.Command) else command.__click_params__
        for opt in params:
            if not isinstance(opt, options.ConfigOption):
                continue
            seen += 1
            f = options.config_field(*opt.config)
            default = options.format_default(options.field_default(f))
            assert opt.help and (not default or f"[{default}" in opt.help), (opt.name, opt.help)
    assert seen > 30


def test_help_shows_the_dataclass_defaults():
    from augment.config import ExpandConfig, FilterConfig
    from augment.generators import GeneratorConfig

    out = " ".join(invoke(["expand", "--help"]).output.split())
    assert f"[{FilterConfig.min_similarity}]" in out and f"[{FilterConfig.max_similarity}]" in out
    assert f"[{GeneratorConfig.max_new_tokens}]" in out and f"[{GeneratorConfig.temperature}]" in out
    assert f"[{ExpandConfig.seed}]" in out and f"[{ExpandConfig.batch_size}]" in out
    assert "[auto: scored on --dev" in out
    # the field's help text, not a hand-written copy
    assert FilterConfig.__dataclass_fields__["near_duplicate"].metadata["help"] in out


def test_field_help_follows_a_changed_default(monkeypatch):
    from augment.config import FilterConfig

    monkeypatch.setattr(FilterConfig.__dataclass_fields__["label_margin"], "default", 0.25)
    options.config_field.cache_clear()
    try:
        assert options.field_help(options.EXPAND, "filters.label_margin").endswith("[0.25]")
    finally:
        monkeypatch.undo()
        options.config_field.cache_clear()
    assert options.field_help(options.EXPAND, "filters.label_margin").endswith("[0.1]")


def test_field_help_formats():
    assert options.field_help(options.EXPAND, "filters.chain").endswith(
        "[quality,script,similarity,dedup,label,novelty,diversity]"
    )
    # no default: the help alone, or the auto note
    assert "[" not in options.field_help(options.EXPAND, "generator.max_tokens_total")
    assert options.field_help(options.EXPAND, "task", auto="from the columns").endswith(
        "[auto: from the columns]"
    )
    assert options.field_help(options.TRAIN, "rank", text="LoRA rank") == "LoRA rank [8]"
    with pytest.raises(LookupError, match="filters.nope"):
        options.field_help(options.EXPAND, "filters.nope")
    with pytest.raises(LookupError, match="not a config section"):
        options.field_help(options.EXPAND, "seed.x")


def test_a_config_option_refuses_hand_written_help():
    with pytest.raises(TypeError, match="help_text"):
        options.ConfigOption(["--seed"], config=(options.EXPAND, "seed"), help="Random seed [13].")


def test_finetune_bundles_in_options_match_the_ones_in_cli_finetune():
    # cli/finetune.py still declares its own column/train options; the ones here are a drop-in
    from cli import finetune

    def params(bundle):
        return [
            (p.name, tuple(p.opts), p.type.name, p.default, p.metavar)
            for p in bundle(lambda: None).__click_params__
        ]

    assert params(options.train_options) == params(finetune.train_options)
    assert params(options.column_options) == params(finetune.column_options)


# -- engine errors in one place -------------------------------------------------------------------
def _group_with(callback) -> click.Group:
    group = EngineGroup("g")
    group.add_command(click.Command("run", callback=callback))
    return group


def test_an_engine_error_is_one_line_and_exit_1():
    from augment.errors import BackendError, ConfigError, DataError

    for exc in (
        ConfigError("seed must be an integer"),
        DataError("a.jsonl:3: bad row"),
        BackendError("no llama"),
    ):

        def boom(exc=exc):
            raise exc

        result = CliRunner().invoke(_group_with(boom), ["run"])
        assert result.exit_code == 1
        assert error_lines(result) == [f"Error: {exc}"]


def test_other_errors_keep_their_traceback():
    def boom():
        raise RuntimeError("a bug")

    result = CliRunner().invoke(_group_with(boom), ["run"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_engine_errors_as_a_decorator():
    from augment.errors import ConfigError

    @click.command()
    @engine_errors()
    def standalone():
        raise ConfigError("bad value")

    result = CliRunner().invoke(standalone)
    assert result.exit_code == 1 and error_lines(result) == ["Error: bad value"]


def test_the_augment_group_turns_a_subcommand_error_into_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("filters:\n  min_similarity: high\n", encoding="utf-8")
    result = invoke(["expand", "-c", bad, "--dump-config"])
    assert result.exit_code == 1
    assert error_lines(result) == ["Error: filters.min_similarity must be a number, got 'high'"]


# -- report tables ----------------------------------------------------------------------------------
def _manifest(recipe=None):
    return {
        "task": "classification",
        "language": {"used": "zh"},
        "embedder": {"model": "e5"},
        "counts": {
            "seeds": 10,
            "output_rows": 30,
            "candidates": 40,
            "kept": 20,
            "rejected": 20,
            "per_method": {
                "swap": {"generated": 20, "kept": 8, "rejected": 12},
                "synonym": {"generated": 20, "kept": 12, "rejected": 8},
            },
        },
        "recipe": recipe,
    }


REJECTED = [
    NS(method="swap", rejection=NS(stage="dedup", code=c)) for c in ("near", "near", "exact", "x")
] + [NS(method="synonym", rejection=NS(stage="label", code="margin"))]


def test_summary_text():
    from augment import report

    recipe = {
        "mode": "cv",
        "why": "no dev",
        "folds": 5,
        "score": {"seed_only": {"accuracy": 0.5}, "chosen": {"accuracy": 0.61}},
        "pseudo_label": {"fraction": 0, "by_fraction": {"0": {"accuracy": 0.5}, "0.5": {"accuracy": 0.4}}},
        "methods": {
            "swap": {"kept": True, "with": {"accuracy": 0.6}, "without": {"accuracy": 0.55}},
            "synonym": {"kept": False, "with": {"accuracy": 0.5}, "without": {"accuracy": 0.6}},
        },
    }
    out = Path("/tmp/out")
    assert report.summary(_manifest(recipe), REJECTED, out) == "\n".join(
        [
            "method   candidates  kept  rejected  top drop reasons",
            "swap             20     8        12  dedup:near 2, dedup:exact 1",
            "synonym          20    12         8  label:margin 1",
            "total            40    20        20",
            "",
            "recipe (no dev): proxy 5-fold CV accuracy seed-only 0.500 -> 0.610 with the rows kept",
            "  pseudo-label fraction kept per class: 0   (0: 0.500, 0.5: 0.400)",
            "  no pseudo-labels kept: none raised the proxy's score over the seeds alone",
            "  swap: kept: 0.600 with vs 0.550 without",
            "  synonym: dropped (lowers the score): 0.500 with vs 0.600 without",
            "",
            "classification, language zh, embedder e5: 10 seeds -> 30 rows",
            f"  {out / 'augmented.jsonl'}  seeds + kept rows, with lineage",
            f"  {out / 'rejected.jsonl'}  rejected candidates, with reasons",
            f"  {out / 'manifest.json'}  config, versions, counts, timings",
        ]
    )
    assert report.recipe_lines({"mode": "off", "why": "asked"}) == ["", "recipe: off (asked)"]
    assert report.recipe_lines({"mode": "auto", "why": "one class"}) == [
        "",
        "recipe: one class; nothing to choose from",
    ]
    assert "recipe" not in report.summary(_manifest(), REJECTED, out)


def test_summary_rows_are_data():
    from augment import report

    rows = report.summary_rows(_manifest(), report.drop_reasons(REJECTED))
    assert rows[0] == report.SUMMARY_HEADER
    assert rows[1] == ("swap", "20", "8", "12", "dedup:near 2, dedup:exact 1")
    assert rows[-1] == ("total", "40", "20", "20", "")


def test_plan_table():
    from augment import report

    plan = {
        "generator": "llama.cpp",
        "language": "zh-cn",
        "methods": [
            {"method": "swap", "seeds": 10},
            {
                "method": "self_instruct",
                "seeds": 10,
                "calls": 5,
                "prompt_tokens": 800,
                "completion_tokens_max": 1600,
            },
        ],
    }
    text = report.plan_table(plan, speeds={("llama.cpp", "zh"): 100.0})
    assert text.splitlines() == [
        "method         seeds  LLM calls  prompt tokens (est.)  completion tokens (max)  time (est.)",
        "swap           10     0          -                     -                        seconds",
        "self_instruct  10     5          800                   1600                     ~0.3 min",
    ]
    assert report.plan_rows(plan, speeds={})[2][-1] == "unknown (served)"
    assert report.plan_rows(plan)[0] == report.PLAN_HEADER  # the measured speeds by default
