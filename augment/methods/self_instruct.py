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

The prompts of a whole batch go to the model in one ``generate`` call (classification: every anchor's
prompt; instruction data: every anchor's draft prompt, then every answer prompt), each with its own
anchor's sampling seed, so a served model sees them concurrently and a local one can batch them; the
rows are the same as one call per anchor would give. The model is the run's shared generator
(``ctx.generator()``, loaded on first use) and every call draws on the run's token budget: when it is
spent, the method stops before its next group of anchors and the seeds it did not reach are left for
``--resume``. The label of a row is always its anchor's label,
whatever the seeds or the model's output say: the model writes text, never control fields.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..generators import Decoding, GeneratorConfig, default_is_chat
from ..prompts import ANSWER_STOPS, STOPS, parse_items, render
from ..record import CLASSIFICATION, Record, stable_hash
from ..rouge import rouge_l
from .base import Outcome, SeedMethod, candidate_seed, register_method

if TYPE_CHECKING:
    from ..context import RunContext

INSTRUCTION_FIELD = "instruction"


@dataclass
class SelfInstructConfig:
    """The prompts of self-instruct (which model and how it decodes: the ``generator`` section)."""

    k: int = field(default=3, metadata={"help": "demonstrations per prompt (the anchor seed and k-1 more)"})
    contrasts: int = field(default=2, metadata={"help": "examples of other labels shown to chat models"})
    domain: str | None = field(
        default=None, metadata={"help": 'a few words on the domain, e.g. "bank customer service"'}
    )
    label_names: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "label -> how to say it in the prompt, e.g. {card_lost: 银行卡挂失}"},
    )
    template: str | None = field(
        default=None, metadata={"help": "Jinja override for the generation prompt (path or text)"}
    )
    answer_template: str | None = field(
        default=None, metadata={"help": "Jinja override for the answer prompt (instruction data)"}
    )
    rouge_threshold: float = field(
        default=0.7,
        metadata={
            "help": "instruction data: reject a new instruction whose ROUGE-L to a known one exceeds this"
        },
    )

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if self.contrasts < 0:
            raise ConfigError(f"contrasts must be >= 0, got {self.contrasts}")
        if not 0.0 <= self.rouge_threshold <= 1.0:
            raise ConfigError(f"rouge_threshold must be in [0, 1], got {self.rouge_threshold}")


@register_method(
    "self_instruct",
    SelfInstructConfig,
    summary="an LLM writes new rows from few-shot prompts of seeds (new examples of a label, or new instructions)",
)
class SelfInstructMethod(SeedMethod):
    """See the module docstring."""

    backend = "llm"  # until the generator is loaded: then its backend
    relation = "demo"
    uses_llm = True

    def __init__(self, name: str, config: SelfInstructConfig) -> None:
        super().__init__(name, config)
        self.generator: Any = None

    # -- wiring --------------------------------------------------------------------------------
    def prepare(self, ctx: RunContext) -> None:
        if ctx.task == CLASSIFICATION and not ctx.seeds:
            raise ConfigError("self_instruct needs labelled seeds")

    @property
    def gen_config(self) -> GeneratorConfig:
        return self.ctx.generator_config if self.ctx is not None else GeneratorConfig()

    @property
    def _language(self) -> str:
        return self.ctx.language if self.ctx is not None else "en"

    @property
    def _task(self) -> str:
        return self.ctx.task if self.ctx is not None else CLASSIFICATION

    def _gen(self) -> Any:
        """The run's shared generator (loaded once per run, on first use), counted under this method."""
        if self.generator is None:
            if self.ctx is None:
                raise RuntimeError(f"{self.name}: setup() was not called")
            if self.ctx.planning:
                raise RuntimeError(f"{self.name}: a dry run loads no model")
            gen = self.ctx.generator(owner=self.name)
            self.backend, self.model, self.model_revision = gen.backend, gen.model_id, gen.revision
            self.generator = gen
        return self.generator

    @property
    def mode(self) -> str:
        chat = self.gen_config.chat
        if chat is None and self.generator is None and self.ctx is not None and self.ctx.planning:
            # without loading: the embedded defaults are chat models, except Gemma-3 (base) when the
            # packaged Qwen is not in the cache
            chat = self.gen_config.model is not None or default_is_chat(self._language)
        if chat is None:
            return "chat" if self._gen().chat else "completion"
        return "chat" if chat else "completion"

    def params(self) -> dict[str, Any]:
        g = self.gen_config
        p = super().params()
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
    def plan(self, seeds: Sequence[Record], field: str, n: int) -> dict[str, Any]:
        """Calls and token estimates without loading a model, and the first seed's prompt."""
        calls = len(seeds) * (1 if self._task == CLASSIFICATION else 1 + n)
        prompt_chars = 0
        for s in seeds:
            prompt_chars += 220 + sum(len(d.fields.get(field, "")) for d in self._demos(s, 0)[0])
        prompt_tokens = int(prompt_chars * (1.0 if self._language.startswith("zh") else 0.3))
        if self._task != CLASSIFICATION:
            prompt_tokens += len(seeds) * n * 60
        out: dict[str, Any] = {
            "calls": calls,
            "prompt_tokens": prompt_tokens,
            "completion_tokens_max": calls * self.gen_config.max_new_tokens,
        }
        if seeds:
            out["prompt"] = self._sample_prompt(seeds[0], field, n)
        return out

    def _sample_prompt(self, anchor: Record, field: str, n: int) -> str:
        """The first prompt the run would send for ``anchor`` (as text), for the dry run."""
        prompt = self._anchor_prompt(anchor, field, n, candidate_seed(0, self.name, anchor.id, 0))[0]
        return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)

    def _anchor_prompt(self, anchor: Record, field: str, n: int, rs: int):
        """(prompt, demonstrations, contrasts) for one anchor seed: new examples of its label
        (classification) or new instructions (instruction data), from demonstrations drawn with ``rs``."""
        demos, contrasts = self._demos(anchor, rs)
        if self._task != CLASSIFICATION:
            demo_texts = [d.fields[INSTRUCTION_FIELD] for d in demos]
            prompt = self._prompt(
                "instructions", self.config.template, n=n, domain=self.config.domain, demos=demo_texts
            )
            return prompt, demos, contrasts
        names = self.config.label_names or {}
        prompt = self._prompt(
            "classify",
            self.config.template,
            label=names.get(anchor.label, anchor.label),
            n=n,
            domain=self.config.domain,
            demos=[d.fields[field] for d in demos],
            contrasts=[{"label": names.get(c.label, c.label), "text": c.fields[field]} for c in contrasts],
        )
        return prompt, demos, contrasts

    # -- generation ----------------------------------------------------------------------------
    def transform_batch(
        self, batch: Sequence[Record], field: str, n: int, run_seed: int
    ) -> list[list[Outcome]]:
        """The batch's prompts in one call per step (see the module doc), in waves when the run has a
        token budget: each wave takes the next anchors while the tokens they are expected to cost (the
        tokens per call so far, or ``2 * max_new_tokens`` before the first) fit in what is left, at
        least one, and the budget is checked again before the next wave. A wave may overshoot the
        budget by what its estimate missed (at most one wave, and never more than one batch); the
        anchors not reached get no outcome, so the pipeline leaves them for ``--resume``. Without a
        budget the whole batch is one wave."""
        out: list[list[Outcome]] = [[] for _ in batch]
        start = 0
        while start < len(batch) and not self.ctx.budget.stop(self.name):
            wave = list(range(start, start + self._wave(len(batch) - start, n)))
            anchors = [batch[i] for i in wave]
            if self._task == CLASSIFICATION:
                results = self._classify(anchors, field, n, run_seed)
            else:
                results = self._instructions(anchors, n, run_seed)
            for i, outcomes in zip(wave, results, strict=True):
                out[i] = outcomes
            start = wave[-1] + 1
        return out

    def _wave(self, count: int, n: int) -> int:
        """How many of the next ``count`` anchors to send together (see :meth:`transform_batch`)."""
        left = self.ctx.budget.left
        if left is None:
            return count
        gen = self._gen()
        calls = getattr(gen, "calls", 0)
        if calls:
            per_call = (gen.prompt_tokens + gen.completion_tokens) / calls
        else:
            per_call = 2 * self.gen_config.max_new_tokens
        per_anchor = per_call * (1 if self._task == CLASSIFICATION else 1 + n)
        take, expected = 0, 0.0
        while take < count and (take == 0 or expected < left):
            take, expected = take + 1, expected + per_anchor
        return take

    def generate(self, batch: Sequence[Record], field: str, n: int, run_seed: int) -> list[Record]:
        if self._task == CLASSIFICATION:
            return super().generate(batch, field, n, run_seed)
        # instruction data: new rows are made from the instruction, whichever field is asked for
        recs = super().generate(batch, INSTRUCTION_FIELD, n, run_seed)
        # instruction data: per anchor, the drafts refused as too close come before the answered ones
        # (candidate ids keep each draft's position in the model's list)
        order = {s.id: i for i, s in enumerate(batch)}
        return sorted(
            recs,
            key=lambda r: (
                order[r.parent_ids[0]],
                r.rejection is None or r.rejection.code != "rouge_too_close",
            ),
        )

    def _demos(self, anchor: Record, rs: int) -> tuple[list[Record], list[Record]]:
        rng = random.Random(rs)
        seeds = self.ctx.seeds
        k = self.config.k
        if self._task == CLASSIFICATION:
            same = [s for s in seeds if s.label == anchor.label and s.id != anchor.id]
            others = [s for s in seeds if s.label != anchor.label]
        else:
            same = [s for s in seeds if s.id != anchor.id]
            others = []
        demos = [anchor, *rng.sample(same, min(k - 1, len(same)))]
        contrasts = rng.sample(others, min(self.config.contrasts, len(others))) if self.mode == "chat" else []
        return demos, contrasts

    def _prompt(self, kind: str, override: str | None, **values: Any) -> Any:
        text = render(kind, self.mode, self._language, override, **values)
        return [{"role": "user", "content": text}] if self.mode == "chat" else text

    def _raw(self, completion_text: str | None, k: int) -> str | None:
        if completion_text is None or self.mode == "chat":
            return completion_text
        return f"{k + 1}." + completion_text  # the base model continued the numbered list

    def _classify(self, anchors: Sequence[Record], field: str, n: int, run_seed: int) -> list[list[Outcome]]:
        """New examples of each anchor's label: one prompt per anchor, all in one call."""
        plans = []
        for anchor in anchors:
            rs = candidate_seed(run_seed, self.name, anchor.id, 0)
            plans.append((rs, *self._anchor_prompt(anchor, field, n, rs)))
        stops = STOPS[self.mode]
        completions = self._gen().generate(
            [prompt for _, prompt, _, _ in plans], 1, [self.decoding(rs, stops) for rs, *_ in plans]
        )
        out = []
        for (rs, prompt, demos, contrasts), (completion,) in zip(plans, completions, strict=True):
            extra = self._extra(demos, prompt, {"contrast_ids": [c.id for c in contrasts]})
            out.append(self._items(completion, n, rs, extra, demos, [d.fields[field] for d in demos]))
        return out

    def _extra(
        self, demos: Sequence[Record], prompt: Any, more: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """What every candidate of one prompt adds to the lineage's params."""
        return {
            "demo_ids": [d.id for d in demos],
            "mode": self.mode,
            "prompt_hash": stable_hash(prompt, length=12),
            **(more or {}),
        }

    def _items(
        self,
        completion: Any,
        n: int,
        rs: int,
        extra: dict[str, Any],
        demos: Sequence[Record],
        demo_texts: Sequence[str],
    ) -> list[Outcome]:
        """The new texts of one completion (demonstrations copied back are dropped), or one failure.
        The label is left to the anchor: nothing the model writes sets it."""
        parents = tuple(d.id for d in demos[1:])
        common = {"random_seed": rs, "params": extra, "parents": parents}
        if completion.text is None:
            return [Outcome(text="", failure=("backend_error", completion.error or ""), **common)]
        raw = self._raw(completion.text, len(demo_texts))
        items = [i for i in parse_items(raw) if i not in demo_texts][:n]
        if not items:
            why = "no list items in the model's output (raw text kept)"
            return [Outcome(text=raw, failure=("parse_error", why), **common)]
        return [Outcome(text=t, **common) for t in items]

    def _instructions(self, anchors: Sequence[Record], n: int, run_seed: int) -> list[list[Outcome]]:
        """New instructions for each anchor (every anchor's draft prompt in one call), the drafts too
        close to a known instruction refused, then every survivor answered (all in one more call)."""
        gen = self._gen()
        plans = []
        for anchor in anchors:
            rs = candidate_seed(run_seed, self.name, anchor.id, 0)
            prompt, demos, _ = self._anchor_prompt(anchor, INSTRUCTION_FIELD, n, rs)
            plans.append((rs, prompt, demos))
        stops = STOPS[self.mode]
        completions = gen.generate(
            [p for _, p, _ in plans], 1, [self.decoding(rs, stops) for rs, _, _ in plans]
        )
        threshold = self.config.rouge_threshold
        out: list[list[Outcome]] = []
        answer: list[tuple[int, int]] = []  # (anchor, draft) to answer
        prompts, decodings = [], []
        for a, ((rs, prompt, demos), (completion,)) in enumerate(zip(plans, completions, strict=True)):
            demo_texts = [d.fields[INSTRUCTION_FIELD] for d in demos]
            drafts = self._items(completion, n, rs, self._extra(demos, prompt), demos, demo_texts)
            out.append(drafts)
            pool = [s.fields[INSTRUCTION_FIELD] for s in self.ctx.seeds]  # and this anchor's drafts so far
            shots = [
                {"instruction": s.fields[INSTRUCTION_FIELD], "output": s.fields["output"]} for s in demos[:2]
            ]
            for i, d in enumerate(drafts):
                if d.failure is not None:
                    continue
                best = max((rouge_l(d.text, p) for p in pool), default=0.0)
                if best > threshold:
                    why = f"ROUGE-L {best:.3f} > {threshold} to an existing instruction"
                    d.failure = ("rouge_too_close", why)
                    continue
                pool.append(d.text)
                answer.append((a, i))
                prompts.append(
                    self._prompt(
                        "answer", self.config.answer_template, instruction=d.text, input="", demos=shots
                    )
                )
                decodings.append(self.decoding(rs + 1, ANSWER_STOPS[self.mode]))
        if prompts:
            answers = gen.generate(prompts, 1, decodings)
            for (a, i), (reply,) in zip(answer, answers, strict=True):
                d = out[a][i]
                text = (reply.text or "").strip()
                d.fields = {INSTRUCTION_FIELD: d.text, "input": "", "output": text}
                if reply.text is None:
                    d.failure = ("backend_error", reply.error or "")
                elif not text:
                    d.failure = ("empty_output", "the model gave no answer")
        return out
