"""Language detection from the data's script, and word segmentation that works for Chinese.

Detection is by script, which is all the engine needs to choose tokenisation and the default
embedder: text whose letters are mostly Han characters is ``zh``, text in Latin script is ``en``.
Anything else can be named with ``--language``.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache

logger = logging.getLogger(__name__)

# Languages written without spaces between words: tokenise with a segmenter, join with "".
NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "km", "my"}


def is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0xF900 <= cp <= 0xFAFF
        or 0x3040 <= cp <= 0x30FF  # kana
    )


def cjk_ratio(texts: Sequence[str]) -> float:
    letters = cjk = 0
    for text in texts:
        for ch in text:
            if ch.isalpha():
                letters += 1
                cjk += is_cjk(ch)
    return cjk / letters if letters else 0.0


def detect_language(texts: Sequence[str]) -> str:
    """``zh`` if at least 30% of the letters are Han characters, else ``en``."""
    return "zh" if cjk_ratio(texts) >= 0.3 else "en"


def uses_spaces(language: str) -> bool:
    return language.split("-")[0].lower() not in NO_SPACE_LANGUAGES


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


# A word keeps its inner apostrophes, hyphens, slashes and dots ("won't", "x-ray", "c/o", "150/95");
# any other punctuation is a token of its own.
_WORD = re.compile(r"[$£€¥#@]?\w+(?:['’\-/.]\w+)*|[^\w\s]+", re.UNICODE)
_NO_SPACE_BEFORE = re.compile(r" ([,.;:!?%)\]}])")
_NO_SPACE_AFTER = re.compile(r"([(\[{]) ")
_DOUBLE_QUOTED = re.compile(r'" ([^"]*?) ?"')
_SINGLE_QUOTED = re.compile(r"(?<!\w)' ([^']*?) ?'")


def _space_tokenize(text: str) -> list[str]:
    return _WORD.findall(text)


def _space_detokenize(tokens: Sequence[str]) -> str:
    text = " ".join(t for t in tokens if t)
    text = _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", text))
    text = _DOUBLE_QUOTED.sub(r'"\1"', text)
    return _SINGLE_QUOTED.sub(r"'\1'", text)


def tokenizer_for(language: str) -> Callable[[str], list[str]]:
    """Word tokeniser: jieba for Chinese (spaces kept as tokens); words and punctuation otherwise."""
    if not uses_spaces(language):
        jieba = _jieba()
        return lambda text: [t for t in jieba.lcut(text) if t != ""]
    return _space_tokenize


def detokenizer_for(language: str) -> Callable[[Sequence[str]], str]:
    """Inverse of :func:`tokenizer_for`: join without spaces for Chinese; otherwise with spaces,
    punctuation attached to its word."""
    if not uses_spaces(language):
        return lambda tokens: "".join(tokens)
    return _space_detokenize


_PUNCT_OR_SPACE = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Key for exact-duplicate checks: NFKC, case-folded, without spaces or punctuation."""
    return _PUNCT_OR_SPACE.sub("", unicodedata.normalize("NFKC", text).casefold())


# A token that is only punctuation, symbols or spaces: never the target of a word edit.
NON_WORD_TOKEN = r"^[\s\W_]+$"
