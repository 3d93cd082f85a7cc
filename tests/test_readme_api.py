"""The README's Python API snippet runs verbatim from the repository root (on the samples/ files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def api_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section holds one python block"
    return blocks[0]


def test_the_snippet_reads_only_files_that_exist():
    code = api_snippet()
    for path in re.findall(r'"(samples/[^"]+)"', code):
        assert (ROOT / path).exists(), path
    assert "from finetune import evaluate" not in code.replace("from finetune.evaluate import evaluate", "")


@pytest.mark.models
def test_the_python_api_snippet_runs_twice(tmp_path, monkeypatch, capsys):
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    monkeypatch.chdir(tmp_path)
    code = compile(api_snippet(), "README.md#python-api", "exec")
    for _ in range(2):  # the second run replaces the output folders (overwrite=True)
        namespace: dict = {}
        exec(code, namespace)
        assert namespace["run"].metrics["dev"]["n"] > 0
        assert len(namespace["model"].predict(namespace["pool"])) == len(namespace["pool"])
        assert namespace["report"]["summary"]
    assert (tmp_path / "out" / "zh" / "augmented.jsonl").exists()
    assert (tmp_path / "models" / "zh" / "manifest.json").exists()
