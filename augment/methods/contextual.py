"""Contextual word substitution with a masked language model (``contextual``).

Words of the seed are masked one at a time and replaced by what a masked LM (any
``AutoModelForMaskedLM``: BERT, RoBERTa, XLM-R, ...) predicts there, sampled among its ``top_k``
predictions. This is our own version of nlpaug's ContextualWordEmbsAug, which does not run on
transformers 5 and splits Chinese wrongly.

* Words come from :func:`augment.language.tokenizer_for` (jieba for Chinese); punctuation, spaces,
  English stopwords, numbers and one-letter words are never replaced (in Chinese, only words made
  of Han characters are).
* Languages written with spaces: one mask per word; predictions that continue a word ("##ing", or
  a BPE / sentencepiece piece that does not start a word), special tokens, punctuation, numbers and
  the original word (ignoring case) are skipped.
* Chinese (BERT-Chinese is character-level): a word of L characters becomes L masks, filled left to
  right, one forward pass per character; only CJK characters are accepted, and a fill identical to
  the original word is not.
* Several chosen words of one sentence are filled one after another, each conditioned on the
  substitutions before it. Every step runs all candidates of a ``generate`` call through the model
  in batches of ``batch_size``; each candidate's choices come from its own random generator, seeded
  from (run seed, method, seed id, index), so the output does not depend on the batch size.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, ConfigError
from ..language import NON_WORD_TOKEN, detokenizer_for, is_cjk, normalise, tokenizer_for, uses_spaces
from ..record import Record
from .base import Outcome, SeedMethod, candidate_seed, register_method
from .lexical import ENGLISH_STOPWORDS, LexicalConfig

if TYPE_CHECKING:
    from ..context import RunContext

logger = logging.getLogger(__name__)

DEFAULT_MODELS = {"zh": "google-bert/bert-base-chinese", "en": "distilbert/distilroberta-base"}
MULTILINGUAL_MODEL = "FacebookAI/xlm-roberta-base"

_NON_WORD = re.compile(NON_WORD_TOKEN)
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:['’\-][A-Za-z]+)*")  # what an English substitute may be
_LETTER_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")  # letters of any script


def default_model(language: str) -> str:
    """The masked LM used when ``methods.params.contextual.model`` is not set."""
    return DEFAULT_MODELS.get(language.split("-")[0].lower(), MULTILINGUAL_MODEL)


def _transformers_version() -> str:
    from importlib.metadata import version

    return version("transformers")


@dataclass
class _Job:
    """One candidate on its way: its words, and the chosen positions still to fill (left to right)."""

    seed: Record
    index: int
    random_seed: int
    rng: random.Random
    original: list[str]
    tokens: list[str]
    positions: list[int]
    chosen: int = 0
    filled: str = ""  # character mode: the characters of the current word predicted so far
    changed: int = 0


@dataclass
class _Vocabulary:
    """Which vocabulary entries may replace a word (word mode) or a character (character mode)."""

    surfaces: list[str]
    allowed: Any  # torch.BoolTensor over the vocabulary
    count: int = 0  # how many entries are allowed
    by_key: dict[str, list[int]] = field(default_factory=dict)  # casefolded surface -> allowed ids


@dataclass
class ContextualConfig(LexicalConfig):
    """The knobs of masked-LM substitution: the lexical methods' ``aug_p``/``aug_min``/``aug_max``
    (how many words are replaced), then the model's."""

    model: str | None = field(
        default=None,
        metadata={
            "help": "masked LM (hub id or local folder); default: BERT-Chinese, DistilRoBERTa or XLM-R"
        },
    )
    top_k: int = field(
        default=10, metadata={"help": "sample each substitute among this many best predictions"}
    )
    temperature: float = field(default=1.0, metadata={"help": "softmax temperature of that draw"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps"})
    batch_size: int = field(default=32, metadata={"help": "masked texts per forward pass"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {self.top_k}")
        if not self.temperature > 0.0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")


@register_method(
    "contextual", ContextualConfig, summary="replaces words by what a masked language model predicts there"
)
class ContextualMethod(SeedMethod):
    """Masked-LM word substitution; see the module docstring."""

    backend = "transformers"

    def __init__(self, name: str, config: ContextualConfig) -> None:
        super().__init__(name, config)
        self.aug_p, self.aug_min, self.aug_max = config.aug_p, config.aug_min, config.aug_max
        self.top_k = config.top_k
        self.temperature = config.temperature
        self.device_request = config.device
        self.batch_size = config.batch_size
        self.model = config.model or None
        self.device = "cpu"
        self._language = "en"
        self._char_mode = False
        self._tokenizer = None
        self._mlm = None
        self._vocab: _Vocabulary | None = None
        self._mask_id = -1
        self._max_length = 512
        self._gather: Any = None  # positions the output-layer hook keeps, per forward pass
        self._split: Callable[[str], list[str]] = tokenizer_for("en")
        self._join: Callable[[Sequence[str]], str] = detokenizer_for("en")

    # -- lineage -------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {
            "aug_p": self.aug_p,
            "aug_min": self.aug_min,
            "aug_max": self.aug_max,
            "top_k": self.top_k,
            "temperature": self.temperature,
            "tokenizer": "words+punctuation" if uses_spaces(self._language) else "jieba",
            "masking": "per-character" if self._char_mode else "whole-word",
        }

    # -- setup ---------------------------------------------------------------------------------
    def prepare(self, ctx: RunContext) -> None:
        """Load the masked LM (once per run) and work out which of its tokens may be substituted
        (a dry run loads nothing)."""
        from ..devices import pick_device

        language = self._language = ctx.language
        self._char_mode = not uses_spaces(language)
        self._split = tokenizer_for(language)
        self._join = detokenizer_for(language)
        if ctx.planning:
            return
        self.device = pick_device(self.device_request)
        if self._mlm is None:  # once per run; a second setup (another language) reuses the model
            self._load_model(language)
        self._mlm.to(self.device).eval()
        self._vocab = self._build_vocabulary()
        logger.info(
            "%s: %s on %s, %d substitute tokens (%s)",
            self.name,
            self.model,
            self.device,
            self._vocab.count,
            "per-character" if self._char_mode else "whole-word",
        )

    def _load_model(self, language: str) -> None:
        self.model = self.model or default_model(language)
        self._tokenizer, self._mlm = _load(self.model)
        if self._tokenizer.mask_token is None or self._tokenizer.mask_token_id is None:
            raise ConfigError(
                f"methods.params.{self.name}.model: {self.model!r} has no mask token; "
                "contextual substitution needs a masked language model (BERT, RoBERTa, XLM-R, ...)"
            )
        self.backend = f"transformers {_transformers_version()}"
        self.model_revision = getattr(self._mlm.config, "_commit_hash", None) or None
        self._mask_id = int(self._tokenizer.mask_token_id)
        limit = int(getattr(self._tokenizer, "model_max_length", 512) or 512)
        if limit > 100_000:  # not set in the tokenizer: what the position embeddings allow
            limit = int(getattr(self._mlm.config, "max_position_embeddings", 514)) - 2
        self._max_length = limit
        head = self._mlm.get_output_embeddings()
        if head is not None:  # compute vocabulary logits for the masked positions only
            head.register_forward_pre_hook(self._keep_masked_positions)

    def _keep_masked_positions(self, module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        hidden = args[0]
        gather = self._gather
        if gather is None or hidden.dim() != 3 or hidden.shape[0] != gather.shape[0]:
            return None
        import torch

        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return (hidden[rows, gather.to(hidden.device)].unsqueeze(1), *args[1:])

    def _build_vocabulary(self) -> _Vocabulary:
        import torch

        tok = self._tokenizer
        size = max(len(tok), int(getattr(self._mlm.config, "vocab_size", 0) or 0))
        ids = list(range(len(tok)))
        pieces = tok.convert_ids_to_tokens(ids)
        surfaces = [
            s.strip() for s in tok.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)
        ]
        special = set(tok.all_special_ids) | {int(i) for i in getattr(tok, "added_tokens_decoder", {})}
        scheme = _subword_scheme(pieces)
        english = self._language.split("-")[0].lower() == "en"
        word_re = _LATIN_WORD if english else _LETTER_WORD
        allowed = torch.zeros(size, dtype=torch.bool)
        by_key: dict[str, list[int]] = {}
        for i, (piece, surface) in enumerate(zip(pieces, surfaces, strict=True)):
            if i in special or piece is None or not surface:
                continue
            if scheme == "##" and piece.startswith("##"):
                continue  # a word's continuation
            if self._char_mode:
                ok = len(surface) == 1 and (
                    is_cjk(surface) if _is_cjk_language(self._language) else surface.isalpha()
                )
            else:
                if scheme in ("Ġ", "▁") and not piece.startswith(scheme):
                    continue  # BPE / sentencepiece piece that does not start a word
                ok = bool(word_re.fullmatch(surface))
            if ok:
                allowed[i] = True
                by_key.setdefault(surface.casefold(), []).append(i)
        if not allowed.any():
            raise ConfigError(
                f"methods.params.{self.name}.model: {self.model!r} has no vocabulary entry that can "
                f"replace a {'character' if self._char_mode else 'word'} in language {self._language!r}"
            )
        return _Vocabulary(surfaces=surfaces, allowed=allowed, count=int(allowed.sum()), by_key=by_key)

    # -- word choice ---------------------------------------------------------------------------
    def _replaceable(self, token: str) -> bool:
        if not token.strip() or _NON_WORD.match(token):
            return False
        if self._char_mode:
            if _is_cjk_language(self._language):
                return all(is_cjk(ch) for ch in token)
            return token.isalpha()
        if token.casefold() in ENGLISH_STOPWORDS:
            return False
        return sum(ch.isalpha() for ch in token) >= 2  # not numbers, nor one-letter abbreviations

    def _count(self, words: int) -> int:
        return min(max(round(self.aug_p * words), self.aug_min), self.aug_max, words)

    # -- generation ----------------------------------------------------------------------------
    def transform_batch(
        self, batch: Sequence[Record], field: str, n: int, run_seed: int
    ) -> list[list[Outcome]]:
        """All candidates of the batch go through the model together (see :meth:`_fill`)."""
        if self._mlm is None:
            raise RuntimeError(f"{self.name}: setup() was not called")
        jobs: list[_Job] = []
        for seed in batch:
            text = seed.fields.get(field, "")
            tokens = self._split(text) if text.strip() else []
            eligible = [i for i, t in enumerate(tokens) if self._replaceable(t)]
            for k in range(n):
                rs = candidate_seed(run_seed, self.name, seed.id, k)
                rng = random.Random(rs)
                positions = sorted(rng.sample(eligible, self._count(len(eligible)))) if eligible else []
                jobs.append(_Job(seed, k, rs, rng, list(tokens), list(tokens), positions, len(positions)))
        self._fill(jobs)

        out: list[list[Outcome]] = [[] for _ in batch]
        for j, job in enumerate(jobs):
            original = job.seed.fields.get(field, "")
            text = self._join(job.tokens) if job.changed else original
            failure = None
            if not job.chosen:
                failure = (
                    "unchanged",
                    "no word to replace (only punctuation, stopwords, numbers or an empty text)",
                )
            elif not job.changed or normalise(text) == normalise(original):
                failure = (
                    "unchanged",
                    f"the model offered no different word for the {job.chosen} chosen word(s)",
                )
            out[j // n].append(Outcome(text=text, random_seed=job.random_seed, failure=failure))
        return out

    def _fill(self, jobs: list[_Job]) -> None:
        """Fill every job's chosen positions, one mask per step, all jobs of a step batched."""
        steps = 0
        while True:
            active = [j for j in jobs if j.positions]
            if not active:
                break
            steps += 1
            for start in range(0, len(active), self.batch_size):
                chunk = active[start : start + self.batch_size]
                rows = self._predict([self._masked_text(j) for j in chunk])
                for job, row in zip(chunk, rows, strict=True):
                    self._advance(job, row)
        logger.debug("%s: %d candidates filled in %d steps", self.name, len(jobs), steps)

    def _masked_text(self, job: _Job) -> str:
        p = job.positions[0]
        tokens = list(job.tokens)
        mask = self._tokenizer.mask_token
        if self._char_mode:
            tokens[p] = job.filled + mask * (len(job.original[p]) - len(job.filled))
        else:
            tokens[p] = mask
        return self._join(tokens)

    def _predict(self, texts: list[str]) -> list[Any]:
        """For each text, the vocabulary logits at its first mask (None when truncation cut it off)."""
        import torch

        enc = self._tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self._max_length
        )
        is_mask = enc["input_ids"] == self._mask_id
        present = is_mask.any(dim=1).tolist()
        first = is_mask.int().argmax(dim=1)
        self._gather = first
        try:
            with torch.inference_mode():
                logits = self._mlm(**{k: v.to(self.device) for k, v in enc.items()}).logits
        finally:
            self._gather = None
        if logits.shape[1] == 1 and enc["input_ids"].shape[1] != 1:
            rows = logits[:, 0]
        else:  # the hook did not apply (no separate output layer): pick the mask positions here
            rows = logits[torch.arange(logits.shape[0]), first.to(logits.device)]
        rows = rows.float().cpu()
        return [rows[i] if present[i] else None for i in range(len(texts))]

    def _advance(self, job: _Job, row: Any) -> None:
        p = job.positions[0]
        word = job.original[p]
        if row is None:  # the mask fell beyond the model's maximum length
            job.positions.pop(0)
            job.filled = ""
            return
        if not self._char_mode:
            choice = self._sample(row, self._vocab.by_key.get(word.casefold(), []), job.rng)
            if choice is not None:
                job.tokens[p] = _match_case(choice, word)
                job.changed += 1
            job.positions.pop(0)
            return
        # character mode: one character of the word per step; the last one may not restore the word
        at = len(job.filled)
        exclude: list[int] = []
        if at == len(word) - 1 and job.filled == word[:-1]:
            exclude = self._vocab.by_key.get(word[-1].casefold(), [])
        choice = self._sample(row, exclude, job.rng)
        if choice is None:  # nothing acceptable: leave this word as it was
            job.positions.pop(0)
            job.filled = ""
            return
        job.filled += choice
        if len(job.filled) == len(word):
            job.tokens[p] = job.filled
            job.changed += 1
            job.positions.pop(0)
            job.filled = ""

    def _sample(self, row: Any, exclude: list[int], rng: random.Random) -> str | None:
        """Sample among the top-k allowed predictions (softmax at ``temperature``), or None."""
        import torch

        vocab = self._vocab
        scores = row[: vocab.allowed.shape[0]].masked_fill(~vocab.allowed[: row.shape[0]], -math.inf)
        k = min(self.top_k + len(exclude), vocab.count)
        values, ids = torch.topk(scores, k)
        banned = set(exclude)
        top = [
            (i, v)
            for v, i in zip(values.tolist(), ids.tolist(), strict=True)
            if v > -math.inf and i not in banned
        ]
        top = sorted(top[: self.top_k])  # by id: the draw does not hinge on the order of near-ties
        if not top:
            return None
        best = max(v for _, v in top)
        weights = [math.exp((v - best) / self.temperature) for _, v in top]
        u = rng.random() * sum(weights)
        for (i, _), w in zip(top, weights, strict=True):
            u -= w
            if u < 0:
                return vocab.surfaces[i]
        return vocab.surfaces[top[-1][0]]


def _is_cjk_language(language: str) -> bool:
    return language.split("-")[0].lower() in ("zh", "ja")


def _subword_scheme(pieces: Sequence[str | None]) -> str:
    """How the vocabulary marks word pieces: "##" (WordPiece continuations), "Ġ" (byte-level BPE word
    starts), "▁" (sentencepiece word starts), or "" (none: every entry stands alone)."""
    counts = {
        m: sum(1 for p in pieces if p and p.startswith(m) and len(p) > len(m)) for m in ("##", "Ġ", "▁")
    }
    marker, count = max(counts.items(), key=lambda kv: kv[1])
    return marker if count >= max(1, len(pieces) // 100) else ""


def _match_case(word: str, like: str) -> str:
    """Give a substitute the capitalisation of the word it replaces (uncased models predict lower case)."""
    if len(like) > 1 and like.isupper() and word.isalpha():
        return word.upper()
    if like[:1].isupper() and word[:1].islower():
        return word[:1].upper() + word[1:]
    return word


def _looks_like_path(model: str) -> bool:
    return (
        model.startswith(("/", "./", "../", "~", "\\"))
        or model.count("/") > 1
        or (len(model) > 1 and model[1] == ":")
    )


def _load(model: str) -> tuple[Any, Any]:
    """(tokenizer, masked LM) from a local folder or the hub, or one clear error line."""
    folder = "a local folder holding the model (config.json, tokenizer files, weights)"
    local = Path(model).expanduser()
    if not local.exists() and _looks_like_path(model):
        raise ConfigError(f"methods.params.contextual.model: {model!r} is not a folder; point it at {folder}")
    hint = f"point methods.params.contextual.model at {folder}"
    if not local.exists():
        hint += f", e.g. downloaded where there is network with `hf download {model} --local-dir DIR`"
    source = str(local) if local.exists() else model
    try:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        mlm = AutoModelForMaskedLM.from_pretrained(source)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise BackendError(
            f"contextual: could not load the masked language model {model!r} ({reason}); {hint}"
        ) from exc
    return tokenizer, mlm
