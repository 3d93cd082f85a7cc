"""Model rewrites of a whole text: back-translation (``backtranslate``) and paraphrase (``paraphrase``).

Both run on a :class:`augment.rewriters.Rewriter`, chosen by ``methods.params.<method>.backend``:

* ``transformers`` / ``ctranslate2``: a seq2seq model by hub id or path (opus-mt pairs, M2M-100, NLLB,
  mBART; T5 / BART / Pegasus paraphrasers), batched, loaded once per run; CTranslate2 converts it once
  into the engine cache and runs int8 on CPU, float16 on GPU;
* ``apertium`` (back-translation only): rule-based MT as a subprocess, the English default;
* ``llm``: a prompted LLM, the run's shared generator (``--generator-*`` / ``generator:``), drawing on
  the run's token budget; the default where no translation model or Apertium pair exists (Chinese).

``auto`` picks: a ``model`` given -> transformers; back-translation of a language Apertium can round-trip
-> apertium; otherwise llm. Every candidate's lineage names the backend, the model(s), the pivot
language(s) and the pivot text, and the decoding parameters. A hop that produced nothing becomes a
rejected candidate (``empty_pivot``, ``empty_output``, ``backend_error``), never a silent drop.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import AugmentError, ConfigError
from ..record import Record, stable_hash
from ..rewriters import MODEL_BACKENDS, ApertiumRewriter, LLMRewriter, Rewriter, Seq2SeqRewriter
from ..seq2seq import COMPUTE_TYPES, Seq2SeqDecoding
from .base import Outcome, SeedMethod, register_method

if TYPE_CHECKING:
    from ..context import RunContext

logger = logging.getLogger(__name__)


# -- configs ---------------------------------------------------------------------------------------
@dataclass
class RewriteConfig:
    """What back-translation and paraphrase share: the backend, the model and how it decodes."""

    BACKENDS: ClassVar[tuple[str, ...]] = ()

    backend: str = field(
        default="auto",
        metadata={"help": "auto, transformers, ctranslate2, apertium (backtranslate) or llm"},
    )
    model: str | None = field(
        default=None,
        metadata={"help": "seq2seq model: hub id or folder (backtranslate: or a {src}/{tgt} template)"},
    )
    revision: str | None = field(default=None, metadata={"help": "hub revision of the model"})
    device: str | None = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:1, mps"})
    compute_type: str = field(
        default="auto",
        metadata={"help": f"ctranslate2: {', '.join(COMPUTE_TYPES)} (auto: int8 on CPU, float16 on GPU)"},
    )
    batch_size: int = field(default=16, metadata={"help": "texts per model call"})
    num_beams: int = field(
        default=4, metadata={"help": "beam search width (the n best beams are the n outputs)"}
    )
    sample: bool | None = field(
        default=None,
        metadata={"help": "sample instead of beam search (default: backtranslate no, paraphrase yes)"},
    )
    temperature: float | None = field(
        default=None, metadata={"help": "sampling temperature (default: 1.0; llm: the generator's)"}
    )
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling"})
    top_k: int = field(default=0, metadata={"help": "top-k sampling (0: no cut)"})
    max_new_tokens: int = field(default=256, metadata={"help": "tokens per output, at most"})

    def __post_init__(self) -> None:
        if self.backend not in ("auto", *self.BACKENDS):
            raise ConfigError(
                f"backend must be one of auto, {', '.join(self.BACKENDS)}; got {self.backend!r}"
            )
        if self.compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"compute_type must be one of {', '.join(COMPUTE_TYPES)}")
        if self.sample is not None and not isinstance(self.sample, bool):
            raise ConfigError(f"sample must be true or false, got {self.sample!r}")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        if self.num_beams < 1:
            raise ConfigError(f"num_beams must be >= 1, got {self.num_beams}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def _check_codes(name: str, value: dict[str, Any]) -> None:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{name} must map strings to strings, got {value!r}")


@dataclass
class BackTranslateConfig(RewriteConfig):
    """Back-translation: source -> pivot(s) -> source."""

    BACKENDS = ("transformers", "ctranslate2", "apertium", "llm")

    pivots: list[str] | str | None = field(
        default=None,
        metadata={
            "help": "pivot languages, each making its share of the n candidates; de>fr chains hops "
            "(default: es with Apertium, en for other languages, de for English on a model)"
        },
    )
    models: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "one model per direction, e.g. {zh-en: ./mt-zh-en, en-zh: ./mt-en-zh}"},
    )
    lang_codes: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "language codes of a multilingual model, e.g. {yue: yue_Hant}"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        p = self.pivots
        if p is not None and not (isinstance(p, str) or all(isinstance(x, str) for x in p)):
            raise ConfigError(
                f"pivots must be a language, a comma-separated list or a list of them, got {p!r}"
            )
        _check_codes("models", self.models)
        _check_codes("lang_codes", self.lang_codes)


@dataclass
class ParaphraseConfig(RewriteConfig):
    """Paraphrase: a seq2seq paraphraser or an LLM prompt."""

    BACKENDS = ("transformers", "ctranslate2", "llm")

    prefix: str | None = field(
        default=None,
        metadata={"help": "text put before each input of a model (default: 'paraphrase: ' for T5)"},
    )
    domain: str | None = field(default=None, metadata={"help": "llm: the texts' domain, a prompt hint"})
    label_names: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "llm: label -> the name shown in the prompt"}
    )
    template: str | None = field(default=None, metadata={"help": "llm: a prompt template (text or file)"})
    with_label: bool = field(default=True, metadata={"help": "llm: show the label, so the rewrite keeps it"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.with_label, bool):
            raise ConfigError(f"with_label must be true or false, got {self.with_label!r}")
        _check_codes("label_names", self.label_names)
        if self.backend in MODEL_BACKENDS and not self.model:
            raise ConfigError(
                f"model is needed for backend {self.backend} "
                "(a hub id or folder of a seq2seq paraphraser, e.g. humarin/chatgpt_paraphraser_on_T5_base)"
            )


# -- what both share -------------------------------------------------------------------------------
class RewriteMethod(SeedMethod):
    """What back-translation and paraphrase share: the rewriter, decoding, batch seeds, lineage."""

    default_sample: ClassVar[bool] = False
    config: RewriteConfig

    def __init__(self, name: str, config: RewriteConfig) -> None:
        super().__init__(name, config)
        self.sample = self.default_sample if config.sample is None else config.sample
        self.rewriter: Rewriter | None = None
        self._language = "en"

    def _build_rewriter(self, kind: str, ctx: RunContext, **settings: Any) -> Rewriter:
        """The adapter for ``kind`` (``settings``: per adapter, what only this method gives it)."""
        c = self.config
        if kind in MODEL_BACKENDS:
            return Seq2SeqRewriter(
                kind,
                c.model,
                device=c.device,
                compute_type=c.compute_type,
                batch_size=c.batch_size,
                revision=c.revision,
                **settings.get("seq2seq", {}),
            )
        if kind == "apertium":
            return ApertiumRewriter()
        return LLMRewriter(
            partial(ctx.generator, owner=self.name),
            ctx.generator_config,
            ctx.language,
            **settings.get("llm", {}),
        )

    def _ready(self) -> Rewriter:
        if self.rewriter is None:
            raise RuntimeError(f"{self.name}: call setup(ctx) before generate() or plan()")
        return self.rewriter

    def decoding(self, seed: int, *, sample: bool) -> Seq2SeqDecoding:
        c = self.config
        temperature = c.temperature if c.temperature is not None else self._ready().default_temperature
        return Seq2SeqDecoding(
            num_beams=c.num_beams,
            sample=sample,
            temperature=float(temperature) if float(temperature) > 0 else 1.0,
            top_p=c.top_p,
            top_k=c.top_k,
            max_new_tokens=c.max_new_tokens,
            seed=seed % 2**31,
        )

    def params(self) -> dict[str, Any]:
        """What made the rows (decoding goes under ``decoding``, set per call)."""
        kind = self.rewriter.kind if self.rewriter is not None else self.config.backend
        return {"backend": kind, **(self.rewriter.params() if self.rewriter is not None else {})}

    def _batch_seed(self, run_seed: int, batch: Sequence[Record], field: str) -> int:
        """The seed of a batch's decoding. Where nothing is sampled (Apertium, beam search) it cannot
        change a text, so it does not depend on the batch either: rows, their ids and their lineage
        are then the same whatever ``--batch-size``. Sampled rewrites depend on the batch's texts."""
        if self._ready().batch_independent(self.sample):
            return int(stable_hash(run_seed, self.name, field, length=8), 16)
        return int(stable_hash(run_seed, self.name, field, [s.id for s in batch], length=8), 16)


@dataclass
class _Hop:
    """One pivot chain of a back-translation and its place among the n slots."""

    chain: list[str]
    k: int  # candidates this chain makes
    index: int  # the slot of its first candidate


# -- back-translation ------------------------------------------------------------------------------
@register_method("backtranslate", BackTranslateConfig, summary="source -> pivot language(s) -> source")
class BackTranslateMethod(RewriteMethod):
    """source -> pivot(s) -> source. ``pivots`` lists pivot languages, each making its share of the ``n``
    candidates; a pivot written ``de>fr`` is a chain (source -> de -> fr -> source)."""

    config: BackTranslateConfig

    def __init__(self, name: str, config: BackTranslateConfig) -> None:
        super().__init__(name, config)
        self.pivots: list[list[str]] = []
        self._seeds: Sequence[Record] = ()
        self._whole: dict[tuple, dict[str, list[tuple[int, Outcome]]]] = {}

    def params(self) -> dict[str, Any]:
        p = super().params()
        for key in ("models", "lang_codes"):
            if getattr(self.config, key):
                p[key] = getattr(self.config, key)
        return p

    def prepare(self, ctx: RunContext) -> None:
        from ..translation import default_pivots, resolve_backend

        c = self.config
        language = self._language = ctx.language
        self._seeds = ctx.seeds
        self._whole = {}
        kind = resolve_backend(c.backend, language, c.model, c.models)
        pivots = c.pivots or default_pivots(kind, language)
        if isinstance(pivots, str):
            pivots = [x.strip() for x in pivots.split(",") if x.strip()]
        self.pivots = [[h.strip() for h in str(p).split(">") if h.strip()] for p in pivots]
        if not self.pivots or any(not chain for chain in self.pivots):
            raise ConfigError(f"methods.params.{self.name}.pivots is empty")
        src = language.split("-")[0].lower()
        for chain in self.pivots:
            if src in [h.lower() for h in chain]:
                raise ConfigError(f"pivot {'>'.join(chain)!r} contains the source language {language!r}")
        self.rewriter = self._build_rewriter(
            kind, ctx, seq2seq={"models": c.models, "lang_codes": c.lang_codes}
        )
        self.uses_llm = self.rewriter.prompted  # type: ignore[misc]
        if not ctx.planning:  # load every direction now: a bad model fails before any output
            self.rewriter.load([d for chain in self.pivots for d in self._directions(chain)])
        self.backend = self.rewriter.backend
        self.model = self._models_text(self.pivots[0])

    def _directions(self, chain: list[str]) -> list[tuple[str, str]]:
        hops = [self._language, *chain, self._language]
        return list(zip(hops, hops[1:], strict=False))

    def _models_text(self, chain: list[str]) -> str | None:
        models = [self._ready().model_for(a, b)[0] for a, b in self._directions(chain)]
        return models[0] if len(set(models)) == 1 else " -> ".join(str(m) for m in models)

    def _revision(self, chain: list[str]) -> str | None:
        """The model revision, where every hop runs the same model (an LLM, one many-to-many model)."""
        found = {self._ready().model_for(a, b) for a, b in self._directions(chain)}
        return next(iter(found))[1] if len(found) == 1 else None

    def plan(self, seeds: Sequence[Record], field: str, n: int) -> dict[str, int]:
        """Dry run: LLM calls and token estimates (none for model and Apertium backends)."""
        if not self._ready().prompted:
            return {}
        pivots = max(1, len(self.pivots))
        per_hop = [_llm_cap(self.config.max_new_tokens, len(s.fields.get(field, ""))) for s in seeds]
        chars = sum(len(s.fields.get(field, "")) for s in seeds)
        return {
            "calls": len(seeds) * pivots * 2,
            "prompt_tokens": int(len(seeds) * pivots * 2 * 120 + chars * pivots * 2),
            "completion_tokens_max": sum(per_hop) * (pivots + n),
        }

    def _hops(self, n: int) -> list[_Hop]:
        shares = [
            n // len(self.pivots) + (1 if i < n % len(self.pivots) else 0) for i in range(len(self.pivots))
        ]
        hops, index = [], 0
        for chain, k in zip(self.pivots, shares, strict=True):
            if k:
                hops.append(_Hop(chain, k, index))
            index += k
        return hops

    def transform_batch(
        self, batch: Sequence[Record], field: str, n: int, run_seed: int
    ) -> list[list[Outcome]]:
        """Each candidate in its pivot's slots: a pivot whose backend gives fewer than its share
        (Apertium: one) leaves its other slots empty, so slots (and ids) do not shift."""
        self._ready()
        return [
            [dataclasses.replace(o, slot=index) for index, o in slots]
            for slots in self._slots(batch, field, n, run_seed)
        ]

    def _slots(
        self, batch: Sequence[Record], field: str, n: int, run_seed: int
    ) -> list[list[tuple[int, Outcome]]]:
        rs = self._batch_seed(run_seed, batch, field)
        out: dict[str, list[tuple[int, Outcome]]] = {s.id: [] for s in batch}
        for hop in self._hops(n):
            whole = self._whole_seed_set(hop, field, rs) if self._ready().keeps_line_state else {}
            if all(s.id in whole for s in batch):
                for s in batch:
                    out[s.id].extend(whole[s.id])
            else:
                texts = [s.fields[field] for s in batch]
                for s, slots in zip(batch, self._round_trip(texts, hop, rs), strict=True):
                    out[s.id].extend(slots)
        return [out[s.id] for s in batch]

    def _whole_seed_set(self, hop: _Hop, field: str, rs: int) -> dict[str, list[tuple[int, Outcome]]]:
        """Apertium carries state from one line to the next (transfer variables: a word nine lines up
        changes a translation), so a text's translation depends on the lines sent with it. Every seed
        goes through in one call, in seed order, the first time: rows then do not depend on the batch
        size or on which batches a resumed run redoes."""
        key = (tuple(hop.chain), hop.k, field, rs, hop.index)
        if key not in self._whole:
            seeds = [s for s in self._seeds if s.fields.get(field)]
            slots = self._round_trip([s.fields[field] for s in seeds], hop, rs)
            self._whole[key] = {s.id: r for s, r in zip(seeds, slots, strict=True)}
        return self._whole[key]

    def _round_trip(self, texts: list[str], hop: _Hop, rs: int) -> list[list[tuple[int, Outcome]]]:
        r = self._ready()
        chain, k, index = hop.chain, hop.k, hop.index
        hops = [self._language, *chain, self._language]
        forward = self.decoding(rs, sample=r.sampling(self.sample, 1, "pivot"))
        back = self.decoding(rs + 1, sample=r.sampling(self.sample, k, "output"))
        current: list[str | None] = list(texts)
        error: str | None = None
        for a, b in zip(hops[:-2], hops[1:-1], strict=True):  # source -> ... -> last pivot, 1-best
            live = [i for i, t in enumerate(current) if t]
            try:
                res = r.translate([current[i] for i in live], a, b, 1, forward)  # type: ignore[misc]
            except AugmentError:
                raise
            except Exception as exc:  # a runtime failure of this batch: rejected rows, not a crash
                error = f"{a}->{b}: {type(exc).__name__}: {exc}"
                logger.warning("%s: %s", self.name, error)
                current = [None] * len(current)
                break
            nxt: list[str | None] = [None] * len(current)
            for i, out in zip(live, res, strict=True):
                nxt[i] = out[0] if out else None
            current = nxt
        pivot_texts = current
        outputs: list[list[str | None]] = [[] for _ in texts]
        live = [i for i, t in enumerate(pivot_texts) if t]
        if live and error is None:
            try:
                res = r.translate([pivot_texts[i] for i in live], hops[-2], hops[-1], k, back)  # type: ignore[misc]
                for i, out in zip(live, res, strict=True):
                    outputs[i] = list(out)
            except AugmentError:
                raise
            except Exception as exc:
                error = f"{hops[-2]}->{hops[-1]}: {type(exc).__name__}: {exc}"
                logger.warning("%s: %s", self.name, error)
        self.backend = r.backend
        model_text = self._models_text(chain) or self.model  # after the calls: an LLM loads on the first
        self.model = self.model or model_text
        self.model_revision = self._revision(chain)
        decoding = r.decoding_params(back)
        rows: list[list[tuple[int, Outcome]]] = []
        for j in range(len(texts)):
            params = {"pivots": chain, "decoding": decoding, "pivot_text": pivot_texts[j]}
            outcome = partial(Outcome, params=params, random_seed=rs, model=model_text)
            if error is not None:
                mine = [(index + c, outcome(failure=("backend_error", error))) for c in range(k)]
            elif not pivot_texts[j]:
                why = f"{'->'.join(hops[:-1])} gave no text"
                mine = [(index + c, outcome(failure=("empty_pivot", why))) for c in range(k)]
            else:
                why = f"{hops[-2]}->{hops[-1]} gave no text"
                mine = [
                    (index + c, outcome(text) if text else outcome(failure=("empty_output", why)))
                    for c, text in enumerate(outputs[j])
                ]
            rows.append(mine)
        return rows


# -- paraphrase ------------------------------------------------------------------------------------
@register_method("paraphrase", ParaphraseConfig, summary="a seq2seq paraphraser or an LLM rewording")
class ParaphraseMethod(RewriteMethod):
    """A paraphrase model (T5 / BART / Pegasus; ``prefix`` is put before each input) or an LLM prompt."""

    default_sample = True
    config: ParaphraseConfig

    def prepare(self, ctx: RunContext) -> None:
        c = self.config
        self._language = ctx.language
        kind = c.backend if c.backend != "auto" else ("transformers" if c.model else "llm")
        self.rewriter = self._build_rewriter(
            kind,
            ctx,
            seq2seq={"paraphraser": True, "prefix": c.prefix},
            llm={"template": c.template, "domain": c.domain},
        )
        self.uses_llm = self.rewriter.prompted  # type: ignore[misc]
        if not ctx.planning:
            self.rewriter.load()
            self._models()
        self.backend = self.rewriter.backend

    def _models(self) -> None:
        """The model and revision, once known (an LLM's after its first call)."""
        model, revision = self._ready().model_for()
        if model is not None:
            self.model, self.model_revision = model, revision

    def params(self) -> dict[str, Any]:
        p = super().params()
        if self.rewriter is None or self.rewriter.prompted:  # the prompt settings (and any prefix)
            c = self.config
            hints = {
                "prefix": c.prefix,
                "domain": c.domain,
                "label_names": c.label_names,
                "template": c.template,
                "with_label": c.with_label,
            }
            p.update({k: v for k, v in hints.items() if v not in (None, {}, [])})
        return p

    def plan(self, seeds: Sequence[Record], field: str, n: int) -> dict[str, Any]:
        if not self._ready().prompted:
            return {}  # no LLM calls
        chars = sum(len(s.fields.get(field, "")) for s in seeds)
        cap = self.config.max_new_tokens
        out: dict[str, Any] = {
            "calls": len(seeds) * n,
            "prompt_tokens": len(seeds) * 120 + chars,
            "completion_tokens_max": n * sum(_llm_cap(cap, len(s.fields.get(field, ""))) for s in seeds),
        }
        if seeds:
            out["prompt"] = self._sample_prompt(seeds[0], field)
        return out

    def _sample_prompt(self, seed: Record, field: str) -> str:
        """The prompt the run would send for ``seed`` (dry run: the chat form is guessed without
        loading the model, as self_instruct does)."""
        from ..generators import default_is_chat
        from ..prompts import render

        r, c = self._ready(), self.config
        g = r.generator_config
        chat = g.chat if g is not None and g.chat is not None else (
            (g is not None and g.model is not None) or default_is_chat(r.language)
        )
        names = c.label_names or {}
        label = names.get(seed.label, seed.label) if (c.with_label and seed.label) else None
        text = seed.fields.get(field, "")
        return str(
            render("paraphrase", "chat" if chat else "completion", r.language, r.template,
                   text=text, label=label, domain=r.domain)
        )  # fmt: skip

    def transform_batch(
        self, batch: Sequence[Record], field: str, n: int, run_seed: int
    ) -> list[list[Outcome]]:
        r, c = self._ready(), self.config
        rs = self._batch_seed(run_seed, batch, field)
        dec = self.decoding(rs, sample=r.sampling(self.sample, n, "paraphrase"))
        texts = [s.fields[field] for s in batch]
        names = c.label_names or {}
        labels = [names.get(s.label, s.label) if (c.with_label and s.label) else None for s in batch]
        error = None
        try:
            outputs = r.rewrite(texts, n, dec, labels)
        except AugmentError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("%s: %s", self.name, error)
            outputs = [[None] * n for _ in texts]
        self.backend = r.backend
        self._models()
        outcome = partial(
            Outcome, params={"decoding": r.decoding_params(dec), **r.rewrite_params()}, random_seed=rs
        )
        failure = ("backend_error", error) if error else ("empty_output", "the model gave no text")
        made = []
        for outs in outputs:
            texts_out = [outs[i] if i < len(outs) else None for i in range(n)]
            made.append([outcome(text) if text else outcome(failure=failure) for text in texts_out])
        return made


def _llm_cap(max_new_tokens: int, chars: int) -> int:
    """Tokens an LLM may write for a rewrite of a text of ``chars`` characters."""
    return min(max_new_tokens, 2 * chars + 32)
