"""Lexical augmentation through nlpaug: random swap / delete / insert, WordNet synonyms, spelling and
keyboard noise. Works on Chinese: words come from jieba and are joined back without spaces.

What was needed to make nlpaug 1.1.11 work here:
* word tokenisation is passed in (jieba for languages written without spaces);
* punctuation and whitespace tokens are never edited (``stopwords_regex``);
* synonym lookup runs without NLTK's POS tagger, whose data is not available offline
  (a tag-free lookup over every part of speech, with function words skipped);
* random insertion, which nlpaug does not have, is EDA's: insert a synonym of a word of the sentence,
  or, where there is no synonym source (Chinese), a content word from seeds of the same label;
* randomness is seeded per candidate, so a run is reproducible whatever the batch size, and nlpaug's
  spelling table is put in a fixed order (it comes out of a set, whose order changes per process).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..language import NON_WORD_TOKEN, detokenizer_for, normalise, tokenizer_for, uses_spaces
from ..record import CLASSIFICATION, Record
from .base import Outcome, SeedMethod, candidate_seed, register_method

if TYPE_CHECKING:
    from ..context import RunContext

logger = logging.getLogger(__name__)

ENGLISH_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being am do
    does did have has had i me my we our you your he him his she her it its they them their this that
    these those there here what which who whom whose when where why how not no nor so too very can will
    just than then also into over under up down out off again further once all any both each few more
    most other some such only own same s t don should now per via""".split()
)

ATTEMPTS = 3  # tries per candidate before it is rejected as unchanged
TOP_SENSES = 2  # synonyms come from a word's most frequent senses only
ENGLISH_ONLY = {"synonym"}
PINYIN_MODES = {"spelling": "homophone", "keyboard": "near"}  # Chinese typing noise
LEXICAL_METHODS = ("swap", "delete", "insert", "synonym", "spelling", "keyboard")


def default_methods(language: str) -> list[str]:
    """Methods that suit a language out of the box."""
    from ..wordnet import wordnet_available

    lang = language.split("-")[0].lower()
    if lang == "en":
        names = ["swap", "delete", "insert", "spelling"]
        if wordnet_available():
            names.insert(3, "synonym")
        return names
    if lang == "zh":
        return ["swap", "delete", "insert", "spelling"]
    return ["swap", "delete", "insert"]


@dataclass
class LexicalConfig:
    """The knobs of every lexical method (also settable for all of them at once: ``--aug-p``)."""

    aug_p: float = field(default=0.15, metadata={"help": "fraction of words (or characters) changed"})
    aug_min: int = field(default=1, metadata={"help": "at least this many edits per candidate"})
    aug_max: int = field(default=6, metadata={"help": "at most this many edits per candidate"})

    def __post_init__(self) -> None:
        if not 0.0 < self.aug_p <= 1.0:
            raise ConfigError(f"aug_p must be in (0, 1], got {self.aug_p}")
        if self.aug_min < 1 or self.aug_max < self.aug_min:
            raise ConfigError(
                f"aug_min/aug_max must satisfy 1 <= aug_min <= aug_max, got {self.aug_min}/{self.aug_max}"
            )


def _nlpaug_version() -> str:
    from importlib.metadata import version

    return version("nlpaug")


class LexicalMethod(SeedMethod):
    """One nlpaug-backed lexical method (``swap``, ``delete``, ``insert``, ``synonym``, ...)."""

    backend = "nlpaug"

    def __init__(self, name: str, config: LexicalConfig) -> None:
        super().__init__(name, config)
        self.aug_p, self.aug_min, self.aug_max = config.aug_p, config.aug_min, config.aug_max
        self._aug = None
        self._language = "en"
        self._seeds: Sequence[Record] = ()
        self._vocab: dict[tuple[str, str, str | None], list[str]] = {}
        self._synonyms = None
        self._current: Record | None = None
        self._current_field = "text"

    # -- lineage -------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"aug_p": self.aug_p, "aug_min": self.aug_min, "aug_max": self.aug_max}
        p["tokenizer"] = "words+punctuation" if uses_spaces(self._language) else "jieba"
        if self.name in PINYIN_MODES and self._language.split("-")[0].lower() == "zh":
            p["typo_model"] = PINYIN_MODES[self.name]
        if self.name == "insert":
            p["donor"] = "wordnet-synonym" if self._synonyms is not None else "label-vocabulary"
        return p

    # -- setup ---------------------------------------------------------------------------------
    def prepare(self, ctx: RunContext) -> None:
        language = self._language = ctx.language
        self._seeds = ctx.seeds
        english = language.split("-")[0].lower() == "en"
        if self.name in ENGLISH_ONLY and not english:
            raise ConfigError(
                f"method {self.name!r} has English resources only (language is {language!r}); "
                "for this language use swap, delete, insert, spelling or keyboard"
            )
        import nlpaug.augmenter.char as nac
        import nlpaug.augmenter.word as naw

        self.backend = f"nlpaug {_nlpaug_version()}"
        words: dict[str, Any] = {
            "aug_p": self.aug_p,
            "aug_min": self.aug_min,
            "aug_max": self.aug_max,
            "stopwords_regex": NON_WORD_TOKEN,
        }
        words["tokenizer"] = tokenizer_for(language)
        words["reverse_tokenizer"] = detokenizer_for(language)
        chinese = language.split("-")[0].lower() == "zh"
        if chinese and self.name in PINYIN_MODES:
            from importlib.metadata import version

            from .pinyin import PinyinTypoAug

            self._aug = PinyinTypoAug(
                PINYIN_MODES[self.name], self.aug_p, self.aug_min, self.aug_max, tokenizer_for(language)
            )
            self.backend = f"augment-engine pinyin (pypinyin {version('pypinyin')})"
            self.model = "pinyin " + PINYIN_MODES[self.name] + " typos over jieba's 4000 commonest characters"
        elif self.name == "swap":
            self._aug = _word_swap_class()(**words)
        elif self.name == "delete":
            self._aug = naw.RandomWordAug(action="delete", **words)
        elif self.name == "synonym":
            self._synonyms = _wordnet_lookup()
            self._aug = naw.SynonymAug(aug_src="wordnet", stopwords=list(ENGLISH_STOPWORDS), **words)
            self._aug.model = _TagFreeWordNet(self._synonyms)
            self.model = "WordNet 3.0"
        elif self.name == "insert":
            if english:
                try:
                    self._synonyms = _wordnet_lookup()
                    self.model = "WordNet 3.0"
                except Exception as exc:  # no WordNet: fall back to the seeds' vocabulary
                    logger.info("insert: WordNet unavailable (%s); inserting seed vocabulary", exc)
            self._aug = _RandomInsertAug(self, **words)
        elif self.name == "spelling":
            self._aug = naw.SpellingAug(**words)
            # nlpaug dedupes each word's misspellings through a set, so their order (and the one a
            # seeded draw picks) changed with the process's string-hash seed: put them in one order
            for options in self._aug.model.dict.values():
                options.sort()
            self.model = "nlpaug spelling_en.txt"
        elif self.name == "keyboard":
            kwargs = {
                "aug_char_p": self.aug_p,
                "aug_word_p": self.aug_p,
                "aug_char_max": 1,
                "aug_word_min": self.aug_min,
                "aug_word_max": self.aug_max,
                "include_special_char": False,
                "include_numeric": False,
                "stopwords_regex": NON_WORD_TOKEN,
            }
            kwargs["tokenizer"] = tokenizer_for(language)
            kwargs["reverse_tokenizer"] = detokenizer_for(language)
            self._aug = nac.KeyboardAug(**kwargs)
            self.model = "nlpaug keyboard en.json"
        else:  # pragma: no cover - registry only registers the names above
            raise ConfigError(f"unknown lexical method {self.name!r}")

    # -- generation ----------------------------------------------------------------------------
    def transform(self, seed: Record, field: str, n: int, run_seed: int) -> list[Outcome]:
        import numpy as np

        if self._aug is None:
            raise RuntimeError(f"{self.name}: setup() was not called")
        original = seed.fields.get(field, "")
        self._current = seed
        self._current_field = field
        out: list[Outcome] = []
        for k in range(n):
            # Ask again (boundedly) when an edit changed nothing that counts, e.g. a word
            # swapped with its own copy or with punctuation.
            for attempt in range(ATTEMPTS):
                rs = candidate_seed(run_seed, self.name, seed.id, k if attempt == 0 else f"{k}.{attempt}")
                random.seed(rs)
                np.random.seed(rs % 2**32)
                result = self._aug.augment(original, n=1) if original.strip() else []
                text = result[0] if result else ""
                if text.strip() and normalise(text) != normalise(original):
                    break
            failure = None
            if text.strip() and normalise(text) == normalise(original):
                failure = ("unchanged", f"no word changed in {ATTEMPTS} attempts (text too short or nothing to edit)")
            out.append(Outcome(text, random_seed=rs, failure=failure))
        return out

    # -- insertion donors ----------------------------------------------------------------------
    def donor_word(self, tokens: list[str], rng: random.Random) -> str | None:
        if self._synonyms is not None:
            content = [t for t in tokens if t.isalpha() and t.lower() not in ENGLISH_STOPWORDS]
            rng.shuffle(content)
            for word in content:
                options = [s for s in self._synonyms(word) if s.lower() != word.lower()]
                if options:
                    return rng.choice(sorted(options))
        vocab = self._label_vocabulary()
        return rng.choice(vocab) if vocab else None

    def _label_vocabulary(self) -> list[str]:
        """Donor words from the seeds of the current seed's label (classification), or from the
        current seed itself, all its fields (instruction data: other seeds are other domains, and a
        drug name inserted into an accounting question changes what is asked)."""
        seed = self._current
        if seed.task == CLASSIFICATION:
            key = (self._current_field, "label", seed.label)
            donors = [(s, [key[0]]) for s in self._seeds if s.label == seed.label]
        else:
            key = (self._current_field, "seed", seed.id)
            donors = [(seed, list(seed.fields))]
        if key not in self._vocab:
            tok = tokenizer_for(self._language)
            words: set[str] = set()
            for s, names in donors:
                for t in (t for name in names for t in tok(s.fields.get(name, ""))):
                    t = t.strip()
                    if not t or not any(ch.isalnum() for ch in t):
                        continue
                    if uses_spaces(self._language):
                        if t.lower() in ENGLISH_STOPWORDS or len(t) < 3:
                            continue
                    elif len(t) < 2:  # single Han characters are mostly function words
                        continue
                    words.add(t)
            self._vocab[key] = sorted(words)
        return self._vocab[key]


def _wordnet_lookup():
    from ..wordnet import ensure_wordnet

    ensure_wordnet()
    from nltk.corpus import wordnet

    def synonyms(word: str, pos: str | None = None) -> list[str]:
        # Only lower-case words of 3+ letters: capitalised words and short tokens are mostly
        # abbreviations and names here ("Pt" would become "Atomic number 78").
        if not (word.isalpha() and word.islower() and len(word) >= 3):
            return []
        # Only the most frequent senses (WordNet orders synsets by frequency), and no proper nouns
        # for a lower-case word: a tag-free lookup over every sense turns "min" into "Hokkianese".
        names = set()
        for synset in wordnet.synsets(word, pos=pos)[:TOP_SENSES]:
            for lemma in synset.lemmas():
                name = lemma.name().replace("_", " ")
                if word.islower() and not name.islower():
                    continue
                if name.lower() != word.lower():
                    names.add(name)
        return sorted(names)

    synonyms("warm-up")  # load now, so a broken install fails at setup, not mid-run
    return synonyms


class _TagFreeWordNet:
    """nlpaug's WordNet model without NLTK's POS tagger (its data cannot be downloaded here)."""

    def __init__(self, synonyms: Any) -> None:
        self._synonyms = synonyms

    def pos_tag(self, tokens: list[str]) -> list[tuple[str, str]]:
        return [(t, "") for t in tokens]

    def predict(self, word: str, pos: str | None = None) -> list[str]:
        return self._synonyms(word, pos)


def _insert_aug_class():
    import nlpaug.augmenter.word as naw
    from nlpaug.util import Action

    class RandomInsertAug(naw.WordAugmenter):
        """EDA's random insertion as an nlpaug word augmenter."""

        def __init__(self, owner: LexicalMethod, **kwargs: Any) -> None:
            super().__init__(action=Action.INSERT, name="RandomInsert_Aug", **kwargs)
            self.owner = owner

        def insert(self, data: str) -> str:
            if not data or not data.strip():
                return data
            tokens = self.tokenizer(data)
            count = self.generate_aug_cnt(len(tokens))
            rng = random.Random(random.getrandbits(64))
            for _ in range(count):
                word = self.owner.donor_word(tokens, rng)
                if word is None:
                    break
                tokens.insert(rng.randint(0, len(tokens)), word)
            return self.reverse_tokenizer(tokens)

    return RandomInsertAug


def _word_swap_class():
    import nlpaug.augmenter.word as naw
    from nlpaug.util import Doc

    class WordSwapAug(naw.RandomWordAug):
        """nlpaug's random swap, but a word trades places with its neighbouring *word*: nlpaug's own
        swap takes the adjacent token, which is often punctuation ("丢了，" -> "丢，了")."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(action="swap", **kwargs)

        def swap(self, data: str) -> str:
            if not data or not data.strip():
                return data
            doc = Doc(data, self.tokenizer(data))
            words = self.pre_skip_aug(doc.get_original_tokens())
            if len(words) < 2:
                return data
            chosen = self.sample(words, min(self.generate_aug_cnt(len(words)), len(words)))
            for seq, idx in enumerate(chosen, 1):
                k = words.index(idx)
                if k == 0:
                    other = words[1]
                elif k == len(words) - 1:
                    other = words[k - 1]
                else:
                    other = words[k + self.sample([-1, 1], 1)[0]]
                doc = self.change_case(doc, idx, other, seq)
            return self.reverse_tokenizer(doc.get_augmented_tokens())

    return WordSwapAug


def _RandomInsertAug(owner: LexicalMethod, **kwargs: Any):  # noqa: N802 - factory named like a class
    return _insert_aug_class()(owner, **kwargs)


_SUMMARIES = {
    "swap": "random swap of neighbouring words (EDA)",
    "delete": "random word deletion (EDA)",
    "insert": "random insertion of a synonym, or of a word from seeds of the same label (EDA)",
    "synonym": "WordNet synonym replacement (English)",
    "spelling": "common misspellings (English) or pinyin homophone typos (Chinese)",
    "keyboard": "keyboard typos (English) or pinyin near-key typos (Chinese)",
}
for _name in LEXICAL_METHODS:
    register_method(_name, LexicalConfig, summary=_SUMMARIES[_name])(LexicalMethod)
