"""The saved fine-tuned folder carries a real model card (data, lineage counts, metrics) and a
portable base-model reference in adapter_config.json; the local path is in the manifest only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ZH_BANK, read_jsonl, write_jsonl
from tiny_models import build_bert, expand_like

from finetune.config import TrainConfig
from finetune.data import read_examples
from finetune.trainer import portable_base_model

pytestmark = pytest.mark.filterwarnings("ignore")


def test_portable_base_model_names():
    assert (
        portable_base_model({"spec": "smollm2-135m", "path": "/x/y"}) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert (
        portable_base_model({"spec": "Qwen/Qwen2.5-0.5B", "path": "Qwen/Qwen2.5-0.5B"}) == "Qwen/Qwen2.5-0.5B"
    )
    assert portable_base_model({"spec": "/opt/models/my-bert", "path": "/opt/models/my-bert"}) == "my-bert"
    assert portable_base_model({"spec": "/m/tiny.Q4_K_M.gguf", "path": "/cache/x"}) == "tiny.Q4_K_M"


@pytest.mark.models
def test_saved_peft_folder_has_a_card_and_a_portable_base(tmp_path):
    from finetune.predict import Predictor
    from finetune.train import finetune

    bert = build_bert(tmp_path / "tiny-bert")
    rows = read_jsonl(ZH_BANK / "seeds.jsonl")
    seeds = [r for i, r in enumerate(rows) if i % 3]
    test = write_jsonl(tmp_path / "test.jsonl", [r for i, r in enumerate(rows) if not i % 3])
    kids = {r["id"]: [r["text"] + "吗"] for r in seeds}
    data = expand_like(tmp_path / "augmented.jsonl", seeds, kids)
    out = tmp_path / "model"
    result = finetune(data, out, TrainConfig(model=str(bert), method="lora", epochs=1), test=test)

    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == Path(bert).name
    model = result.manifest["model"]
    assert model["base_model"] == Path(bert).name and model["local_path"] == str(Path(bert).resolve())
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["model"]["local_path"] == model["local_path"]

    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "library_name: peft" in card
    train_info = result.manifest["data"]["train"]
    assert f"- train: {train_info['rows']} rows" in card
    assert f"seed {train_info['by_origin']['seed']}" in card and "augmented" in card
    assert "| test |" in card and f"{result.metrics['test']['accuracy']:.4f}" in card
    assert str(Path(bert).resolve()) not in card
    # still loads (the backbone from the manifest's local path) and scores the same
    assert Predictor.load(out).score(read_examples(test)) == result.metrics["test"]
