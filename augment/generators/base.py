"""The generator contract: prompts, sampling parameters, completions, the protocol every backend
implements, and the ``generator:`` section of a run's config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..errors import ConfigError

Chat = list[dict[str, str]]
Prompt = Chat | str


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


Decodings = Decoding | Sequence[Decoding]


def per_prompt(decoding: Decodings, count: int) -> list[Decoding]:
    """One Decoding per prompt: ``generate`` takes one for every prompt of the call, or a list with one
    per prompt (methods batch prompts whose sampling seeds differ, e.g. one per anchor seed)."""
    if isinstance(decoding, Decoding):
        return [decoding] * count
    out = list(decoding)
    if len(out) != count:
        raise ValueError(f"{len(out)} decodings for {count} prompts")
    return out


class Generator(Protocol):
    backend: str
    model_id: str
    revision: str | None
    chat: bool  # True: prompts are chat messages; False: plain text completion

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decodings) -> list[list[Completion]]:
        """``n`` completions per prompt, in order; ``decoding`` is shared or one per prompt."""
        ...


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
    concurrency: int = field(
        default=4, metadata={"help": "openai: most requests in flight (fewer after 429/5xx, then more again)"}
    )
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
        if self.concurrency < 1:
            raise ConfigError(f"generator.concurrency must be >= 1, got {self.concurrency}")
        if self.endpoint not in ("auto", "chat", "completions"):
            raise ConfigError(f"generator.endpoint must be auto, chat or completions, got {self.endpoint!r}")


def package_version(dist: str) -> str | None:
    """The installed version of a distribution (a backend's revision in lineage), or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def can_score(gen: object) -> bool:
    """Whether a generator scores continuations (``score(prompt, options) -> list[float]``, the sum of
    each option's token log-probabilities after the prompt): llama.cpp and transformers do; the
    OpenAI-compatible backend does not (its answers are generated and parsed instead)."""
    return callable(getattr(gen, "score", None))
