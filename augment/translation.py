"""What back-translation knows about languages and translators, whatever the backend.

* language names (for prompts) and the codes Apertium's modes use;
* Apertium, the rule-based translator, run as a program (Debian ``apertium`` + a pair such as
  ``apertium-eng-spa``): which modes and round trips are installed, and :class:`ApertiumTranslator`.
  Deterministic, no model weights: the English default when it is installed;
* parallel sentences for few-shot translation prompts of base LLMs;
* choosing a backend (``auto``) and the default pivot languages.

The translators themselves (a seq2seq model, Apertium, an LLM) implement one interface,
:class:`augment.rewriters.Rewriter`, shared with paraphrase.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache

from .errors import BackendError, ConfigError
from .seq2seq import Seq2SeqDecoding

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "transformers", "ctranslate2", "apertium", "llm")
DEFAULT_MT_TEMPLATE = "Helsinki-NLP/opus-mt-{src}-{tgt}"

LANGUAGE_NAMES = {
    "en": ("English", "英语"), "zh": ("Chinese", "中文"), "de": ("German", "德语"), "es": ("Spanish", "西班牙语"),
    "fr": ("French", "法语"), "ja": ("Japanese", "日语"), "ko": ("Korean", "韩语"), "ru": ("Russian", "俄语"),
    "it": ("Italian", "意大利语"), "pt": ("Portuguese", "葡萄牙语"), "ar": ("Arabic", "阿拉伯语"),
    "vi": ("Vietnamese", "越南语"), "th": ("Thai", "泰语"), "id": ("Indonesian", "印尼语"),
    "ca": ("Catalan", "加泰罗尼亚语"), "nl": ("Dutch", "荷兰语"),
}  # fmt: skip
# ISO 639-1 -> the three-letter codes Apertium's modes use (eng-spa, spa-eng, ...)
APERTIUM_CODES = {
    "en": "eng", "es": "spa", "ca": "cat", "fr": "fra", "pt": "por", "it": "ita", "de": "deu", "eo": "epo",
    "gl": "glg", "oc": "oci", "ro": "ron", "nl": "nld", "an": "arg", "eu": "eus", "sv": "swe", "da": "dan",
    "nb": "nob", "nn": "nno", "is": "isl", "cy": "cym", "br": "bre", "kk": "kaz", "tt": "tat",
}  # fmt: skip


def base_lang(lang: str) -> str:
    return lang.split("-")[0].lower()


def language_name(lang: str, in_chinese: bool = False) -> str:
    names = LANGUAGE_NAMES.get(base_lang(lang))
    return names[1 if in_chinese else 0] if names else lang


# -- Apertium --------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def apertium_modes() -> tuple[str, ...]:
    """The installed Apertium modes (``eng-spa``, ...); empty when Apertium is not installed."""
    exe = shutil.which("apertium")
    if exe is None:
        return ()
    try:
        out = subprocess.run([exe, "-l"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def apertium_mode(src: str, tgt: str) -> str | None:
    a, b = APERTIUM_CODES.get(base_lang(src)), APERTIUM_CODES.get(base_lang(tgt))
    mode = f"{a}-{b}"
    return mode if a and b and mode in apertium_modes() else None


def apertium_pivots(src: str) -> list[str]:
    """Languages Apertium can take ``src`` to and back from."""
    inverse = {v: k for k, v in APERTIUM_CODES.items()}
    a = APERTIUM_CODES.get(base_lang(src))
    found = []
    for mode in apertium_modes():
        parts = mode.split("-")
        if len(parts) == 2 and parts[0] == a and f"{parts[1]}-{a}" in apertium_modes():
            found.append(inverse.get(parts[1], parts[1]))
    return found


class ApertiumTranslator:
    """Apertium as a subprocess: one line per sentence on stdin, one translation per line out."""

    def __init__(self, timeout: float = 300.0) -> None:
        self.exe = shutil.which("apertium")
        if self.exe is None:
            raise BackendError(
                "apertium is not installed (Debian/Ubuntu: apt-get install apertium apertium-eng-spa)"
            )
        self.timeout = timeout
        self.backend = f"apertium {_apertium_version()}".strip()

    def model_for(self, src: str, tgt: str) -> tuple[str, str | None]:
        return f"apertium {self._mode(src, tgt)}", None

    def _mode(self, src: str, tgt: str) -> str:
        mode = apertium_mode(src, tgt)
        if mode is None:
            raise ConfigError(
                f"apertium has no {src}->{tgt} mode installed (installed: {', '.join(apertium_modes()) or 'none'})"
            )
        return mode

    def _run(self, mode: str, lines: Sequence[str]) -> list[str]:
        try:
            res = subprocess.run(
                [self.exe or "apertium", "-u", mode],
                input="\n".join(lines) + "\n",
                capture_output=True,
                text=True,
                timeout=self.timeout,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise BackendError(f"apertium {mode} failed: {exc}") from exc
        if res.returncode != 0:
            raise BackendError(f"apertium {mode} exited {res.returncode}: {res.stderr.strip()[:200]}")
        return res.stdout.rstrip("\n").split("\n") if lines else []

    def translate(
        self, texts: Sequence[str], src: str, tgt: str, n: int, decoding: Seq2SeqDecoding
    ) -> list[list[str | None]]:
        """Deterministic: one translation per text, whatever ``n``."""
        mode = self._mode(src, tgt)
        lines = [" ".join(t.split()) for t in texts]  # one sentence per line: no newlines inside
        out = self._run(mode, lines)
        if len(out) != len(lines):  # a line split or merged: fall back to one call per text
            logger.warning("apertium returned %d lines for %d; translating one by one", len(out), len(lines))
            out = [" ".join(self._run(mode, [t])) for t in lines]
        return [[o.strip() or None] for o in out]


def _apertium_version() -> str:
    try:
        res = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "apertium"], capture_output=True, text=True, timeout=10
        )
        return res.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# Parallel sentences for few-shot prompts of base models (same meaning in every language).
PARALLEL = {
    "en": ["I lost my bank card yesterday. What should I do?", "The patient has had a headache for three days."],
    "zh": ["我昨天把银行卡弄丢了，该怎么办？", "病人已经头痛三天了。"],
    "de": ["Ich habe gestern meine Bankkarte verloren. Was soll ich tun?", "Der Patient hat seit drei Tagen Kopfschmerzen."],
    "es": ["Ayer perdí mi tarjeta bancaria. ¿Qué debo hacer?", "El paciente tiene dolor de cabeza desde hace tres días."],
    "fr": ["J'ai perdu ma carte bancaire hier. Que dois-je faire ?", "Le patient a mal à la tête depuis trois jours."],
    "ja": ["昨日、銀行カードをなくしました。どうすればいいですか？", "患者は三日前から頭痛があります。"],
}  # fmt: skip


def parallel_examples(src: str, tgt: str) -> list[tuple[str, str]]:
    a, b = PARALLEL.get(base_lang(src)), PARALLEL.get(base_lang(tgt))
    return list(zip(a, b, strict=True)) if a and b else []


# -- choosing a backend ---------------------------------------------------------------------------
def resolve_backend(backend: str, language: str, model: str | None, models: dict[str, str] | None) -> str:
    """``auto``: a model given -> transformers; English with Apertium installed -> apertium; else llm."""
    if backend not in BACKENDS:
        raise ConfigError(f"backtranslate.backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        return backend
    if model or models:
        return "transformers"
    if apertium_pivots(language):
        return "apertium"
    return "llm"


def default_pivots(backend: str, language: str) -> list[str]:
    lang = base_lang(language)
    if backend == "apertium":
        pivots = apertium_pivots(lang)
        if not pivots:
            raise ConfigError(f"apertium has no round trip for {language!r} installed")
        return pivots[:1]
    return ["en"] if lang != "en" else (["zh"] if backend == "llm" else ["de"])
