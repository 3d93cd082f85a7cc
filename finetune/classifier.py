"""Sequence classification with PEFT: an encoder (BERT-style) or decoder (Llama, Gemma) backbone, a
classification head trained in ``modules_to_save``, Trainer with early stopping on a dev split.

The adapter folder holds the LoRA/IA3/prompt weights *and* the head; :func:`load` rebuilds the
backbone with the same label count and applies the adapter, and :func:`predict_logits` is the one
inference path used both right after training and after reloading, so the metrics reproduce.
:class:`ClassifierRecipe` is the ``classifier`` recipe of :mod:`finetune.recipes` built on them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augment.record import CLASSIFICATION

from .config import TrainConfig
from .data import Examples
from .recipes import Classifies, register
from .trainer import PeftRecipe

logger = logging.getLogger(__name__)


def _is_decoder(model_config) -> bool:
    return not getattr(model_config, "is_encoder_decoder", False) and model_config.model_type not in (
        "bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert", "electra", "albert",
        "mpnet", "camembert", "ernie", "nezha", "modernbert",
    )  # fmt: skip


def _no_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in record.getMessage()


def load_backbone(path: str, labels: Sequence[str], method: str):
    """Tokenizer and *ForSequenceClassification model with ``len(labels)`` outputs (head random)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from augment.errors import BackendError

    # the load report would warn that the head is missing from the checkpoint: it always is here
    # (it is trained, or restored from the adapter, next). A filter, not a level: transformers runs
    # its tensor-parallel plan check (and warns) when this logger's level is WARNING or above.
    report = logging.getLogger("transformers.modeling_utils")
    report.addFilter(_no_load_report)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
    except Exception as exc:
        raise BackendError(f"model {path!r} could not be loaded for classification: {exc}") from exc
    finally:
        report.removeFilter(_no_load_report)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    decoder = _is_decoder(model.config)
    # A decoder classifies from its last token. With prompt tuning peft hands the model
    # inputs_embeds, and the model then takes the last position, whatever it is: pad on the left.
    tok.padding_side = "left" if decoder and method == "prompt" else "right"
    return tok, model


def _encode(tok, examples: Examples, max_length: int, label2id: dict[str, int] | None, weights=None):
    import datasets

    texts = [r.fields["text"] for r in examples.rows]
    pairs = [r.fields.get("text_pair") for r in examples.rows]
    enc = tok(texts, pairs if any(pairs) else None, truncation=True, max_length=max_length)
    cols: dict[str, Any] = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if "token_type_ids" in enc:
        cols["token_type_ids"] = enc["token_type_ids"]
    if label2id is not None:
        unknown = sorted({r.label for r in examples.rows} - set(label2id))
        if unknown:
            from augment.errors import DataError

            raise DataError(f"{examples.path}: labels not seen in training: {', '.join(unknown)}")
        cols["labels"] = [label2id[r.label] for r in examples.rows]
    if weights is not None:
        cols["weight"] = [float(w) for w in weights]
    return datasets.Dataset.from_dict(cols)


def _compute_metrics(labels: Sequence[str]):
    from .metrics import accuracy, macro_f1

    def compute(pred) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        guess = [labels[i] for i in np.asarray(logits).argmax(-1)]
        gold = [labels[i] for i in np.asarray(pred.label_ids)]
        return {"accuracy": accuracy(gold, guess), "macro_f1": macro_f1(gold, guess)}

    return compute


def train(
    model_path: str, train_set: Examples, dev_set: Examples | None, config: TrainConfig, work_dir: Path,
    weights: Sequence[float] | None = None,
) -> tuple[Any, Any, list[str], list[dict[str, Any]], Any]:  # fmt: skip
    """Fine-tune; returns (peft model, tokenizer, labels, log history, trainer). The model is the best one on
    the dev split when there is one (early stopping), else the last. Row ``weights`` other than all 1
    weigh each row's loss."""
    from peft import TaskType, get_peft_model
    from transformers import DataCollatorWithPadding, set_seed

    from . import trainer as tr

    labels = train_set.labels
    if len(labels) < 2:
        from augment.errors import DataError

        raise DataError(f"{train_set.path}: classification needs at least two labels, found {labels}")
    set_seed(config.seed)
    tok, model = load_backbone(model_path, labels, config.method)
    heads = tr.head_modules(model)
    model = get_peft_model(model, tr.peft_config(model, config, TaskType.SEQ_CLS, modules_to_save=heads))
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("%s on %s: %d of %d parameters trainable", config.method, model_path, trainable, total)
    label2id = {label: i for i, label in enumerate(labels)}
    weighted = not tr.uniform(weights)
    train_ds = _encode(tok, train_set, config.max_length, label2id, weights if weighted else None)
    dev_ds = _encode(tok, dev_set, config.max_length, label2id) if dev_set is not None else None
    trainer = tr.trainer_class(weighted)(
        model=model,
        args=tr.training_arguments(
            config, work_dir, has_dev=dev_ds is not None, metric="macro_f1", greater=True
        ),
        train_dataset=train_ds,
        eval_dataset=dev_ds,
        data_collator=DataCollatorWithPadding(tok),
        processing_class=tok,
        compute_metrics=_compute_metrics(labels),
        callbacks=tr.callbacks(config, dev_ds is not None),
    )
    trainer.train()
    return trainer.model, tok, labels, tr.history(trainer), trainer


def save(model, tok, out: Path) -> list[str]:
    """Write the adapter (with the head) and the tokenizer; returns the head's tensor names as saved."""
    from safetensors import safe_open

    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    return [k for k in keys if any(f"{h}." in k for h in ("classifier", "score", "classification_head"))]


def load(model_path: str, adapter_dir: Path, labels: Sequence[str], method: str):
    """Backbone + saved adapter (head included), in eval mode."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    _, model = load_backbone(model_path, labels, method)
    tok = AutoTokenizer.from_pretrained(str(adapter_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left" if _is_decoder(model.config) and method == "prompt" else "right"
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    return model, tok


def predict_logits(
    model, tok, texts: Sequence[str], pairs: Sequence[str | None] | None = None, *, max_length: int,
    batch_size: int = 32,
) -> np.ndarray:  # fmt: skip
    """Logits (n, n_labels) in input order; batches of similar length, on the model's device."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.num_labels), np.float32)
    use_pairs = pairs is not None and any(pairs)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tok(
                [texts[i] for i in idx],
                [pairs[i] for i in idx] if use_pairs else None,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            enc = {k: v.to(device) for k, v in enc.items()}
            logits = model(**enc).logits
            out[idx] = logits.float().cpu().numpy()
    return out


class ClassifierRecipe(Classifies, PeftRecipe):
    """PEFT sequence classification; the adapter folder holds the head (manifest section ``head``:
    the head's tensors as saved). Prefix tuning is not offered: transformers 5's
    *ForSequenceClassification models refuse the past_key_values it needs."""

    name = "classifier"
    task = CLASSIFICATION
    methods = ("lora", "ia3", "prompt")
    manifest_key = "head"
    batch_size, max_length, max_epochs = 16, 128, 30
    # LoRA and the head move slowly at 1e-4 on so few steps; IA3 and soft prompts are a handful of
    # scalings/vectors and need much more
    learning_rates = {"lora": 1e-3, "ia3": 1e-2, "prompt": 3e-2}

    def train_model(self, model_path, train_set, dev_set, plan, work_dir, weights):
        from .predict import Predictor

        model, tok, labels, hist, trainer = train(
            model_path, train_set, dev_set, plan.config, work_dir, weights
        )
        predictor = Predictor(plan.task, plan.method, labels, model, tok, max_length=plan.config.max_length)
        return predictor, hist, trainer

    def load_model(self, model_path, out, manifest):
        return load(model_path, out, manifest["labels"], manifest["method"])

    def save(self, predictor, out: Path) -> dict[str, Any]:
        saved = save(predictor.model, predictor.tokenizer, out)
        if not saved:
            raise RuntimeError("the classification head is missing from the saved adapter")
        return {"saved_tensors": saved}

    def logits(self, predictor, examples: Examples) -> np.ndarray:
        texts = [r.fields["text"] for r in examples.rows]
        pairs = [r.fields.get("text_pair") for r in examples.rows]
        return predict_logits(
            predictor.model, predictor.tokenizer, texts, pairs, max_length=predictor.max_length
        )


register(ClassifierRecipe())
