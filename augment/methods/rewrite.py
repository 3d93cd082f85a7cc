"""Model rewrites of a whole text: back-translation (``backtranslate``) and paraphrase (``paraphrase``).

Both run on one of these backends, chosen by ``methods.params.<method>.backend``:

* ``transformers`` / ``ctranslate2``: a seq2seq model by hub id or path (opus-mt pairs, M2M-100, NLLB,
  mBART; T5 / BART / Pegasus paraphrasers), batched, loaded once per run; CTranslate2 converts it once
  into the engine cache and runs int8 on CPU, float16 on GPU;
* ``apertium`` (back-translation only): rule-based MT as a subprocess, the English default;
* ``llm``: a prompted LLM through the generator backends (``--generator-*`` / ``generator:``), the
  default where no translation model or Apertium pair exists (Chinese).

``auto`` picks: a ``model`` given -> transformers; back-translation of a language Apertium can round-trip
-> apertium; otherwise llm. Every candidate's lineage names the backend, the model(s), the pivot
language(s) and the pivot text, and the decoding parameters. A hop that produced nothing becomes a
rejected candidate (``empty_pivot``, ``empty_output``, ``backend_error``), never a silent drop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..errors import AugmentError, ConfigError
from ..record import Lineage, Record, Rejection, stable_hash
from ..seq2seq import COMPUTE_TYPES, Seq2SeqDecoding
from .base import register

logger = logging.getLogger(__name__)

SHARED = {
    "backend": "auto",
    "model": None,
    "revision": None,
    "device": "auto",
    "compute_type": "auto",
    "batch_size": 16,
    "num_beams": 4,
    "sample": None,  # None: the method's default
    "temperature": None,  # None: 1.0 for seq2seq sampling, the generator's temperature for llm
    "top_p": 0.95,
    "top_k": 0,
    "max_new_tokens": 256,
}
IGNORED = ("aug_p", "aug_min", "aug_max")
MODEL_BACKENDS = ("transformers", "ctranslate2")


class RewriteMethod:
    """What back-translation and paraphrase share: params, backends, LLM wiring, candidate rows."""

    source = "seeds"
    backends: tuple[str, ...] = ()
    extra: dict[str, Any] = {}
    default_sample = False

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        params = {k: v for k, v in params.items() if k not in IGNORED}
        allowed = {**SHARED, **self.extra}
        unknown = set(params) - set(allowed)
        if unknown:
            raise ConfigError(
                f"methods.params.{name}: unknown keys {sorted(unknown)}; known: {sorted(allowed)}"
            )
        self.name = name
        self.p: dict[str, Any] = {**allowed, **params}
        if self.p["backend"] not in ("auto", *self.backends):
            raise ConfigError(
                f"methods.params.{name}.backend must be one of auto, {', '.join(self.backends)}; "
                f"got {self.p['backend']!r}"
            )
        if self.p["compute_type"] not in COMPUTE_TYPES:
            raise ConfigError(f"methods.params.{name}.compute_type must be one of {', '.join(COMPUTE_TYPES)}")
        if int(self.p["batch_size"]) < 1:
            raise ConfigError(f"methods.params.{name}.batch_size must be >= 1")
        self.sample = self.default_sample if self.p["sample"] is None else bool(self.p["sample"])
        self.backend = "unset"
        self.model: str | None = None
        self.model_revision: str | None = None
        self.generator: Any = None
        self.gen_config: Any = None
        self._cache: Any = None
        self.exhausted = False
        self._language = "en"
        self._chosen = ""
        self.planning = False  # a dry run: no model is loaded

    # -- wiring --------------------------------------------------------------------------------
    def configure(self, gen_config: Any, cache: Any) -> None:
        """Called by the pipeline: the generator for the llm backend, and the response cache."""
        self.gen_config = gen_config
        self._cache = cache

    def _llm(self) -> Any:
        if self.generator is None:
            from ..generators import CachedGenerator, GeneratorConfig, load_generator

            inner = load_generator(self.gen_config or GeneratorConfig(), self._language)
            self.generator = CachedGenerator(inner, self._cache)
            self.model, self.model_revision = inner.model_id, inner.revision
        return self.generator

    def _over_budget(self) -> bool:
        cap = getattr(self.gen_config, "max_tokens_total", None)
        g = self.generator
        if cap is not None and g is not None and g.prompt_tokens + g.completion_tokens >= cap:
            if not self.exhausted:
                logger.warning("%s: token budget spent; stopping generation cleanly", self.name)
            self.exhausted = True
        return self.exhausted

    def decoding(self, seed: int, *, sample: bool | None = None) -> Seq2SeqDecoding:
        sample = self.sample if sample is None else sample
        temperature = self.p["temperature"]
        if temperature is None:
            temperature = self.gen_config.temperature if self._chosen == "llm" and self.gen_config else 1.0
        return Seq2SeqDecoding(
            num_beams=int(self.p["num_beams"]),
            sample=sample,
            temperature=float(temperature) if float(temperature) > 0 else 1.0,
            top_p=float(self.p["top_p"]),
            top_k=int(self.p["top_k"]),
            max_new_tokens=int(self.p["max_new_tokens"]),
            seed=seed % 2**31,
        )

    def _decoding_params(self, dec: Seq2SeqDecoding) -> dict[str, Any]:
        d = dec.to_dict()
        if self._chosen == "apertium":
            return {}
        if self._chosen == "llm":
            d.pop("num_beams", None)
            d.pop("top_k", None)
            d.pop("max_new_tokens", None)
        return d

    def params(self) -> dict[str, Any]:
        """What made the rows (decoding goes under ``decoding``, set per call)."""
        chosen = self._chosen or self.p["backend"]
        keys = ["backend"]
        if chosen in MODEL_BACKENDS:
            keys += [
                "model",
                "revision",
                "device",
                "batch_size",
                *(["compute_type"] if chosen == "ctranslate2" else []),
            ]
        keys += [k for k in self.extra if k not in ("pivots",)]
        shown = {k: self.p[k] for k in keys if self.p.get(k) not in (None, {}, [])}
        shown["backend"] = chosen
        return shown

    def _batch_seed(self, run_seed: int, batch: Sequence[Record], field: str) -> int:
        """The seed of a batch's decoding. Where nothing is sampled (Apertium, beam search) it cannot
        change a text, so it does not depend on the batch either: rows, their ids and their lineage
        are then the same whatever ``--batch-size``. Sampled rewrites depend on the batch's texts."""
        if self._chosen == "apertium" or (not self.sample and self._chosen != "llm"):
            return int(stable_hash(run_seed, self.name, field, length=8), 16)
        return int(stable_hash(run_seed, self.name, field, [s.id for s in batch], length=8), 16)

    def _lineage(self, params: dict[str, Any], field: str, seed: int, model: str | None) -> Lineage:
        return Lineage(
            backend=self.backend,
            model=model or self.model,
            model_revision=self.model_revision,
            params={**params, "field": field},
            random_seed=seed,
        )

    @staticmethod
    def _failed(seed: Record, field: str, method: str, lineage: Lineage, index: int, code: str, why: str):
        return seed.derive(field, "", method=method, lineage=lineage, index=index).rejected(
            Rejection("generate", code, why)
        )


# -- back-translation ------------------------------------------------------------------------------
class BackTranslateMethod(RewriteMethod):
    """source -> pivot(s) -> source. ``pivots`` lists pivot languages, each making its share of the ``n``
    candidates; a pivot written ``de>fr`` is a chain (source -> de -> fr -> source)."""

    backends = ("transformers", "ctranslate2", "apertium", "llm")
    extra = {"pivots": None, "models": {}, "lang_codes": {}}

    def setup(self, seeds: Sequence[Record], language: str) -> None:
        from ..translation import default_pivots, resolve_backend

        self._language = language
        self._seeds = list(seeds)
        self._whole: dict[tuple, dict[str, list[Record]]] = {}
        self._chosen = resolve_backend(self.p["backend"], language, self.p["model"], self.p["models"])
        pivots = self.p["pivots"] or default_pivots(self._chosen, language)
        if isinstance(pivots, str):
            pivots = [x.strip() for x in pivots.split(",") if x.strip()]
        self.pivots: list[list[str]] = [[h.strip() for h in str(p).split(">") if h.strip()] for p in pivots]
        if not self.pivots or any(not chain for chain in self.pivots):
            raise ConfigError(f"methods.params.{self.name}.pivots is empty")
        src = language.split("-")[0].lower()
        for chain in self.pivots:
            if src in [h.lower() for h in chain]:
                raise ConfigError(f"pivot {'>'.join(chain)!r} contains the source language {language!r}")
        self.translator = self._translator()
        self.backend = self.translator.backend
        if (
            self._chosen in MODEL_BACKENDS and not self.planning
        ):  # load every direction now: a bad model fails before any output
            for chain in self.pivots:
                hops = [language, *chain, language]
                for a, b in zip(hops, hops[1:], strict=False):
                    self.translator._engine(a, b)
            self.backend = self.translator.backend
        self.model = self._models_text(self.pivots[0]) if self._chosen != "llm" else None

    def _translator(self):
        from ..translation import ApertiumTranslator, LLMTranslator, Seq2SeqTranslator

        if self._chosen in MODEL_BACKENDS:
            return Seq2SeqTranslator(
                self._chosen,
                self.p["model"],
                self.p["models"],
                device=self.p["device"],
                compute_type=self.p["compute_type"],
                batch_size=int(self.p["batch_size"]),
                revision=self.p["revision"],
                lang_codes=self.p["lang_codes"],
            )
        if self._chosen == "apertium":
            return ApertiumTranslator()
        return _LazyLLMTranslator(self, LLMTranslator)

    def _models_text(self, chain: list[str]) -> str:
        hops = [self._language, *chain, self._language]
        models = [self.translator.model_for(a, b)[0] for a, b in zip(hops, hops[1:], strict=False)]
        return models[0] if len(set(models)) == 1 else " -> ".join(models)

    def plan(self, seeds: Sequence[Record], field: str, n: int) -> dict[str, int]:
        """Dry run: LLM calls and token estimates (0 for model and Apertium backends)."""
        from ..translation import resolve_backend

        self._chosen = self._chosen or resolve_backend(
            self.p["backend"], self._language, self.p["model"], self.p["models"]
        )
        if self._chosen != "llm":
            return {}  # no LLM calls
        pivots = max(1, len(self.p["pivots"] or ["en"]))
        per_hop = [_llm_cap(int(self.p["max_new_tokens"]), len(s.fields.get(field, ""))) for s in seeds]
        chars = sum(len(s.fields.get(field, "")) for s in seeds)
        return {
            "calls": len(seeds) * pivots * 2,
            "prompt_tokens": int(len(seeds) * pivots * 2 * 120 + chars * pivots * 2),
            "completion_tokens_max": sum(per_hop) * (pivots + n),
        }

    def generate(self, batch: Sequence[Record], field: str, n: int, run_seed: int) -> list[Record]:
        if self._chosen == "llm" and self._over_budget():
            return []
        rs = self._batch_seed(run_seed, batch, field)
        texts = [s.fields[field] for s in batch]
        shares = [
            n // len(self.pivots) + (1 if i < n % len(self.pivots) else 0) for i in range(len(self.pivots))
        ]
        out: dict[str, list[Record]] = {s.id: [] for s in batch}
        index = 0
        for chain, k in zip(self.pivots, shares, strict=True):
            if k == 0:
                continue
            whole = self._whole_seed_set(chain, k, field, rs, index) if self._chosen == "apertium" else {}
            if all(s.id in whole for s in batch):
                for s in batch:
                    out[s.id].extend(whole[s.id])
            else:
                for s, rows in zip(
                    batch, self._round_trip(batch, texts, chain, k, field, rs, index), strict=True
                ):
                    out[s.id].extend(rows)
            index += k
        return [r for s in batch for r in out[s.id]]

    def _whole_seed_set(self, chain: list[str], k: int, field: str, rs: int, index: int):
        """Apertium carries state from one line to the next (transfer variables: a word nine lines up
        changes a translation), so a text's translation depends on the lines sent with it. Every seed
        goes through in one call, in seed order, the first time: rows then do not depend on the batch
        size or on which batches a resumed run redoes."""
        key = (tuple(chain), k, field, rs, index)
        if key not in self._whole:
            seeds = [s for s in getattr(self, "_seeds", ()) if s.fields.get(field)]
            rows = self._round_trip(seeds, [s.fields[field] for s in seeds], chain, k, field, rs, index)
            self._whole[key] = {s.id: r for s, r in zip(seeds, rows, strict=True)}
        return self._whole[key]

    def _round_trip(
        self,
        batch: Sequence[Record],
        texts: list[str],
        chain: list[str],
        k: int,
        field: str,
        rs: int,
        index: int,
    ) -> list[list[Record]]:
        hops = [self._language, *chain, self._language]
        forward = self.decoding(rs, sample=False if self._chosen == "llm" else None)
        back = self.decoding(rs + 1, sample=True if self._chosen == "llm" and k > 1 else None)
        params = {
            **self.params(),
            "pivots": chain,
            "decoding": self._decoding_params(back),
        }
        current: list[str | None] = list(texts)
        error: str | None = None
        for a, b in zip(hops[:-2], hops[1:-1], strict=True):  # source -> ... -> last pivot, 1-best
            live = [i for i, t in enumerate(current) if t]
            try:
                res = self.translator.translate([current[i] for i in live], a, b, 1, forward)
            except AugmentError:
                raise
            except Exception as exc:  # a runtime failure of this batch: rejected rows, not a crash
                error = f"{a}->{b}: {type(exc).__name__}: {exc}"
                logger.warning("%s: %s", self.name, error)
                current = [None] * len(current)
                break
            nxt: list[str | None] = [None] * len(current)
            for i, r in zip(live, res, strict=True):
                nxt[i] = r[0] if r else None
            current = nxt
        pivot_texts = current
        outputs: list[list[str | None]] = [[] for _ in texts]
        live = [i for i, t in enumerate(pivot_texts) if t]
        if live and error is None:
            try:
                res = self.translator.translate([pivot_texts[i] for i in live], hops[-2], hops[-1], k, back)
                for i, r in zip(live, res, strict=True):
                    outputs[i] = list(r)
            except AugmentError:
                raise
            except Exception as exc:
                error = f"{hops[-2]}->{hops[-1]}: {type(exc).__name__}: {exc}"
                logger.warning("%s: %s", self.name, error)
        self.backend = self.translator.backend
        model_text = self._models_text(chain)  # after the calls: an LLM is loaded by the first one
        if self._chosen == "llm":
            self.model = self.translator.model_for(hops[0], hops[1])[0]
        rows: list[list[Record]] = []
        for j, seed in enumerate(batch):
            lineage = self._lineage(
                {**params, "pivot_text": pivot_texts[j]}, field, rs, model_text or self.model
            )
            mine: list[Record] = []
            if error is not None:
                mine = [
                    self._failed(seed, field, self.name, lineage, index + c, "backend_error", error)
                    for c in range(k)
                ]
            elif not pivot_texts[j]:
                why = f"{'->'.join(hops[:-1])} gave no text"
                mine = [
                    self._failed(seed, field, self.name, lineage, index + c, "empty_pivot", why)
                    for c in range(k)
                ]
            else:
                outs = outputs[j]
                if self._chosen == "apertium":
                    outs = outs[:1]  # rule-based: one output per pivot, whatever n
                for c, text in enumerate(outs):
                    if text:
                        mine.append(
                            seed.derive(field, text, method=self.name, lineage=lineage, index=index + c)
                        )
                    else:
                        why = f"{hops[-2]}->{hops[-1]} gave no text"
                        mine.append(
                            self._failed(seed, field, self.name, lineage, index + c, "empty_output", why)
                        )
            rows.append(mine)
        return rows


class _LazyLLMTranslator:
    """Builds the LLM translator on first use, so a dry run or setup loads no model."""

    def __init__(self, method: RewriteMethod, cls: Any) -> None:
        self.method, self.cls, self._inner = method, cls, None
        self.backend = "llm"

    def _get(self):
        if self._inner is None:
            self._inner = self.cls(self.method._llm(), self.method._language)
            self.backend = self._inner.backend
        return self._inner

    def model_for(self, src: str, tgt: str) -> tuple[str, str | None]:
        if self._inner is None and self.method.generator is None:
            return "llm", None
        return self._get().model_for(src, tgt)

    def translate(self, texts, src, tgt, n, decoding):
        return self._get().translate(texts, src, tgt, n, decoding)


# -- paraphrase ------------------------------------------------------------------------------------
class ParaphraseMethod(RewriteMethod):
    """A paraphrase model (T5 / BART / Pegasus; ``prefix`` is put before each input) or an LLM prompt."""

    backends = ("transformers", "ctranslate2", "llm")
    extra = {"prefix": None, "domain": None, "label_names": {}, "template": None, "with_label": True}
    default_sample = True

    def setup(self, seeds: Sequence[Record], language: str) -> None:
        self._language = language
        backend = self.p["backend"]
        self._chosen = ("transformers" if self.p["model"] else "llm") if backend == "auto" else backend
        if self._chosen in MODEL_BACKENDS and self.planning:
            self.backend, self.prefix = self._chosen, self.p["prefix"] or ""
        elif self._chosen in MODEL_BACKENDS:
            if not self.p["model"]:
                raise ConfigError(
                    f"methods.params.{self.name}.model is needed for backend {self._chosen} "
                    "(a hub id or folder of a seq2seq paraphraser, e.g. humarin/chatgpt_paraphraser_on_T5_base)"
                )
            from ..seq2seq import load_seq2seq

            self.engine = load_seq2seq(
                self.p["model"],
                self._chosen,
                device=self.p["device"],
                compute_type=self.p["compute_type"],
                batch_size=int(self.p["batch_size"]),
                revision=self.p["revision"],
            )
            self.backend, self.model, self.model_revision = (
                self.engine.backend,
                self.engine.model_id,
                self.engine.revision,
            )
            prefix = self.p["prefix"]
            if prefix is None:  # T5 paraphrasers are trained with a task prefix
                name = type(self.engine.tokenizer).__name__  # type: ignore[attr-defined]
                prefix = "paraphrase: " if name.startswith(("T5", "MT5")) else ""
            self.prefix = prefix
        else:
            self.backend = "llm"
            self.prefix = ""

    def params(self) -> dict[str, Any]:
        p = super().params()
        if self._chosen in MODEL_BACKENDS:
            p["prefix"] = getattr(self, "prefix", self.p["prefix"])
            for k in ("domain", "label_names", "template", "with_label"):
                p.pop(k, None)
        return p

    def plan(self, seeds: Sequence[Record], field: str, n: int) -> dict[str, int]:
        if (self.p["model"] and self.p["backend"] == "auto") or self.p["backend"] in MODEL_BACKENDS:
            return {}  # no LLM calls
        chars = sum(len(s.fields.get(field, "")) for s in seeds)
        cap = int(self.p["max_new_tokens"])
        return {
            "calls": len(seeds) * n,
            "prompt_tokens": len(seeds) * 120 + chars,
            "completion_tokens_max": n * sum(_llm_cap(cap, len(s.fields.get(field, ""))) for s in seeds),
        }

    def generate(self, batch: Sequence[Record], field: str, n: int, run_seed: int) -> list[Record]:
        if self._chosen == "llm" and self._over_budget():
            return []
        rs = self._batch_seed(run_seed, batch, field)
        dec = self.decoding(rs, sample=True if self._chosen == "llm" else None)
        texts = [s.fields[field] for s in batch]
        error = None
        try:
            if self._chosen == "llm":
                outputs = self._llm_paraphrase(batch, texts, n, dec)
            else:
                outputs = self.engine.generate(texts, n, dec, prefix=self.prefix)  # type: ignore[assignment]
        except AugmentError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("%s: %s", self.name, error)
            outputs = [[None] * n for _ in texts]
        params = {**self.params(), "decoding": self._decoding_params(dec)}
        if self._chosen == "llm":
            params["mode"] = "chat" if self._llm().chat else "completion"
        out: list[Record] = []
        for seed, outs in zip(batch, outputs, strict=True):
            lineage = self._lineage(params, field, rs, self.model)
            for c in range(n):
                text = outs[c] if c < len(outs) else None
                if text:
                    out.append(seed.derive(field, text, method=self.name, lineage=lineage, index=c))
                else:
                    code, why = (
                        ("backend_error", error) if error else ("empty_output", "the model gave no text")
                    )
                    out.append(self._failed(seed, field, self.name, lineage, c, code, why))
        return out

    def _llm_paraphrase(self, batch: Sequence[Record], texts: list[str], n: int, dec: Seq2SeqDecoding):
        from ..generators import Decoding
        from ..prompts import render
        from ..translation import _first_line

        gen = self._llm()
        mode = "chat" if gen.chat else "completion"
        names = self.p["label_names"] or {}
        prompts = []
        for seed, text in zip(batch, texts, strict=True):
            label = names.get(seed.label, seed.label) if (self.p["with_label"] and seed.label) else None
            body = render(
                "paraphrase",
                mode,
                self._language,
                self.p["template"],
                text=text,
                label=label,
                domain=self.p["domain"],
            )
            prompts.append([{"role": "user", "content": body}] if mode == "chat" else body)
        longest = max(len(t) for t in texts)
        g = self.gen_config
        decoding = Decoding(
            max_new_tokens=min(
                int(self.p["max_new_tokens"]), g.max_new_tokens if g else 160, 2 * longest + 32
            ),
            temperature=dec.temperature,
            top_p=dec.top_p,
            stop=("\n",) if mode == "completion" else (),
            seed=dec.seed,
        )
        results = gen.generate(prompts, n, decoding)
        return [[_first_line(c.text) if c.text else None for c in samples] for samples in results]


def _llm_cap(max_new_tokens: int, chars: int) -> int:
    """Tokens an LLM may write for a rewrite of a text of ``chars`` characters."""
    return min(max_new_tokens, 2 * chars + 32)


register("backtranslate", BackTranslateMethod)
register("paraphrase", ParaphraseMethod)
