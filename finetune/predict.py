"""A trained model, in memory right after training or reloaded from its folder, behind one interface.

``Predictor.load(out)`` reads ``out/manifest.json`` (task, method, labels, backbone), rebuilds the
backbone and applies the saved adapter (or the embedding head, on the saved body for ``setfit``);
``predict`` / ``score`` then run the same code that scored the test set at the end of training, so
the metrics reproduce exactly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from augment.classifiers import softmax
from augment.errors import ConfigError, DataError

from .data import Examples

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
METRICS = "metrics.json"


@dataclass
class Predictor:
    task: str
    method: str
    labels: list[str] = field(default_factory=list)
    model: Any = None  # peft model (torch methods)
    tokenizer: Any = None
    head: Any = None  # EmbeddingHead (embedding and setfit methods)
    max_length: int = 128

    # -- loading ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, out: str | Path) -> Predictor:
        out = Path(out)
        mpath = out / MANIFEST
        if not mpath.exists():
            raise ConfigError(f"{out}: not a model folder written by `augment finetune` (no {MANIFEST})")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{mpath}: malformed JSON ({exc.msg})") from None
        if manifest.get("kind") != "finetune":
            raise ConfigError(f"{mpath}: not a finetune manifest")
        task, method = manifest["task"], manifest["method"]
        cfg = manifest["config"]
        if method in ("embedding", "setfit"):
            from .embedding import EmbeddingHead

            info = manifest["embedding"]
            body = None
            if info.get("body"):
                from .setfit import load_body

                body = load_body(out / info["body"], max_length=cfg.get("max_length"))
            head = EmbeddingHead.load(out, info, embedder=body)
            return cls(task, method, list(manifest["labels"]), head=head)
        from .models import resolve_model

        # the backbone as resolved at training time (a local folder or a GGUF cache), else again
        # from the spec (another machine: a hub id, or an embedded model's own cache)
        path = manifest["model"]["path"]
        if not Path(path).exists():
            path = resolve_model(manifest["model"]["spec"]).path
        if task == "classification":
            from . import classifier

            model, tok = classifier.load(path, out, manifest["labels"], method)
        else:
            from . import sft

            model, tok = sft.load(path, out)
        return cls(task, method, list(manifest.get("labels") or []), model, tok, max_length=cfg["max_length"])

    # -- classification ---------------------------------------------------------------------------
    def logits(self, examples: Examples) -> np.ndarray:
        if self.task != "classification":
            raise ConfigError("logits are for classification models")
        if self.head is not None:
            return self.head.predict_logits(examples)
        from . import classifier

        texts = [r.fields["text"] for r in examples.rows]
        pairs = [r.fields.get("text_pair") for r in examples.rows]
        return classifier.predict_logits(self.model, self.tokenizer, texts, pairs, max_length=self.max_length)

    def predict(self, examples: Examples) -> list[dict[str, Any]]:
        """One dict per row: id, predicted label, its probability, and the gold label if known."""
        if self.task == "instruction":
            raise ConfigError("use generate() for instruction models")
        proba = softmax(self.logits(examples).astype(np.float64))
        out = []
        for r, p in zip(examples.rows, proba, strict=True):
            k = int(p.argmax())
            row = {"id": r.id, "text": r.fields["text"], "label": self.labels[k], "confidence": float(p[k])}
            if r.label is not None:
                row["gold"] = r.label
            out.append(row)
        return out

    def score(self, examples: Examples) -> dict[str, Any]:
        """Metrics on labelled rows: accuracy and macro-F1 (classification), response loss (SFT)."""
        if self.task == "instruction":
            from . import sft

            if not any(r.fields.get("output") for r in examples.rows):
                raise DataError(f"{examples.path}: no outputs to score")
            return sft.response_loss(self.model, self.tokenizer, examples, max_length=self.max_length)
        from .metrics import classification_metrics

        missing = [r.id for r in examples.rows if r.label is None]
        if missing:
            raise DataError(f"{examples.path}: {len(missing)} rows have no label to score against")
        unknown = sorted({r.label for r in examples.rows} - set(self.labels))
        if unknown:
            logger.warning("%s: labels the model never saw: %s", examples.path, ", ".join(unknown))
        pred = self.predict(examples)
        return classification_metrics([r.label for r in examples.rows], [p["label"] for p in pred])

    # -- instruction ------------------------------------------------------------------------------
    def generate(self, examples: Examples, *, max_new_tokens: int = 128) -> list[dict[str, Any]]:
        if self.task != "instruction":
            raise ConfigError("generate() is for instruction models")
        from . import sft

        answers = sft.generate(self.model, self.tokenizer, examples.rows, max_new_tokens=max_new_tokens)
        return [
            {
                "id": r.id,
                "instruction": r.fields["instruction"],
                "input": r.fields.get("input", ""),
                "output": a,
            }
            for r, a in zip(examples.rows, answers, strict=True)
        ]
