"""LLM self-instruct: new labelled examples (classification) or new instruction rows (instruction data).

Classification: for each anchor seed, a few-shot prompt shows ``k`` seeds of its label (and, for chat
models, a few of other labels as contrast) and asks for ``n`` new examples of that label.

Instruction data (the Self-Instruct / Alpaca loop): for each anchor seed, ``k`` seed instructions
bootstrap ``n`` new ones; a new instruction whose ROUGE-L (character-level for CJK) to a seed
instruction or to an earlier one from the same prompt exceeds ``rouge_threshold`` is rejected; each
survivor is then answered by the same model to make its output.

Every output carries the prompt's seeds as parents (the anchor first) with relation ``demo``: the
candidate was inspired by them, not rewritten from them, so the parent-based checks (length ratio,
similarity band) do not apply, while dedup, label consistency and novelty do. Parse failures, backend
errors and near-copies come back as rejected candidates holding the raw text.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from ..generators import (
    CachedGenerator,
    Decoding,
    GeneratorConfig,
    ResponseCache,
    default_is_chat,
    load_generator,
)
from ..prompts import ANSWER_STOPS, STOPS, parse_items, render
from ..record import CLASSIFICATION, Lineage, Record, Rejection, stable_hash
from ..rouge import rouge_l
from .base import candidate_seed, register

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "k": 3,  # demonstrations per prompt
    "contrasts": 2,  # examples of other labels shown to chat models
    "domain": None,  # a few words on the domain, e.g. "bank customer service"
    "label_names": {},  # label -> how to say it in the prompt, e.g. {card_lost: 银行卡挂失}
    "template": None,  # Jinja override for the generation prompt (path or text)
    "answer_template": None,  # Jinja override for the answer prompt (instruction data)
    "rouge_threshold": 0.7,
}
IGNORED = ("aug_p", "aug_min", "aug_max")


class SelfInstructMethod:
    source = "seeds"

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        params = {k: v for k, v in params.items() if k not in IGNORED}
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"methods.params.{name}: unknown keys {sorted(unknown)}")
        self.name = name
        self.p = {**DEFAULTS, **params}
        if int(self.p["k"]) < 1:
            raise ConfigError(f"methods.params.{name}.k must be >= 1")
        self.gen_config = GeneratorConfig()
        self.generator: CachedGenerator | None = None
        self.backend = "llm"
        self.model: str | None = None
        self.model_revision: str | None = None
        self.budget_left: int | None = None
        self.exhausted = False
        self._seeds: Sequence[Record] = ()
        self._language = "en"
        self._planning = False

    # -- wiring --------------------------------------------------------------------------------
    def configure(self, gen_config: GeneratorConfig, cache: ResponseCache | None) -> None:
        """Called by the pipeline before setup(): which generator, and where responses are cached."""
        self.gen_config = gen_config
        self._cache = cache
        self.budget_left = gen_config.max_tokens_total

    def setup(self, seeds: Sequence[Record], language: str) -> None:
        self._seeds = list(seeds)
        self._language = language
        self._task = seeds[0].task if seeds else CLASSIFICATION
        if self._task == CLASSIFICATION and len({s.label for s in seeds}) < 1:
            raise ConfigError("self_instruct needs labelled seeds")

    def _gen(self) -> CachedGenerator:
        if self.generator is None:
            inner = load_generator(self.gen_config, self._language)
            self.generator = CachedGenerator(inner, getattr(self, "_cache", None))
            self.backend, self.model, self.model_revision = inner.backend, inner.model_id, inner.revision
        return self.generator

    @property
    def mode(self) -> str:
        chat = self.gen_config.chat
        if chat is None and self.generator is None and self._planning:
            # without loading: the embedded defaults are chat models, except Gemma-3 (base) when the
            # packaged Qwen is not in the cache
            chat = self.gen_config.model is not None or default_is_chat(self._language)
        if chat is None:
            return "chat" if self._gen().chat else "completion"
        return "chat" if chat else "completion"

    def params(self) -> dict[str, Any]:
        g = self.gen_config
        p = {k: v for k, v in self.p.items() if v not in (None, {}, [])}
        p.update({"max_new_tokens": g.max_new_tokens, "temperature": g.temperature, "top_p": g.top_p})
        return p

    def decoding(self, seed: int, stops: tuple[str, ...], max_new: int | None = None) -> Decoding:
        g = self.gen_config
        return Decoding(
            max_new_tokens=max_new or g.max_new_tokens,
            temperature=g.temperature,
            top_p=g.top_p,
            stop=stops,
            seed=seed % 2**31,
        )

    # -- planning (dry run) --------------------------------------------------------------------
    def plan(self, seeds: Sequence[Record], field: str, n: int) -> dict[str, int]:
        """Calls and token estimates without loading a model."""
        self._planning = True
        calls = len(seeds) * (1 if self._task == CLASSIFICATION else 1 + n)
        prompt_chars = 0
        for s in seeds:
            prompt_chars += 220 + sum(len(d.fields.get(field, "")) for d in self._demos(s, field, 0)[0])
        prompt_tokens = int(prompt_chars * (1.0 if self._language.startswith("zh") else 0.3))
        if self._task != CLASSIFICATION:
            prompt_tokens += len(seeds) * n * 60
        return {
            "calls": calls,
            "prompt_tokens": prompt_tokens,
            "completion_tokens_max": calls * self.gen_config.max_new_tokens,
        }

    # -- generation ----------------------------------------------------------------------------
    def _demos(self, anchor: Record, field: str, rs: int) -> tuple[list[Record], list[Record]]:
        rng = random.Random(rs)
        k = int(self.p["k"])
        if self._task == CLASSIFICATION:
            same = [s for s in self._seeds if s.label == anchor.label and s.id != anchor.id]
            others = [s for s in self._seeds if s.label != anchor.label]
        else:
            same = [s for s in self._seeds if s.id != anchor.id]
            others = []
        demos = [anchor, *rng.sample(same, min(k - 1, len(same)))]
        contrasts = (
            rng.sample(others, min(int(self.p["contrasts"]), len(others))) if self.mode == "chat" else []
        )
        return demos, contrasts

    def _lineage(self, rs: int, demos: Sequence[Record], field: str, extra: dict[str, Any]) -> Lineage:
        return Lineage(
            backend=self.backend,
            model=self.model,
            model_revision=self.model_revision,
            params={
                **self.params(),
                "field": field,
                "relation": "demo",
                "demo_ids": [d.id for d in demos],
                "mode": self.mode,
                **extra,
            },
            random_seed=rs,
        )

    def _charge(self, completions) -> None:
        if self.budget_left is None:
            return
        spent = sum(c.completion_tokens + c.prompt_tokens for c in completions if not c.cached)
        self.budget_left -= spent
        if self.budget_left <= 0:
            self.exhausted = True

    def generate(self, batch: Sequence[Record], field: str, n: int, run_seed: int) -> list[Record]:
        out: list[Record] = []
        for anchor in batch:
            if self.exhausted:
                logger.warning("%s: token budget spent; stopping generation cleanly", self.name)
                break
            if self._task == CLASSIFICATION:
                out.extend(self._classify(anchor, field, n, run_seed))
            else:
                out.extend(self._instruction(anchor, field, n, run_seed))
        return out

    def _prompt(self, kind: str, override: str | None, **values) -> Any:
        text = render(kind, self.mode, self._language, override, **values)
        return [{"role": "user", "content": text}] if self.mode == "chat" else text

    def _raw(self, completion_text: str | None, k: int) -> str | None:
        if completion_text is None or self.mode == "chat":
            return completion_text
        return f"{k + 1}." + completion_text  # the base model continued the numbered list

    def _classify(self, anchor: Record, field: str, n: int, run_seed: int) -> list[Record]:
        rs = candidate_seed(run_seed, self.name, anchor.id, 0)
        demos, contrasts = self._demos(anchor, field, rs)
        names = self.p["label_names"] or {}
        label = names.get(anchor.label, anchor.label)
        prompt = self._prompt(
            "classify",
            self.p["template"],
            label=label,
            n=n,
            domain=self.p["domain"],
            demos=[d.fields[field] for d in demos],
            contrasts=[{"label": names.get(c.label, c.label), "text": c.fields[field]} for c in contrasts],
        )
        gen = self._gen()
        completion = gen.generate([prompt], 1, self.decoding(rs, STOPS[self.mode]))[0][0]
        self._charge([completion])
        extra = {"prompt_hash": stable_hash(prompt, length=12), "contrast_ids": [c.id for c in contrasts]}
        lineage = self._lineage(rs, demos, field, extra)
        return self._items(anchor, field, completion, n, lineage, demos, [d.fields[field] for d in demos])

    def _items(self, anchor, field, completion, n, lineage, demos, demo_texts) -> list[Record]:
        parents = tuple(d.id for d in demos)
        if completion.text is None:
            c = anchor.derive(field, "", method=self.name, lineage=lineage, index=0)
            return [
                _with_parents(c, parents).rejected(
                    Rejection("generate", "backend_error", completion.error or "")
                )
            ]
        raw = self._raw(completion.text, len(demo_texts))
        items = [i for i in parse_items(raw) if i not in demo_texts][:n]
        if not items:
            c = anchor.derive(field, raw, method=self.name, lineage=lineage, index=0)
            return [
                _with_parents(c, parents).rejected(
                    Rejection(
                        "generate", "parse_error", "no list items in the model's output (raw text kept)"
                    )
                )
            ]
        return [
            _with_parents(anchor.derive(field, t, method=self.name, lineage=lineage, index=i), parents)
            for i, t in enumerate(items)
        ]

    def _instruction(self, anchor: Record, field: str, n: int, run_seed: int) -> list[Record]:
        rs = candidate_seed(run_seed, self.name, anchor.id, 0)
        demos, _ = self._demos(anchor, field, rs)
        demo_texts = [d.fields["instruction"] for d in demos]
        prompt = self._prompt(
            "instructions", self.p["template"], n=n, domain=self.p["domain"], demos=demo_texts
        )
        gen = self._gen()
        completion = gen.generate([prompt], 1, self.decoding(rs, STOPS[self.mode]))[0][0]
        self._charge([completion])
        lineage = self._lineage(rs, demos, "instruction", {"prompt_hash": stable_hash(prompt, length=12)})
        drafts = self._items(anchor, "instruction", completion, n, lineage, demos, demo_texts)
        pool = [s.fields["instruction"] for s in self._seeds]
        out, answer = [], []
        for d in drafts:
            if d.rejection is not None:
                out.append(d)
                continue
            text = d.fields["instruction"]
            best = max((rouge_l(text, p) for p in pool), default=0.0)
            if best > float(self.p["rouge_threshold"]):
                out.append(
                    d.rejected(
                        Rejection(
                            "generate",
                            "rouge_too_close",
                            f"ROUGE-L {best:.3f} > {self.p['rouge_threshold']} to an existing instruction",
                        )
                    )
                )
                continue
            pool.append(text)
            answer.append(d)
        if answer:
            shots = [
                {"instruction": s.fields["instruction"], "output": s.fields["output"]} for s in demos[:2]
            ]
            prompts = [
                self._prompt(
                    "answer",
                    self.p["answer_template"],
                    instruction=d.fields["instruction"],
                    input="",
                    demos=shots,
                )
                for d in answer
            ]
            answers = gen.generate(
                prompts,
                1,
                self.decoding(rs + 1, ANSWER_STOPS[self.mode]),
            )
            self._charge([a[0] for a in answers])
            for d, (a,) in zip(answer, answers, strict=True):
                text = (a.text or "").strip()
                rec = replace(d, fields={**d.fields, "input": "", "output": text})
                if a.text is None:
                    rec = rec.rejected(Rejection("generate", "backend_error", a.error or ""))
                elif not text:
                    rec = rec.rejected(Rejection("generate", "empty_output", "the model gave no answer"))
                out.append(rec)
        return out


def _with_parents(rec: Record, parents: tuple[str, ...]) -> Record:
    return replace(rec, parent_ids=parents)


register("self_instruct", SelfInstructMethod)
