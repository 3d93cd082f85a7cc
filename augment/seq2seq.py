"""Sequence-to-sequence models (translation, paraphrase) behind one call, on two runtimes.

* :class:`TransformersSeq2Seq`: any ``AutoModelForSeq2SeqLM`` by hub id or local path (Marian / opus-mt,
  M2M-100, NLLB, mBART, T5, BART, Pegasus), batched over length-sorted batches, on CUDA, MPS or CPU.
* :class:`CTranslate2Seq2Seq`: the same model converted once into the engine cache and run by
  CTranslate2, int8 on CPU and float16 on GPU: several times faster than PyTorch on a CPU.

Both take the same :class:`Seq2SeqDecoding` and return, per input, ``n`` outputs (beam search: the n best
beams; sampling: n samples). Multilingual models get their language codes from :func:`lang_token`, so
``en``/``zh`` work for M2M-100 (``__en__``), NLLB (``eng_Latn``) and mBART-50 (``en_XX``) alike.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from .errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

RUNTIMES = ("transformers", "ctranslate2")
COMPUTE_TYPES = ("auto", "int8", "int8_float16", "int8_float32", "int16", "float16", "bfloat16", "float32")

# ISO 639-1 -> the codes multilingual translation models use; a user's ``lang_codes`` wins over these.
NLLB_CODES = {
    "ar": "arb_Arab", "cs": "ces_Latn", "de": "deu_Latn", "en": "eng_Latn", "es": "spa_Latn",
    "fa": "pes_Arab", "fr": "fra_Latn", "hi": "hin_Deva", "id": "ind_Latn", "it": "ita_Latn",
    "ja": "jpn_Jpan", "ko": "kor_Hang", "ms": "zsm_Latn", "nl": "nld_Latn", "pl": "pol_Latn",
    "pt": "por_Latn", "ru": "rus_Cyrl", "sw": "swh_Latn", "th": "tha_Thai", "tr": "tur_Latn",
    "uk": "ukr_Cyrl", "ur": "urd_Arab", "vi": "vie_Latn", "zh": "zho_Hans", "zh-hant": "zho_Hant",
}  # fmt: skip
MBART_CODES = {
    "ar": "ar_AR", "cs": "cs_CZ", "de": "de_DE", "en": "en_XX", "es": "es_XX", "fr": "fr_XX",
    "hi": "hi_IN", "id": "id_ID", "it": "it_IT", "ja": "ja_XX", "ko": "ko_KR", "nl": "nl_XX",
    "pl": "pl_PL", "pt": "pt_XX", "ru": "ru_RU", "th": "th_TH", "tr": "tr_TR", "uk": "uk_UA",
    "vi": "vi_VN", "zh": "zh_CN",
}  # fmt: skip


@dataclass(frozen=True)
class Seq2SeqDecoding:
    """How outputs are decoded. ``sample`` switches from beam search to sampling."""

    num_beams: int = 4
    sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut when sampling
    max_new_tokens: int = 256
    min_new_tokens: int = 0  # > 0 forces a length (benchmarks use it for a fixed output length)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ConfigError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1 or self.min_new_tokens < 0 or self.min_new_tokens > self.max_new_tokens:
            raise ConfigError(
                f"need 0 <= min_new_tokens <= max_new_tokens and max_new_tokens >= 1, "
                f"got {self.min_new_tokens}/{self.max_new_tokens}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("seed")
        if self.sample:
            d.pop("num_beams")
        else:
            for k in ("temperature", "top_p", "top_k"):
                d.pop(k)
        if not self.min_new_tokens:
            d.pop("min_new_tokens")
        return d


class Seq2Seq(Protocol):
    runtime: str
    backend: str
    model_id: str
    revision: str | None

    def generate(
        self,
        texts: Sequence[str],
        n: int,
        decoding: Seq2SeqDecoding,
        *,
        src_lang: str | None = None,
        tgt_lang: str | None = None,
        prefix: str = "",
    ) -> list[list[str]]: ...


def lang_token(tokenizer: Any, lang: str, overrides: dict[str, str] | None = None) -> str | None:
    """The token a multilingual model uses for ``lang`` (``__zh__``, ``zho_Hans``, ``zh_CN``, or a code
    given as is), or None when the tokenizer has none (a one-pair model such as opus-mt)."""
    key = lang.lower()
    candidates = [
        (overrides or {}).get(lang),
        (overrides or {}).get(key),
        lang,
        f"__{key}__",
        NLLB_CODES.get(key),
        MBART_CODES.get(key),
    ]
    vocab = _vocab(tokenizer)
    for c in candidates:
        if c and c in vocab and (len(c) > 3 or c.startswith("__")):
            return c
    return None


def _vocab(tokenizer: Any) -> set[str]:
    v = getattr(tokenizer, "_augment_vocab", None)
    if v is None:
        v = set(tokenizer.get_vocab())
        try:
            tokenizer._augment_vocab = v
        except Exception:  # pragma: no cover - a tokenizer that refuses attributes
            pass
    return v


def fix_tokenizer(tokenizer: Any) -> Any:
    """transformers 5's M2M100Tokenizer registers its ``__xx__`` language tokens only when the tokenizer
    files list them (a chained comparison in its ``__init__`` is always false); without them
    ``skip_special_tokens`` leaves ``__zh__`` in the output and CTranslate2 sees a short vocabulary.
    Registering the missing ones, in id order, restores both."""
    missing = [t for t in getattr(tokenizer, "lang_token_to_id", {}) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": missing}, replace_extra_special_tokens=False
        )
    return tokenizer


def _set_src(tokenizer: Any, token: str | None, lang: str | None) -> None:
    """Tell the tokenizer the source language: M2M-100 wants ``zh``, NLLB and mBART their codes."""
    if token is None or not hasattr(tokenizer, "src_lang"):
        return
    tokenizer.src_lang = lang if token == f"__{(lang or '').lower()}__" else token


def _sorted_batches(texts: Sequence[str], size: int) -> list[list[int]]:
    """Indices of ``texts`` in batches of similar length (longest first), so padding stays small."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    return [order[i : i + size] for i in range(0, len(order), size)]


def _check_lang(tokenizer: Any, model_id: str, lang: str | None, role: str, overrides) -> str | None:
    if lang is None:
        return None
    tok = lang_token(tokenizer, lang, overrides)
    if tok is None and _is_multilingual(tokenizer):
        raise ConfigError(
            f"{model_id}: no language token for {role} language {lang!r}; "
            f"give it in lang_codes, e.g. {{{lang}: <the model's code>}}"
        )
    return tok


def _languages(
    tok: Any, model_id: str, codes: dict[str, str], src: str | None, tgt: str | None
) -> str | None:
    """Check both languages, tell the tokenizer the source one, and return the target's token (or None
    for a one-pair model)."""
    src_tok = _check_lang(tok, model_id, src, "source", codes)
    tgt_tok = _check_lang(tok, model_id, tgt, "target", codes)
    _set_src(tok, src_tok, src)
    return tgt_tok


def _is_multilingual(tokenizer: Any) -> bool:
    return hasattr(tokenizer, "src_lang") or hasattr(tokenizer, "lang_code_to_id")


class TransformersSeq2Seq:
    """A transformers seq2seq model, loaded once."""

    runtime = "transformers"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = "auto",
        batch_size: int = 16,
        revision: str | None = None,
        lang_codes: dict[str, str] | None = None,
        max_input_tokens: int = 512,
    ) -> None:
        from importlib.metadata import version

        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        from .devices import pick_device

        self.device = pick_device(device)
        try:
            self.tokenizer = fix_tokenizer(AutoTokenizer.from_pretrained(model, revision=revision))
            self.model = AutoModelForSeq2SeqLM.from_pretrained(
                model,
                revision=revision,
                dtype=torch.float16 if self.device.startswith("cuda") else torch.float32,
            )
        except Exception as exc:
            raise BackendError(_load_hint(model, exc)) from exc
        self.model.to(self.device).eval()
        self.model_id = model
        self.revision = getattr(self.model.config, "_commit_hash", None) or revision
        self.backend = f"transformers {version('transformers')}"
        self.batch_size = batch_size
        self.lang_codes = lang_codes or {}
        self.max_input_tokens = max_input_tokens

    def generate(
        self,
        texts: Sequence[str],
        n: int,
        decoding: Seq2SeqDecoding,
        *,
        src_lang: str | None = None,
        tgt_lang: str | None = None,
        prefix: str = "",
    ) -> list[list[str]]:
        import torch

        tok = self.tokenizer
        tgt_tok = _languages(tok, self.model_id, self.lang_codes, src_lang, tgt_lang)
        kwargs: dict[str, Any] = {
            "max_new_tokens": decoding.max_new_tokens,
            "num_return_sequences": n,
        }
        if decoding.min_new_tokens:
            kwargs["min_new_tokens"] = decoding.min_new_tokens
        if tgt_tok is not None:
            kwargs["forced_bos_token_id"] = tok.convert_tokens_to_ids(tgt_tok)
        if decoding.sample:
            kwargs.update(
                do_sample=True,
                num_beams=1,
                temperature=decoding.temperature,
                top_p=decoding.top_p,
                top_k=decoding.top_k or None,
            )
        else:
            kwargs.update(do_sample=False, num_beams=max(decoding.num_beams, n))
        out: list[list[str]] = [[] for _ in texts]
        torch.manual_seed(decoding.seed)
        for idx in _sorted_batches(texts, self.batch_size):
            enc = tok(
                [prefix + texts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_input_tokens,
            ).to(self.device)
            with torch.inference_mode():
                ids = self.model.generate(**enc, **kwargs)
            decoded = tok.batch_decode(ids, skip_special_tokens=True)
            for j, i in enumerate(idx):
                out[i] = [t.strip() for t in decoded[j * n : (j + 1) * n]]
        return out


def _load_hint(model: str, exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = ""
    if not Path(model).exists() and os.environ.get("HF_HUB_OFFLINE"):
        hint = " (the hub is offline: give a local folder instead)"
    return f"could not load seq2seq model {model!r}: {first}{hint}"


def _model_key(model: str, revision: str | None, quantization: str) -> str:
    """A cache key that changes when a local model's files change."""
    import ctranslate2

    p = Path(model)
    if p.is_dir():
        stamp = sorted(
            (f.name, f.stat().st_size, f.stat().st_mtime_ns)
            for f in p.iterdir()
            if f.is_file() and f.suffix in {".json", ".bin", ".safetensors", ".model", ".spm", ".txt"}
        )
        ident: Any = [str(p.resolve()), stamp]
    else:
        ident = [model, revision]
    blob = repr([ident, quantization, ctranslate2.__version__]).encode()
    return hashlib.sha1(blob).hexdigest()[:12]


def ctranslate2_folder(model: str, quantization: str, *, revision: str | None = None) -> Path:
    """A CTranslate2 copy of a transformers model, converted on first use into the engine cache under a
    file lock (built in a temporary folder, then renamed into place). A folder that already holds a
    CTranslate2 model (``model.bin``) is used as it is."""
    if (Path(model) / "model.bin").is_file():
        return Path(model)
    if Path(model).is_dir() and not any(
        (Path(model) / f).is_file()
        for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model")
    ):
        raise BackendError(
            f"{model}: no tokenizer files; CTranslate2 takes the vocabulary from the tokenizer, so save it beside "
            "the model (tokenizer.save_pretrained)"
        )
    from filelock import FileLock

    from .cache import cache_dir

    name = Path(model).name if Path(model).is_dir() else model.replace("/", "--")
    target = (
        cache_dir() / "ctranslate2" / f"{name}-{quantization}-{_model_key(model, revision, quantization)}"
    )
    if (target / "model.bin").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "model.bin").is_file():
            return target
        from ctranslate2.converters import TransformersConverter

        logger.info("converting %s to CTranslate2 (%s) into %s (once)", model, quantization, target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            kwargs: dict[str, Any] = {"copy_files": None}
            if revision:
                kwargs["revision"] = revision

            class _Converter(TransformersConverter):
                def load_tokenizer(self, tokenizer_class, model_name_or_path, **kw):  # see fix_tokenizer
                    return fix_tokenizer(super().load_tokenizer(tokenizer_class, model_name_or_path, **kw))

            converter = _Converter(model, **_converter_kwargs(TransformersConverter, kwargs))
            converter.convert(str(tmp), quantization=quantization, force=True)
            os.replace(tmp, target)
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BackendError(f"CTranslate2 could not convert {model!r}: {exc}") from exc
    return target


def _converter_kwargs(cls: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in kwargs.items() if k in accepted and v is not None}


def cpu_threads(threads: int = 0, replicas: int = 0) -> tuple[int, int]:
    """(parallel batches, threads per batch) for CTranslate2 on a CPU.

    CTranslate2's default is one batch at a time on 4 threads, whatever the machine: on 2 cores that
    oversubscribes them (a hop took 6.5 s against 3.4 s with 2 single-threaded replicas, and 50 s
    against 6.7 s at batch size 1). Decoding small batches parallelises better across batches than
    inside one, so the cores are split into up to 4 replicas.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if replicas <= 0:
        replicas = max(1, min(4, cores if threads <= 0 else cores // threads))
    if threads <= 0:
        threads = max(1, cores // replicas)
    return replicas, threads


class CTranslate2Seq2Seq:
    """The same model run by CTranslate2: converted once, int8 on CPU, float16 on GPU."""

    runtime = "ctranslate2"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = "auto",
        compute_type: str = "auto",
        batch_size: int = 16,
        revision: str | None = None,
        lang_codes: dict[str, str] | None = None,
        tokenizer: str | None = None,
        threads: int = 0,
        replicas: int = 0,
        max_input_tokens: int = 512,
    ) -> None:
        try:
            import ctranslate2
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise BackendError("the ctranslate2 runtime needs `pip install ctranslate2`") from exc
        from transformers import AutoTokenizer

        gpu = ctranslate2.get_cuda_device_count() > 0
        dev = (device or "auto").lower()
        if dev == "auto":
            dev = "cuda" if gpu else "cpu"
        if dev.startswith("cuda") and not gpu:
            raise ConfigError(f"device {device!r} was asked for, but CTranslate2 sees no CUDA GPU")
        if dev not in ("cpu", "cuda"):
            raise ConfigError(f"CTranslate2 runs on cpu or cuda, not {device!r}")
        if compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"unknown compute_type {compute_type!r}; use one of {', '.join(COMPUTE_TYPES)}")
        self.compute_type = (
            compute_type if compute_type != "auto" else ("float16" if dev == "cuda" else "int8")
        )
        try:
            self.tokenizer = fix_tokenizer(
                AutoTokenizer.from_pretrained(tokenizer or model, revision=revision)
            )
        except Exception as exc:
            raise BackendError(_load_hint(tokenizer or model, exc)) from exc
        folder = ctranslate2_folder(model, self.compute_type, revision=revision)
        try:
            self.replicas, self.threads = (
                cpu_threads(threads, replicas) if dev == "cpu" else (1, threads or 0)
            )
            self.translator = ctranslate2.Translator(
                str(folder),
                device=dev,
                compute_type=self.compute_type,
                inter_threads=self.replicas,
                intra_threads=self.threads,
            )
        except Exception as exc:
            raise BackendError(f"CTranslate2 could not load {folder}: {exc}") from exc
        self.device = dev
        self.model_id = model
        self.folder = folder
        self.revision = revision
        self.backend = f"ctranslate2 {ctranslate2.__version__} ({self.compute_type}, {dev})"
        self.batch_size = batch_size
        self.lang_codes = lang_codes or {}
        self.max_input_tokens = max_input_tokens

    def generate(
        self,
        texts: Sequence[str],
        n: int,
        decoding: Seq2SeqDecoding,
        *,
        src_lang: str | None = None,
        tgt_lang: str | None = None,
        prefix: str = "",
    ) -> list[list[str]]:
        import ctranslate2

        tok = self.tokenizer
        tgt_tok = _languages(tok, self.model_id, self.lang_codes, src_lang, tgt_lang)
        kwargs: dict[str, Any] = {
            "num_hypotheses": n,
            "max_decoding_length": decoding.max_new_tokens,
            "min_decoding_length": decoding.min_new_tokens,
            "max_batch_size": self.batch_size,
            "max_input_length": self.max_input_tokens,
        }
        if decoding.sample:
            kwargs.update(
                beam_size=1,
                sampling_topk=decoding.top_k,  # 0: the whole distribution
                sampling_topp=decoding.top_p,
                sampling_temperature=decoding.temperature,
            )
        else:
            kwargs.update(beam_size=max(decoding.num_beams, n))
        ctranslate2.set_random_seed(decoding.seed)
        order = [i for batch in _sorted_batches(texts, len(texts) or 1) for i in batch]
        sources = [tok.convert_ids_to_tokens(tok.encode(prefix + texts[i])) for i in order]
        if tgt_tok is not None:
            kwargs["target_prefix"] = [[tgt_tok] for _ in order]
        results = self.translator.translate_batch(sources, **kwargs) if sources else []
        out: list[list[str]] = [[] for _ in texts]
        for i, res in zip(order, results, strict=True):
            hyps = [
                tok.decode(tok.convert_tokens_to_ids(h), skip_special_tokens=True).strip()
                for h in res.hypotheses
            ]
            out[i] = hyps
        return out


@lru_cache(maxsize=16)
def load_seq2seq(
    model: str,
    runtime: str = "transformers",
    *,
    device: str | None = "auto",
    compute_type: str = "auto",
    batch_size: int = 16,
    revision: str | None = None,
    lang_codes: tuple[tuple[str, str], ...] = (),
) -> Seq2Seq:
    """Each model is loaded once per process (per runtime and settings)."""
    codes = dict(lang_codes)
    if runtime == "transformers":
        return TransformersSeq2Seq(
            model, device=device, batch_size=batch_size, revision=revision, lang_codes=codes
        )
    if runtime == "ctranslate2":
        return CTranslate2Seq2Seq(
            model,
            device=device,
            compute_type=compute_type,
            batch_size=batch_size,
            revision=revision,
            lang_codes=codes,
        )
    raise ConfigError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
