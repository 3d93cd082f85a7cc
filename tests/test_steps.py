"""The step registry: `augment list`, typed params, and a new method added in one place.

The ``Shout`` method below is the whole of what a new method takes: a config dataclass and a class
registered with it. The run validates its params, stamps its lineage, rejects its echoes and records
it in the manifest with no other file touched. Model-free (hashing embedder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from augment import steps
from augment.config import ExpandConfig
from augment.errors import ConfigError
from augment.methods import Outcome, SeedMethod, register_method
from augment.pipeline import expand
from cli.main import cli

ZH = Path(__file__).resolve().parents[1] / "samples" / "zh_bank_intents" / "seeds.jsonl"


@dataclass
class ShoutConfig:
    marks: int = field(default=1, metadata={"help": "how many times to append 急 (urgent)"})

    def __post_init__(self) -> None:
        if self.marks < 1:
            raise ConfigError(f"marks must be >= 1, got {self.marks}")


class Shout(SeedMethod):
    backend = "python"

    def transform(self, seed, field, n, run_seed):
        text = seed.fields[field]
        # slot 0 echoes an input that is already urgent: the base rejects it (stage generate)
        return [Outcome(text if "急" in text and k == 0 else text + "急" * (self.config.marks + k)) for k in range(n)]


@pytest.fixture
def shout():
    register_method("shout", ShoutConfig, summary="appends 急 (an example)")(Shout)
    yield
    steps._REGISTRY.pop(("method", "shout"))


def test_a_method_added_in_one_place_runs_end_to_end(shout, tmp_path):
    config = ExpandConfig.from_dict(
        {"embedder": "hashing", "recipe": {"mode": "off"}, "filters": {"chain": ["quality", "dedup"]},
         "methods": {"names": ["shout"], "params": {"shout": {"marks": 2}}}}
    )
    res = expand(ZH, tmp_path / "out", config)
    assert res.kept and all(r.method == "shout" for r in res.kept)
    row = json.loads((tmp_path / "out" / "augmented.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert row["params"] == {"marks": 2} and row["field"] == "text" and row["backend"] == "python"
    assert row["text"].endswith("急急") and row["parent_ids"][0].startswith("s-")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["methods"][0] == {"name": "shout", "backend": "python", "model": None, "params": {"marks": 2}}


def test_params_of_a_new_method_are_typed_and_range_checked(shout):
    with pytest.raises(ConfigError, match=r"^methods\.params\.shout\.marks must be >= 1, got 0$"):
        ExpandConfig.from_dict({"methods": {"params": {"shout": {"marks": 0}}}})
    with pytest.raises(ConfigError, match=r"^methods\.params\.shout\.marks must be an integer, got 'two'$"):
        ExpandConfig.from_dict({"methods": {"params": {"shout": {"marks": "two"}}}})
    with pytest.raises(ConfigError, match=r"unknown parameter 'mark' \(did you mean 'marks'\?\); shout has: marks"):
        ExpandConfig.from_dict({"methods": {"params": {"shout": {"mark": 2}}}})


def test_echoes_come_back_rejected_not_kept(shout):
    from augment.context import RunContext
    from augment.methods import build_method
    from augment.record import CLASSIFICATION, seed_record

    seed = seed_record(CLASSIFICATION, {"text": "急！卡丢了"}, "card_lost")
    m = build_method("shout", {})
    m.setup(RunContext(seeds=[seed], language="zh"))
    out = m.generate([seed], "text", 2, 13)
    assert [c.rejection.code if c.rejection else None for c in out] == ["unchanged", None]
    assert all(c.lineage.field == "text" and c.lineage.relation == "rewrite" for c in out)


def test_unknown_names_get_a_hint():
    with pytest.raises(ConfigError, match=r"unknown method 'swapp' \(did you mean 'swap'\?\)"):
        steps.spec("method", "swapp")
    with pytest.raises(ConfigError, match=r"unknown method 'shout'"):
        ExpandConfig.from_dict({"methods": {"names": ["shout"]}})


def test_augment_list_prints_every_step_with_its_parameters():
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    for name in steps.names("method") + steps.names("filter"):
        assert f"  {name}" in result.output
    assert "aug_p (float) = 0.15  fraction of words" in result.output
    data = json.loads(CliRunner().invoke(cli, ["list", "methods", "--json"]).output)
    swap = next(m for m in data["method"] if m["name"] == "swap")
    assert {p["name"]: p["default"] for p in swap["parameters"]} == {"aug_p": 0.15, "aug_min": 1, "aug_max": 6}
    assert all(m["summary"] for m in data["method"])
