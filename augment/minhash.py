"""MinHash signatures and LSH banding, vectorised with numpy, for near-duplicate text search.

Shingles are character bigrams for languages written without spaces (Chinese: a word-level
shingle would need a segmenter, and one changed character still leaves most bigrams intact) and
word bigrams otherwise, taken from the normalised text (no case, spaces or punctuation in CJK).
Candidate pairs from the LSH buckets are confirmed with their exact Jaccard similarity.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence

import numpy as np

from .language import normalise, uses_spaces

_PRIME = (1 << 61) - 1
_WORDS = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, language: str) -> set[str]:
    if uses_spaces(language):
        words = _WORDS.findall(unicodedata.normalize("NFKC", text).casefold())
        if len(words) < 2:
            return set(words)
        return {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}
    chars = normalise(text)
    if len(chars) < 2:
        return {chars} if chars else set()
    return {chars[i : i + 2] for i in range(len(chars) - 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class MinHashLSH:
    """``num_perm`` hash functions in ``bands`` bands: pairs with Jaccard above about
    ``(1/bands) ** (bands/num_perm)`` collide in some band with high probability."""

    def __init__(self, num_perm: int = 64, bands: int = 16, seed: int = 1) -> None:
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, _PRIME, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, _PRIME, size=num_perm, dtype=np.uint64)
        self.bands, self.rows = bands, num_perm // bands

    def signatures(self, shingle_sets: Sequence[set[str]]) -> np.ndarray:
        """(n, num_perm) uint64 signatures; an empty set gets all-max (collides only with empties)."""
        lengths = np.array([len(s) for s in shingle_sets])
        flat = [zlib.crc32(sh.encode("utf-8")) for s in shingle_sets for sh in s]
        sig = np.full((len(shingle_sets), len(self.a)), np.iinfo(np.uint64).max, dtype=np.uint64)
        if not flat:
            return sig
        h = np.array(flat, dtype=np.uint64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        nonempty = lengths > 0
        for p in range(len(self.a)):  # (a*h + b) mod p, in uint64 with wrap-around; min per text
            vals = (self.a[p] * h + self.b[p]) % np.uint64(_PRIME)
            sig[nonempty, p] = np.minimum.reduceat(vals, starts[nonempty])
        return sig

    def band_keys(self, sig: np.ndarray) -> list[np.ndarray]:
        """One hashable key per row and band (the band's values, hashed to one integer)."""
        keys = []
        for band in range(self.bands):
            block = sig[:, band * self.rows : (band + 1) * self.rows]
            keys.append(
                np.ascontiguousarray(block)
                .view(np.dtype((np.void, block.dtype.itemsize * self.rows)))
                .ravel()
            )
        return keys
