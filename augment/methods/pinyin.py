"""Chinese typing noise: the mistakes people make with a pinyin input method.

Chinese text is typed as pinyin and a character is then picked from a candidate list, so real
typos are characters with the same sound (picking the wrong homophone: 帐户 for 账户) or with a
nearby sound (a fuzzy initial or final, z/zh, an/ang, or a neighbouring key: lin for lun).
``spelling`` on Chinese makes the first kind, ``keyboard`` the second. Replacement characters are
drawn from the most frequent characters of jieba's dictionary, as an input method lists them first.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from functools import lru_cache

from ..language import is_cjk

COMMON_CHARS = 4000  # replacements come from the most frequent characters only
CANDIDATES = 8  # an input method's first page
FUZZY = [("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"), ("f", "h"), ("r", "l")]
FUZZY_FINALS = [("ang", "an"), ("eng", "en"), ("ing", "in"), ("iang", "ian"), ("uang", "uan")]
QWERTY_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def _neighbours() -> dict[str, set[str]]:
    pos = {ch: (r, c) for r, row in enumerate(QWERTY_ROWS) for c, ch in enumerate(row)}
    out: dict[str, set[str]] = defaultdict(set)
    for a, (ra, ca) in pos.items():
        for b, (rb, cb) in pos.items():
            if a != b and abs(ra - rb) <= 1 and abs(ca - cb) <= 1:
                out[a].add(b)
    return out


@lru_cache(maxsize=1)
def syllable_index() -> tuple[dict[str, list[str]], dict[str, int]]:
    """Toneless syllable -> common characters (most frequent first), and character frequencies."""
    import jieba
    from pypinyin import Style, pinyin

    freq: dict[str, int] = defaultdict(int)
    with open(os.path.join(os.path.dirname(jieba.__file__), "dict.txt"), encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                for ch in parts[0]:
                    if is_cjk(ch):
                        freq[ch] += int(parts[1])
    common = sorted(freq, key=lambda c: -freq[c])[:COMMON_CHARS]
    index: dict[str, list[str]] = defaultdict(list)
    for ch in common:
        for reading in {r for r in pinyin(ch, style=Style.NORMAL, heteronym=True)[0]}:
            index[reading].append(ch)
    return dict(index), dict(freq)


def near_syllables(syllable: str, valid: set[str]) -> list[str]:
    """Syllables one fuzzy-pinyin step or one neighbouring-key slip away (valid syllables only)."""
    out = set()
    for a, b in FUZZY:
        for x, y in ((a, b), (b, a)):
            if (
                syllable.startswith(x)
                and not (x == "z" and syllable.startswith("zh"))
                and not (x in ("c", "s") and syllable.startswith(x + "h"))
            ):
                out.add(y + syllable[len(x) :])
    for a, b in FUZZY_FINALS:
        for x, y in ((a, b), (b, a)):
            if syllable.endswith(x):
                out.add(syllable[: -len(x)] + y)
    neigh = _neighbours()
    for i, ch in enumerate(syllable):
        for n in neigh.get(ch, ()):
            out.add(syllable[:i] + n + syllable[i + 1 :])
    out.discard(syllable)
    return sorted(s for s in out if s in valid)


class PinyinTypoAug:
    """Replaces a few Han characters by homophones (``mode="homophone"``) or near-sounding
    characters (``mode="near"``), choosing each from an input method's first page of candidates.
    Same ``augment(text, n)`` interface as nlpaug's augmenters; randomness from ``random``."""

    def __init__(self, mode: str, aug_p: float, aug_min: int, aug_max: int, tokenizer) -> None:
        if mode not in ("homophone", "near"):
            raise ValueError(mode)
        self.mode, self.aug_p, self.aug_min, self.aug_max = mode, aug_p, aug_min, aug_max
        self.tokenizer = tokenizer
        self.index, self.freq = syllable_index()
        self.valid = set(self.index)

    def _reading(self, word: str) -> list[str]:
        from pypinyin import Style, lazy_pinyin

        return lazy_pinyin(word, style=Style.NORMAL, errors=lambda s: ["?"] * len(s))

    def _options(self, ch: str, syllable: str) -> list[str]:
        if self.mode == "homophone":
            syllables = [syllable]
        else:
            syllables = near_syllables(syllable, self.valid)
        out = []
        for s in syllables:
            out.extend(c for c in self.index.get(s, [])[:CANDIDATES] if c != ch)
        return out

    def augment(self, text: str, n: int = 1) -> list[str]:
        return [self._one(text) for _ in range(n)]

    def _one(self, text: str) -> str:
        chars = list(text)
        positions: list[tuple[int, str]] = []  # (index in text, contextual syllable)
        offset = 0
        for word in self.tokenizer(text):
            if any(is_cjk(c) for c in word):
                for k, (c, syl) in enumerate(zip(word, self._reading(word), strict=False)):
                    if is_cjk(c) and syl in self.valid:
                        positions.append((offset + k, syl))
            offset += len(word)
        if offset != len(text):  # tokenizer dropped characters: fall back to per-character readings
            positions = [
                (i, s)
                for i, (c, s) in enumerate(zip(text, self._reading(text), strict=False))
                if is_cjk(c) and s in self.valid
            ]
        if not positions:
            return text
        count = max(self.aug_min, min(self.aug_max, round(self.aug_p * len(positions))))
        random.shuffle(positions)
        changed = 0
        for i, syl in positions:
            if changed >= count:
                break
            options = self._options(chars[i], syl)
            if options:  # common characters are picked by mistake more often
                weights = [self.freq.get(c, 1) ** 0.5 for c in options]
                chars[i] = random.choices(options, weights=weights, k=1)[0]
                changed += 1
        return "".join(chars)
