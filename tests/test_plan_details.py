"""`--dump-config` lists the methods the run would use (resolved from the data as the run resolves
them), and `--dry-run` shows each method's backend and model and one rendered prompt per LLM method.
Neither loads a model."""

from __future__ import annotations

import yaml
from conftest import ZH_BANK, ZH_INSTRUCTIONS, invoke

from augment.methods.lexical import default_methods


def _names(output: str) -> list[str] | None:
    return yaml.safe_load(output)["methods"]["names"]


def test_dump_config_lists_the_methods_that_will_run():
    result = invoke(["expand", ZH_BANK / "seeds.jsonl", "--dump-config"])
    assert result.exit_code == 0, result.output
    assert _names(result.output) == default_methods("zh")
    pool = ZH_BANK / "unlabeled.jsonl"
    result = invoke(["expand", ZH_BANK / "seeds.jsonl", "--unlabeled", pool, "--dump-config"])
    assert _names(result.output) == [*default_methods("zh"), "pseudo_label"]
    result = invoke(["expand", ZH_INSTRUCTIONS / "seeds.jsonl", "--dump-config"])
    assert _names(result.output) == ["paraphrase"]  # instruction data: no lexical noise
    result = invoke(["expand", ZH_BANK / "seeds.jsonl", "-m", "swap", "--dump-config"])
    assert _names(result.output) == ["swap"]


def test_dump_config_without_seeds_says_what_null_means():
    result = invoke(["expand", "--dump-config"])
    assert result.exit_code == 0, result.output
    assert _names(result.output) is None and "give SEEDS to list them" in result.output


def test_dry_run_shows_backend_model_and_a_prompt(tmp_path):
    result = invoke(
        ["expand", ZH_BANK / "seeds.jsonl", "-o", tmp_path / "o", "-m", "swap,self_instruct", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    lines = out.splitlines()
    header = next(ln for ln in lines if ln.startswith("method "))
    assert header.split()[-2:] == ["backend", "model"]
    swap = next(ln for ln in lines if ln.startswith("swap "))
    assert swap.split()[-2:] == ["nlpaug", "-"]
    si = next(ln for ln in lines if ln.startswith("self_instruct "))
    assert "llama.cpp" in si or "auto" in si
    assert "self_instruct prompt (first seed)" in out
    first = (ZH_BANK / "seeds.jsonl").read_text(encoding="utf-8").splitlines()[0]
    label = yaml.safe_load(first)["label"]
    assert label in out.split("self_instruct prompt (first seed)", 1)[1]
    assert not (tmp_path / "o").exists()


def test_dry_run_renders_the_paraphrase_prompt():
    result = invoke(["expand", ZH_INSTRUCTIONS / "seeds.jsonl", "--dry-run"])
    assert result.exit_code == 0, result.output
    first = yaml.safe_load((ZH_INSTRUCTIONS / "seeds.jsonl").read_text(encoding="utf-8").splitlines()[0])
    prompt = result.output.split("paraphrase prompt (first seed)", 1)[1]
    assert first["instruction"] in prompt
