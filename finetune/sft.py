"""Instruction fine-tuning (causal-LM SFT) with the model's chat template, loss on the response only.

Each row becomes a user turn (instruction, then the input after a blank line when there is one) and
an assistant turn (the output). The prompt is the chat template rendered up to the generation prompt;
its tokens get label -100, so only the response tokens (and the template's end-of-turn tokens, which
teach the model to stop) carry loss. A tokenizer without a chat template falls back to a plain
"### Instruction / ### Response" format, recorded in the manifest. :class:`SFTRecipe` is the ``sft``
recipe of :mod:`finetune.recipes` built on these functions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from augment.record import INSTRUCTION, Record

from .config import TrainConfig
from .data import Examples
from .recipes import register
from .trainer import PeftRecipe

logger = logging.getLogger(__name__)

IGNORE = -100
PLAIN_PROMPT = "### Instruction:\n{user}\n\n### Response:\n"


def user_message(row: Record) -> str:
    instruction = row.fields["instruction"].strip()
    extra = (row.fields.get("input") or "").strip()
    return f"{instruction}\n\n{extra}" if extra else instruction


def prompt_text(tok, row: Record) -> str:
    messages = [{"role": "user", "content": user_message(row)}]
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return (tok.bos_token or "") + PLAIN_PROMPT.format(user=user_message(row))


def full_text(tok, row: Record) -> str:
    messages = [
        {"role": "user", "content": user_message(row)},
        {"role": "assistant", "content": row.fields["output"]},
    ]
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, tokenize=False)
    return prompt_text(tok, row) + row.fields["output"] + (tok.eos_token or "")


def template_kind(tok) -> str:
    return "chat_template" if getattr(tok, "chat_template", None) else "plain ### Instruction/### Response"


def encode_row(tok, row: Record, max_length: int) -> dict[str, list[int]] | None:
    """input_ids, attention_mask and labels with the prompt masked; None when no response token fits."""
    prompt = prompt_text(tok, row)
    full = full_text(tok, row)
    if not full.startswith(prompt):
        raise RuntimeError("the chat template renders the prompt differently with and without the answer")
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tok(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    ids = (p_ids + r_ids)[:max_length]
    labels = ([IGNORE] * len(p_ids) + r_ids)[:max_length]
    if all(label == IGNORE for label in labels):
        return None
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def encode(tok, examples: Examples, max_length: int, weights=None):
    import datasets

    rows, skipped = [], 0
    for i, r in enumerate(examples.rows):
        enc = encode_row(tok, r, max_length)
        if enc is None:
            skipped += 1
        else:
            if weights is not None:
                enc["weight"] = float(weights[i])
            rows.append(enc)
    if skipped:
        logger.warning("%s: %d rows skipped: the prompt alone fills max_length", examples.path, skipped)
    if not rows:
        from augment.errors import DataError

        raise DataError(f"{examples.path}: no row fits in max_length={max_length} tokens")
    return datasets.Dataset.from_list(rows)


class Collator:
    """Right-pads input_ids (pad id), attention_mask (0) and labels (-100); passes row weights on."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, Any]]):
        import torch

        n = max(len(f["input_ids"]) for f in features)
        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for f in features:
            pad = n - len(f["input_ids"])
            batch["input_ids"].append(list(f["input_ids"]) + [self.pad_id] * pad)
            batch["attention_mask"].append(list(f["attention_mask"]) + [0] * pad)
            batch["labels"].append(list(f["labels"]) + [IGNORE] * pad)
        out = {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
        if "weight" in features[0]:
            out["weight"] = torch.tensor([float(f["weight"]) for f in features], dtype=torch.float32)
        return out


def load_backbone(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from augment.errors import BackendError

    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
    except Exception as exc:
        raise BackendError(f"model {path!r} could not be loaded as a causal LM: {exc}") from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, model


def train(
    model_path: str, train_set: Examples, dev_set: Examples | None, config: TrainConfig, work_dir: Path,
    weights: Sequence[float] | None = None,
):  # fmt: skip
    """Fine-tune; returns (peft model, tokenizer, log history, trainer). Row ``weights`` other than
    all 1 weigh each row's response-token loss."""
    from peft import TaskType, get_peft_model
    from transformers import set_seed

    from . import trainer as tr

    set_seed(config.seed)
    tok, model = load_backbone(model_path)
    model = get_peft_model(model, tr.peft_config(model, config, TaskType.CAUSAL_LM))
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("%s on %s: %d of %d parameters trainable", config.method, model_path, trainable, total)
    weighted = not tr.uniform(weights)
    train_ds = encode(tok, train_set, config.max_length, weights if weighted else None)
    dev_ds = encode(tok, dev_set, config.max_length) if dev_set is not None else None
    trainer = tr.trainer_class(weighted)(
        model=model,
        args=tr.training_arguments(
            config, work_dir, has_dev=dev_ds is not None, metric="eval_loss", greater=False
        ),
        train_dataset=train_ds,
        eval_dataset=dev_ds,
        data_collator=Collator(tok.pad_token_id),
        processing_class=tok,
        callbacks=tr.callbacks(config, dev_ds is not None),
    )
    trainer.train()
    return trainer.model, tok, tr.history(trainer), trainer


def load(model_path: str, adapter_dir: Path):
    from peft import PeftModel
    from transformers import AutoTokenizer

    _, model = load_backbone(model_path)
    tok = AutoTokenizer.from_pretrained(str(adapter_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    return model, tok


def response_loss(
    model, tok, examples: Examples, *, max_length: int, batch_size: int = 8
) -> dict[str, float]:
    """Mean cross-entropy per response token (and its perplexity), summed over rows then divided, so
    it does not depend on how rows are batched."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    rows = [e for e in (encode_row(tok, r, max_length) for r in examples.rows) if e is not None]
    collate = Collator(tok.pad_token_id)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(device) for k, v in collate(rows[start : start + batch_size]).items()}
            labels = batch.pop("labels")
            logits = model(**batch).logits.float()
            shift_logits = logits[:, :-1].reshape(-1, logits.size(-1))
            shift_labels = labels[:, 1:].reshape(-1)
            loss = torch.nn.functional.cross_entropy(
                shift_logits, shift_labels, ignore_index=IGNORE, reduction="sum"
            )
            total += float(loss)
            count += int((shift_labels != IGNORE).sum())
    mean = total / max(count, 1)
    return {"n": len(rows), "response_tokens": count, "loss": mean, "perplexity": math.exp(min(mean, 50.0))}


def generate(
    model, tok, rows: Sequence[Record], *, max_new_tokens: int = 128, batch_size: int = 8
) -> list[str]:
    """Greedy answers to each row's prompt (left-padded batches)."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    side = tok.padding_side
    tok.padding_side = "left"
    out: list[str] = []
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                prompts = [prompt_text(tok, r) for r in rows[start : start + batch_size]]
                enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt").to(device)
                ids = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
                new = ids[:, enc["input_ids"].shape[1] :]
                out.extend(t.strip() for t in tok.batch_decode(new, skip_special_tokens=True))
    finally:
        tok.padding_side = side
    return out


class SFTRecipe(PeftRecipe):
    """Instruction tuning; ``predict`` generates greedy answers and ``score`` is the response-token
    loss (manifest section ``sft``: the prompt template used)."""

    name = "sft"
    task = INSTRUCTION
    methods = ("lora", "ia3", "prefix", "prompt")
    manifest_key = "sft"
    batch_size, max_length, max_epochs = 4, 512, 10
    learning_rates = {"lora": 5e-4, "ia3": 5e-3, "prefix": 5e-3, "prompt": 3e-2}

    def train_model(self, model_path, train_set, dev_set, plan, work_dir, weights):
        from .predict import Predictor

        model, tok, hist, trainer = train(model_path, train_set, dev_set, plan.config, work_dir, weights)
        predictor = Predictor(plan.task, plan.method, [], model, tok, max_length=plan.config.max_length)
        return predictor, hist, trainer

    def load_model(self, model_path, out, manifest):
        return load(model_path, out)

    def save(self, predictor, out: Path) -> dict[str, Any]:
        predictor.model.save_pretrained(str(out))
        predictor.tokenizer.save_pretrained(str(out))
        return {"template": template_kind(predictor.tokenizer)}

    def predict(self, predictor, examples: Examples, *, max_new_tokens: int = 128) -> list[dict[str, Any]]:
        answers = generate(predictor.model, predictor.tokenizer, examples.rows, max_new_tokens=max_new_tokens)
        return [
            {
                "id": r.id,
                "instruction": r.fields["instruction"],
                "input": r.fields.get("input", ""),
                "output": a,
            }
            for r, a in zip(examples.rows, answers, strict=True)
        ]

    def score(self, predictor, examples: Examples) -> dict[str, Any]:
        if not any(r.fields.get("output") for r in examples.rows):
            from augment.errors import DataError

            raise DataError(f"{examples.path}: no outputs to score")
        return response_loss(predictor.model, predictor.tokenizer, examples, max_length=predictor.max_length)


register(SFTRecipe())
