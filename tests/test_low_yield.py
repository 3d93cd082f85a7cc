"""A run that keeps almost nothing says so, with its top drop reasons and the flag that would change
each (issue 13). Model-free: hashing embedder."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from augment.report import low_yield_lines
from cli.main import cli

ZH = Path(__file__).resolve().parents[1] / "samples" / "zh_bank_intents" / "seeds.jsonl"


def test_a_run_that_keeps_almost_nothing_says_why_and_what_to_change(tmp_path):
    # a similarity floor no rewrite reaches: every candidate fails it
    args = ["expand", str(ZH), "-o", str(tmp_path / "out"), "--embedder", "hashing", "--methods", "swap,delete",
            "--recipe", "off", "--filters", "similarity", "--min-similarity", "0.99", "--max-similarity", "0.999"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "kept only 0 of" in result.output
    assert "similarity:below_min" in result.output and "--min-similarity (lower it)" in result.output


def test_a_normal_run_says_nothing_about_it():
    manifest = {"counts": {"candidates": 100, "kept": 40}}
    assert low_yield_lines(manifest, {"swap": {"dedup:near_seed": 60}}) == []
    manifest = {"counts": {"candidates": 100, "kept": 5}}
    lines = low_yield_lines(manifest, {"swap": {"dedup:near_seed": 60}, "delete": {"recipe:lowers_score": 35}})
    assert lines[1] == "kept only 5 of 100 candidates (5%); most were dropped by:"
    assert lines[2].startswith("  dedup:near_seed 60: --near-duplicate") and "--recipe off" in lines[3]
