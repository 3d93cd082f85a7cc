"""What classification and instruction fine-tuning share: the PEFT config, the Trainer arguments.

Everything goes through transformers' Trainer, so the same code runs on a CPU, one GPU, or several
under ``accelerate launch`` / ``torchrun`` (Trainer picks the device and wraps the model in DDP);
nothing here names a device.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from .config import TrainConfig

logger = logging.getLogger(__name__)

# IA3 target modules for decoder families peft has no default for (attention k/v + MLP down)
_IA3_DECODER = {"target_modules": ["k_proj", "v_proj", "down_proj"], "feedforward_modules": ["down_proj"]}


def head_modules(model) -> list[str]:
    """Names of the classification head(s) on a *ForSequenceClassification model: ``classifier``
    (BERT-style encoders), ``score`` (decoders such as Llama and Gemma)."""
    names = [n for n in ("classifier", "score", "classification_head") if hasattr(model, n)]
    if not names:
        raise RuntimeError(f"{type(model).__name__}: no classification head found (classifier/score)")
    return names


def peft_config(model, config: TrainConfig, task_type: str, *, modules_to_save: list[str] | None = None):
    """The peft config for ``config.method``; for classification the head is in modules_to_save, so
    it is trained and saved with the adapter (PEFT issues #310, #577: a head left out reloads random)."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig

    method = config.method
    if method == "lora":
        return LoraConfig(
            task_type=task_type,
            r=config.rank,
            lora_alpha=2 * config.rank,
            lora_dropout=0.05,
            target_modules="all-linear",
            modules_to_save=modules_to_save,
        )
    if method == "ia3":
        kwargs: dict[str, Any] = {}
        try:
            from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as known
        except ImportError:  # pragma: no cover - older peft
            known = {}
        if model.config.model_type not in known:
            kwargs = dict(_IA3_DECODER)
        return IA3Config(task_type=task_type, modules_to_save=modules_to_save, **kwargs)
    if method == "prompt":
        return PromptTuningConfig(
            task_type=task_type, num_virtual_tokens=config.virtual_tokens, modules_to_save=modules_to_save
        )
    if method == "prefix":
        return PrefixTuningConfig(task_type=task_type, num_virtual_tokens=config.virtual_tokens)
    raise ValueError(f"not a PEFT method: {method}")


def _cpu_only_distributed() -> bool:
    """torchrun / accelerate launch on a machine without an accelerator: Trainer must be told
    (use_cpu), or each process trains alone with no gradient sync."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch

    try:
        return not torch.accelerator.is_available()
    except AttributeError:  # torch < 2.6
        return not torch.cuda.is_available()


def training_arguments(config: TrainConfig, work_dir: Path, *, has_dev: bool, metric: str, greater: bool):
    from transformers import TrainingArguments

    strategy = "epoch" if has_dev else "no"
    return TrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=float(config.epochs),
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=max(config.batch_size, 32),
        warmup_steps=0.06,
        weight_decay=0.0,
        lr_scheduler_type="linear",
        eval_strategy=strategy,
        save_strategy=strategy,
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=has_dev,
        metric_for_best_model=metric if has_dev else None,
        greater_is_better=greater if has_dev else None,
        logging_strategy="epoch",
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=not logger.isEnabledFor(logging.INFO),
        use_cpu=_cpu_only_distributed(),
    )


def callbacks(config: TrainConfig, has_dev: bool) -> list:
    if not has_dev or config.patience == 0:
        return []
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(early_stopping_patience=config.patience)]


def history(trainer) -> list[dict[str, Any]]:
    """The per-epoch log (train loss, dev metrics), floats rounded for the manifest."""
    out = []
    for entry in trainer.state.log_history:
        out.append({k: round(v, 6) if isinstance(v, float) else v for k, v in entry.items()})
    return out


WEIGHT = "weight"  # the per-example weight column (absent when every row weighs 1)


def uniform(weights) -> bool:
    return weights is None or all(w == 1.0 for w in weights)


def trainer_class(weighted: bool):
    """transformers' Trainer, or a subclass whose loss weighs each example by the batch's ``weight``
    column: mean of weight x cross-entropy over the batch (classification), or the sum of weight x
    token loss over the response tokens (causal LM), so weight 1 everywhere is the usual loss."""
    from transformers import Trainer

    if not weighted:
        return Trainer

    class WeightedTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            import torch.nn.functional as F

            weight = inputs.pop(WEIGHT, None)
            if weight is None or "labels" not in inputs:  # dev batches
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.logits.float()
            weight = weight.to(logits.device, logits.dtype)
            if logits.dim() == 2:  # sequence classification: one label per row
                loss = (F.cross_entropy(logits, labels, reduction="none") * weight).mean()
            else:  # causal LM: predict token t+1 from t; prompt tokens carry -100
                shift_labels = labels[:, 1:]
                per_token = F.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.size(-1)), shift_labels.reshape(-1),
                    ignore_index=-100, reduction="none",
                ).view(shift_labels.shape)  # fmt: skip
                count = (shift_labels != -100).sum() if num_items_in_batch is None else num_items_in_batch
                loss = (per_token * weight[:, None]).sum() / count
            return (loss, outputs) if return_outputs else loss

    return WeightedTrainer


class PeftRecipe:
    """What the PEFT recipes (:mod:`finetune.classifier`, :mod:`finetune.sft`) share: hyper-parameter
    defaults by data size, the backbone resolved from the model spec before training and found again
    at load time, and the Trainer's timings. A subclass sets the class attributes and gives
    ``train_model`` (returns the predictor, the log history and the Trainer) and ``load_model``."""

    task: str
    batch_size: int  # per device
    max_length: int  # tokens
    max_epochs: int  # the cap of the automatic epoch count
    learning_rates: dict[str, float]  # by method: rates that train in the default number of steps

    def default_model(self, method: str, language: str) -> str:
        from .models import default_model

        return default_model(self.task, method, language)

    def defaults(self, config: TrainConfig, *, n_rows: int) -> TrainConfig:
        from .config import auto_epochs

        c = config
        if c.batch_size is None:
            c.batch_size = self.batch_size
        if c.epochs is None:
            c.epochs = float(auto_epochs(n_rows, c.batch_size, c.target_steps, high=self.max_epochs))
        if c.learning_rate is None:
            c.learning_rate = self.learning_rates[c.method]
        if c.max_length is None:
            c.max_length = self.max_length
        return c

    def train_model(self, model_path: str, train, dev, plan, work_dir: Path, weights):  # pragma: no cover
        raise NotImplementedError

    def load_model(self, model_path: str, out: Path, manifest: dict[str, Any]):  # pragma: no cover
        raise NotImplementedError

    def fit(self, train, dev, plan, work_dir: Path, weights):
        import time

        from .models import resolve_model
        from .recipes import Fitted

        t0 = time.perf_counter()
        rm = resolve_model(plan.model)
        info = {"spec": rm.spec, "path": rm.path, "description": rm.description}
        t1 = time.perf_counter()
        predictor, hist, trainer = self.train_model(rm.path, train, dev, plan, work_dir, weights)
        seconds = {"resolve_model": t1 - t0, "train": time.perf_counter() - t1}
        return Fitted(predictor, plan, info, hist, seconds, trainer.is_world_process_zero(), trainer)

    def load(self, out: Path, manifest: dict[str, Any]):
        from .models import resolve_model
        from .predict import Predictor

        # the backbone as resolved at training time (a local folder or a GGUF cache), else again
        # from the spec (another machine: a hub id, or an embedded model's own cache)
        path = manifest["model"]["path"]
        if not Path(path).exists():
            path = resolve_model(manifest["model"]["spec"]).path
        model, tok = self.load_model(path, out, manifest)
        labels = list(manifest.get("labels") or [])
        max_length = manifest["config"]["max_length"]
        return Predictor(manifest["task"], manifest["method"], labels, model, tok, max_length=max_length)


# -- the saved folder: a portable base-model reference and a model card ----------------------------
ADAPTER_CONFIG = "adapter_config.json"
MODEL_CARD = "README.md"


def portable_base_model(model_info: dict[str, Any]) -> str:
    """What another machine can resolve: the hub id of an embedded model or of a hub spec, else the
    local folder's (or GGUF file's) name; the local path itself stays in the manifest only."""
    from .models import HUB_IDS

    spec = str(model_info.get("spec") or "")
    if spec.lower() in HUB_IDS:
        return HUB_IDS[spec.lower()]
    p = Path(spec).expanduser()
    if spec and (p.exists() or p.suffix.lower() == ".gguf"):
        return p.stem if p.suffix.lower() == ".gguf" else p.resolve().name
    if spec and not Path(spec).is_absolute():
        return spec  # a hub id
    return Path(str(model_info.get("path") or spec)).name


def portable_adapter_config(out: Path, base_model: str) -> str | None:
    """Rewrite ``adapter_config.json``'s ``base_model_name_or_path`` (an absolute path inside the
    virtual environment or a cache, useless elsewhere) to ``base_model``; returns the path it named,
    or None where the folder holds no adapter."""
    import json

    from augment.io import write_atomic

    cfg = out / ADAPTER_CONFIG
    if not cfg.exists():
        return None
    data = json.loads(cfg.read_text(encoding="utf-8"))
    local = data.get("base_model_name_or_path")
    data["base_model_name_or_path"] = base_model
    write_atomic(cfg, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return local


def _fmt_metric(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def model_card(manifest: dict[str, Any], *, peft: bool) -> str:
    """README.md for the saved folder: what was trained on what, with which lineage, and its scores."""
    m = manifest
    model = m.get("model") or {}
    base = model.get("base_model") or model.get("spec")
    # no local paths in the card (a cache or a virtual environment's): only their last part
    description = re.sub(
        r"(?<![\w.])/[^\s,)]+", lambda x: Path(x.group()).name, str(model.get("description", base))
    )
    tags = ["augment-engine", m["task"], m["method"]]
    front = ["---", f"base_model: {base}"]
    if peft:
        front.append("library_name: peft")
    front += ["tags:", *(f"- {t}" for t in tags), f"language: {m['language'].split('-')[0]}", "---", ""]
    lines = [
        f"# {m['method']} {m['task']} model on {base}",
        "",
        f"Trained by augment-engine {m['engine']['version']} (`augment finetune`): {m['task']}, "
        f"language {m['language']}, method {m['method']}, base model {description}.",
        "",
        "## Data",
        "",
    ]
    for split in ("train", "dev", "test"):
        info = (m.get("data") or {}).get(split)
        if not info:
            continue
        origins = ", ".join(f"{k} {v}" for k, v in sorted(info.get("by_origin", {}).items()))
        lines.append(f"- {split}: {info['rows']} rows from `{Path(info['path']).name}` ({origins})")
        if info.get("by_method"):
            lines.append(
                "  - by method: " + ", ".join(f"{k} {v}" for k, v in sorted(info["by_method"].items()))
            )
    if m.get("dev_split"):
        ex = m["dev_split"].get("excluded") or {}
        lines.append(
            f"- dev: {m['dev_split']['fraction']:g} of the seeds held out with their descendants "
            f"(left out of training: {', '.join(f'{k} {v}' for k, v in ex.items())})"
        )
    if m.get("excluded_for_test"):
        ex = m["excluded_for_test"]
        lines.append(
            "- left out of training for the test set: " + ", ".join(f"{k} {v}" for k, v in ex.items())
        )
    if m.get("labels"):
        lines.append(f"- labels: {', '.join(m['labels'])}")
    lines += ["", "## Metrics", ""]
    metrics = m.get("metrics") or {}
    if metrics:
        names = sorted({k for v in metrics.values() for k in v})
        lines += ["| split | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for split, v in metrics.items():
            lines.append(f"| {split} | " + " | ".join(_fmt_metric(v.get(k, "")) for k in names) + " |")
    else:
        lines.append("No dev or test rows were scored: pass `--dev FILE` or `--test FILE` for a score.")
    cfg = m.get("config") or {}
    keys = ("epochs", "learning_rate", "batch_size", "rank", "max_length", "seed")
    lines += [
        "",
        "## Training",
        "",
        "- " + ", ".join(f"{k} {cfg[k]}" for k in keys if cfg.get(k) is not None),
        f"- row weights: pseudo-labelled {cfg.get('pseudo_weight')}, augmented {cfg.get('aug_weight')}",
        "",
        "## Use",
        "",
        "```bash",
        "augment predict THIS_FOLDER DATA.jsonl > predictions.jsonl",
        "```",
        "",
        "`manifest.json` holds the full configuration, package versions, the local path of the base "
        "model at training time and the timings.",
        "",
    ]
    return "\n".join(front + lines)
