"""finetune/recipes.py and finetune/predict.py: one recipe per (task, method) behind the Recipe
protocol, and `augment predict` as a thin wrapper over predict_file (JSONL on stdout without -o).
Model-free: the embedding recipe runs on random vectors around one centre per label."""

from __future__ import annotations

import json

import pytest
from conftest import invoke, read_jsonl, write_jsonl
from test_finetune_heads import fake_vectors

from augment.errors import ConfigError
from finetune.config import METHODS, TrainConfig, resolved

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def fake_embedder(monkeypatch):
    import finetune.embedding as emb

    monkeypatch.setattr(emb, "encode", lambda spec, texts: fake_vectors(list(texts)))
    monkeypatch.setattr(emb, "embedder_id", lambda spec: f"fake:{spec}")


def rows(n: int, prefix: str, labelled: bool = True) -> list[dict]:
    out = []
    for i in range(n):
        row = {"text": f"{prefix} {i} on topic{i % 3} case"}
        if labelled:
            row["label"] = f"L{i % 3}"
        out.append(row)
    return out


# -- the registry ---------------------------------------------------------------------------------
def test_every_method_has_one_recipe_per_task():
    from finetune.recipes import Recipe, methods_for, recipe_for, recipes

    registered = recipes()
    assert list(registered) == ["classifier", "sft", "embedding", "setfit"]
    assert all(isinstance(r, Recipe) for r in registered.values())
    assert methods_for("classification") == ("lora", "ia3", "prompt", "embedding", "setfit")
    assert methods_for("instruction") == ("lora", "ia3", "prefix", "prompt")
    assert {m for task in ("classification", "instruction") for m in methods_for(task)} == set(METHODS) - {
        "auto"
    }
    assert recipe_for("classification", "lora").name == "classifier"
    assert recipe_for("instruction", "lora").name == "sft"
    assert recipe_for("classification", "setfit").manifest_key == "embedding"
    with pytest.raises(ConfigError, match="prefix tuning is not available for classification"):
        recipe_for("classification", "prefix")
    with pytest.raises(ConfigError, match="does not apply to instruction data"):
        recipe_for("instruction", "setfit")


def test_recipes_hold_their_defaults():
    c = resolved(TrainConfig(), task="classification", method="embedding", n_rows=60)
    assert (c.epochs, c.learning_rate, c.batch_size, c.max_length) == (None, None, None, None)
    c = resolved(TrainConfig(), task="classification", method="setfit", n_rows=60)
    assert (c.epochs, c.learning_rate, c.batch_size, c.max_length) == (1.0, 2e-5, 16, 128)
    c = resolved(TrainConfig(), task="instruction", method="prompt", n_rows=40)
    assert (c.epochs, c.learning_rate, c.batch_size, c.max_length) == (10, 3e-2, 4, 512)
    given = TrainConfig(epochs=2)
    resolved(given, task="classification", method="lora", n_rows=60)
    assert given.learning_rate is None and given.method == "auto"  # the caller's config is not changed


def test_predictor_refuses_the_wrong_call(fake_embedder, tmp_path):
    from finetune.data import read_examples
    from finetune.predict import Predictor
    from finetune.train import fit, plan

    ex = read_examples(write_jsonl(tmp_path / "train.jsonl", rows(18, "note")))
    p = plan(ex, TrainConfig(method="embedding", model="minilm"), language="en")
    predictor = fit(ex, None, p, tmp_path / "w").predictor
    assert predictor.recipe.name == "embedding"
    assert len(predictor.predict(ex)) == 18 and predictor.logits(ex).shape == (18, 3)
    with pytest.raises(ConfigError, match="generate\\(\\) is for instruction models"):
        predictor.generate(ex)
    with pytest.raises(ConfigError, match="not a model folder"):
        Predictor.load(tmp_path)


# -- augment predict ------------------------------------------------------------------------------
@pytest.fixture
def trained(tmp_path, fake_embedder):
    from finetune.train import finetune

    train = write_jsonl(tmp_path / "train.jsonl", rows(18, "note"))
    test = write_jsonl(tmp_path / "test.jsonl", rows(9, "fresh"))
    result = finetune(train, tmp_path / "m", TrainConfig(method="embedding", model="minilm"), test=test)
    return tmp_path / "m", test, result


def test_predict_file(trained, tmp_path):
    from finetune.predict import predict_file

    model, test, result = trained
    got = predict_file(model, test)
    assert got.metrics == result.metrics["test"] and got.reproduces is True
    assert got.rows == read_jsonl(model / "test_predictions.jsonl")
    texts = write_jsonl(tmp_path / "texts.jsonl", rows(4, "new", labelled=False))
    got = predict_file(model, texts)
    assert got.metrics is None and got.reproduces is None and len(got.rows) == 4
    assert all("gold" not in r for r in got.rows)


def test_predict_without_out_prints_jsonl_on_stdout(trained, tmp_path):
    model, test, _ = trained
    result = invoke(["predict", model, test])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [json.loads(line) for line in lines] == read_jsonl(model / "test_predictions.jsonl")
    assert "reproduces the test metrics recorded at training time" in result.stderr
    assert "accuracy" in result.stderr and "accuracy" not in result.stdout
    texts = write_jsonl(tmp_path / "texts.jsonl", rows(4, "new", labelled=False))
    result = invoke(["predict", model, texts])
    assert result.exit_code == 0, result.output
    preds = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(preds) == 4 and {"id", "text", "label", "confidence"} == set(preds[0])
    assert result.stderr == ""


def test_predict_with_out_writes_the_file(trained, tmp_path):
    model, test, _ = trained
    out = tmp_path / "preds.jsonl"
    result = invoke(["predict", model, test, "-o", out])
    assert result.exit_code == 0, result.output
    assert "9 predictions -> " in result.stdout and "reproduces the test metrics" in result.stdout
    assert read_jsonl(out) == read_jsonl(model / "test_predictions.jsonl")
