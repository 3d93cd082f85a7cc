"""What rewrites a whole text, behind one interface: a seq2seq model, Apertium, or a prompted LLM.

Back-translation and paraphrase (:mod:`augment.methods.rewrite`) talk to a :class:`Rewriter` only; each
backend is one adapter here:

* :class:`Seq2SeqRewriter` (``transformers`` / ``ctranslate2``): a model of :mod:`augment.seq2seq` by hub
  id or path: a many-to-many translation model, a ``{src}``/``{tgt}`` template of one-pair models, one
  model per direction (``models``), or a paraphraser (T5 / BART / Pegasus, with a task ``prefix``);
* :class:`ApertiumRewriter` (``apertium``): rule-based translation as a program
  (:class:`augment.translation.ApertiumTranslator`); it translates, it does not paraphrase;
* :class:`LLMRewriter` (``llm``): prompted translation and paraphrase through the run's shared generator
  (:meth:`augment.context.RunContext.generator`), loaded on its first call, never in a dry run.

Besides ``translate`` and ``rewrite``, an adapter answers what the methods used to switch on its name for:
how it decodes (:meth:`Rewriter.sampling`, :attr:`Rewriter.default_temperature`), whether a batch's
random seed can change a text (:meth:`Rewriter.batch_independent`), what lineage records of it
(:meth:`Rewriter.params`, :meth:`Rewriter.decoding_params`, :meth:`Rewriter.rewrite_params`), whether it
draws on the run's token budget (:attr:`Rewriter.prompted`) and whether a text's output depends on the
texts sent with it (:attr:`Rewriter.keeps_line_state`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from .errors import ConfigError
from .seq2seq import Seq2SeqDecoding, load_seq2seq
from .translation import DEFAULT_MT_TEMPLATE, ApertiumTranslator, base_lang, language_name, parallel_examples

logger = logging.getLogger(__name__)

MODEL_BACKENDS = ("transformers", "ctranslate2")
Role = Literal["pivot", "output", "paraphrase"]
Outputs = list[list[str | None]]


class Rewriter(Protocol):
    """A backend that rewrites whole texts: ``n`` outputs per input text, in input order."""

    kind: str  # the ``backend`` setting it implements: transformers, ctranslate2, apertium or llm
    backend: str  # the runtime as lineage records it (with versions); complete once loaded
    prompted: bool  # an LLM: its calls draw on the run's token budget
    keeps_line_state: bool  # a text's output depends on the texts sent with it (Apertium)

    @property
    def default_temperature(self) -> float:
        """The sampling temperature when the method's config gives none."""
        ...

    def load(self, directions: Sequence[tuple[str, str]] = ()) -> None:
        """Load now what the calls will use (each translation direction; the one model when empty), so a
        bad model fails before any output. Never called in a dry run."""
        ...

    def model_for(self, src: str | None = None, tgt: str | None = None) -> tuple[str | None, str | None]:
        """The model (id or path) and revision of one direction (or of the paraphraser), for lineage;
        (None, None) while that is not known yet (an LLM before its first call)."""
        ...

    def params(self) -> dict[str, Any]:
        """The backend's settings that lineage records (model, device, ...)."""
        ...

    def sampling(self, configured: bool, n: int, role: Role) -> bool:
        """Whether a call samples: ``configured`` is the method's setting, ``n`` the outputs wanted per
        text, ``role`` the call's place: a pivot hop, a back-translation's last hop, or a paraphrase."""
        ...

    def batch_independent(self, sample: bool) -> bool:
        """True when the random seed cannot change a text, so it need not depend on the batch."""
        ...

    def decoding_params(self, decoding: Seq2SeqDecoding) -> dict[str, Any]:
        """The part of ``decoding`` this backend uses, for lineage."""
        ...

    def rewrite_params(self) -> dict[str, Any]:
        """What lineage records of a paraphrase call besides the decoding."""
        ...

    def translate(
        self, texts: Sequence[str], src: str, tgt: str, n: int, decoding: Seq2SeqDecoding
    ) -> Outputs:
        """``n`` translations (None: no text) of each text from ``src`` to ``tgt``."""
        ...

    def rewrite(
        self, texts: Sequence[str], n: int, decoding: Seq2SeqDecoding, labels: Sequence[str | None]
    ) -> Outputs:
        """``n`` paraphrases (None: no text) of each text; ``labels`` (or None) may be shown to a model."""
        ...


# -- seq2seq models ------------------------------------------------------------------------------
class Seq2SeqRewriter:
    """A transformers or CTranslate2 seq2seq model: one per direction, or one for all; each loaded once
    per process (:func:`augment.seq2seq.load_seq2seq`)."""

    prompted = False
    keeps_line_state = False
    default_temperature = 1.0

    def __init__(
        self,
        runtime: str,
        model: str | None = None,
        models: dict[str, str] | None = None,
        *,
        device: str | None = "auto",
        compute_type: str = "auto",
        batch_size: int = 16,
        revision: str | None = None,
        lang_codes: dict[str, str] | None = None,
        paraphraser: bool = False,
        prefix: str | None = None,
    ) -> None:
        self.kind = self.backend = runtime
        self.model = model
        self.template = model or DEFAULT_MT_TEMPLATE
        self.models = dict(models or {})
        self.device, self.compute_type, self.batch_size = device, compute_type, batch_size
        self.revision = revision
        self.lang_codes = tuple(sorted((lang_codes or {}).items()))
        self.paraphraser = paraphraser
        self.prefix = prefix  # a paraphraser's; None: chosen when the model loads
        self._loaded: dict[tuple[str, str | None], Any] = {}

    def _model(self, src: str | None, tgt: str | None) -> tuple[str, str | None]:
        key = f"{src}-{tgt}"
        if key in self.models:
            return self.models[key], None
        if src is not None and ("{src}" in self.template or "{tgt}" in self.template):
            return self.template.format(src=base_lang(src), tgt=base_lang(tgt or "")), self.revision
        return self.template, self.revision

    def model_for(self, src: str | None = None, tgt: str | None = None) -> tuple[str | None, str | None]:
        model, revision = self._model(src, tgt)
        engine = self._loaded.get((model, revision))
        return (model, engine.revision) if engine is not None else (model, revision)

    def _engine(self, src: str | None = None, tgt: str | None = None) -> Any:
        model, revision = self._model(src, tgt)
        engine = load_seq2seq(
            model,
            self.kind,
            device=self.device,
            compute_type=self.compute_type,
            batch_size=self.batch_size,
            revision=revision,
            lang_codes=self.lang_codes,
        )
        self._loaded[model, revision] = engine
        self.backend = engine.backend
        if self.paraphraser and self.prefix is None:  # T5 paraphrasers are trained with a task prefix
            name = type(engine.tokenizer).__name__
            self.prefix = "paraphrase: " if name.startswith(("T5", "MT5")) else ""
        return engine

    def load(self, directions: Sequence[tuple[str, str]] = ()) -> None:
        for src, tgt in directions or [(None, None)]:
            self._engine(src, tgt)

    def params(self) -> dict[str, Any]:
        settings = {
            "model": self.model,
            "revision": self.revision,
            "device": self.device,
            "batch_size": self.batch_size,
            **({"compute_type": self.compute_type} if self.kind == "ctranslate2" else {}),
        }
        shown = {k: v for k, v in settings.items() if v is not None}
        if self.paraphraser:
            shown["prefix"] = self.prefix if self.prefix is not None else ""
        return shown

    def sampling(self, configured: bool, n: int, role: Role) -> bool:
        return configured

    def batch_independent(self, sample: bool) -> bool:
        return not sample  # beam search: the seed changes nothing

    def decoding_params(self, decoding: Seq2SeqDecoding) -> dict[str, Any]:
        return decoding.to_dict()

    def rewrite_params(self) -> dict[str, Any]:
        return {}

    def translate(
        self, texts: Sequence[str], src: str, tgt: str, n: int, decoding: Seq2SeqDecoding
    ) -> Outputs:
        return self._engine(src, tgt).generate(texts, n, decoding, src_lang=src, tgt_lang=tgt)  # type: ignore[return-value]

    def rewrite(
        self, texts: Sequence[str], n: int, decoding: Seq2SeqDecoding, labels: Sequence[str | None]
    ) -> Outputs:
        engine = self._engine()
        return engine.generate(texts, n, decoding, prefix=self.prefix or "")  # type: ignore[return-value]


# -- Apertium --------------------------------------------------------------------------------------
class ApertiumRewriter(ApertiumTranslator):
    """Apertium (see :class:`augment.translation.ApertiumTranslator`): deterministic, one output per
    text whatever ``n``; a line's translation depends on the lines sent with it."""

    kind = "apertium"
    prompted = False
    keeps_line_state = True
    default_temperature = 1.0

    def load(self, directions: Sequence[tuple[str, str]] = ()) -> None:
        for src, tgt in directions:  # a missing pair fails now, before any output
            self._mode(src, tgt)

    def model_for(self, src: str | None = None, tgt: str | None = None) -> tuple[str | None, str | None]:
        if src is None or tgt is None:
            return None, None
        return super().model_for(src, tgt)

    def params(self) -> dict[str, Any]:
        return {}

    def sampling(self, configured: bool, n: int, role: Role) -> bool:
        return configured  # unused: rule-based

    def batch_independent(self, sample: bool) -> bool:
        return True

    def decoding_params(self, decoding: Seq2SeqDecoding) -> dict[str, Any]:
        return {}

    def rewrite_params(self) -> dict[str, Any]:
        return {}

    def rewrite(
        self, texts: Sequence[str], n: int, decoding: Seq2SeqDecoding, labels: Sequence[str | None]
    ) -> Outputs:
        raise ConfigError("apertium translates; it does not paraphrase (use a model or an LLM)")


# -- LLM -------------------------------------------------------------------------------------------
class LLMRewriter:
    """Prompted translation and paraphrase through a generator (see :mod:`augment.generators`).

    A chat model gets an instruction; a base model (the embedded Gemma) a few-shot list of parallel
    sentences (or a completion prompt) to continue, one line, stopped at the newline. The generator is
    asked for (``generator()``, the run's shared one) on the first call, so setup and a dry run load
    nothing. Decoding: the pivot of a back-translation is the greedy 1-best; its last hop samples when
    several outputs are wanted (else as configured); a paraphrase always samples, at the configured or
    the generator's temperature.
    """

    kind = "llm"
    prompted = True
    keeps_line_state = False

    def __init__(
        self,
        generator: Callable[[], Any],
        generator_config: Any,
        language: str,
        *,
        template: str | None = None,
        domain: str | None = None,
    ) -> None:
        self._get = generator
        self.generator_config = generator_config
        self.language = language
        self.template, self.domain = template, domain
        self._generator: Any = None
        self.backend = "llm"

    @property
    def generator(self) -> Any:
        if self._generator is None:
            self._generator = self._get()
            self.backend = f"llm {self._generator.backend}"
        return self._generator

    @property
    def default_temperature(self) -> float:
        return self.generator_config.temperature if self.generator_config is not None else 1.0

    @property
    def mode(self) -> str:
        return "chat" if self.generator.chat else "completion"

    def load(self, directions: Sequence[tuple[str, str]] = ()) -> None:
        """Nothing: the shared generator loads on the first call."""

    def model_for(self, src: str | None = None, tgt: str | None = None) -> tuple[str | None, str | None]:
        if self._generator is None:
            return None, None
        return self._generator.model_id, self._generator.revision

    def params(self) -> dict[str, Any]:
        return {}

    def sampling(self, configured: bool, n: int, role: Role) -> bool:
        if role == "pivot":
            return False
        if role == "output":
            return configured or n > 1
        return True

    def batch_independent(self, sample: bool) -> bool:
        return False

    def decoding_params(self, decoding: Seq2SeqDecoding) -> dict[str, Any]:
        d = decoding.to_dict()
        for key in ("num_beams", "top_k", "max_new_tokens"):
            d.pop(key, None)
        return d

    def rewrite_params(self) -> dict[str, Any]:
        return {"mode": self.mode}

    def _messages(self, body: str) -> Any:
        return [{"role": "user", "content": body}] if self.generator.chat else body

    def translation_prompt(self, text: str, src: str, tgt: str) -> Any:
        from .prompts import render

        zh = base_lang(self.language) == "zh"
        values = {
            "text": text,
            "src": language_name(src, zh),
            "tgt": language_name(tgt, zh),
            "examples": parallel_examples(src, tgt),
        }
        return self._messages(render("translate", self.mode, self.language, **values))

    def translate(
        self, texts: Sequence[str], src: str, tgt: str, n: int, decoding: Seq2SeqDecoding
    ) -> Outputs:
        from .generators import Decoding

        if not texts:
            return []
        gen = self.generator
        longest = max(len(t) for t in texts)
        dec = Decoding(
            max_new_tokens=min(decoding.max_new_tokens, 2 * longest + 32),
            temperature=decoding.temperature if decoding.sample else 0.0,
            top_p=decoding.top_p,
            stop=("\n",) if not gen.chat else (),
            seed=decoding.seed % 2**31,
        )
        results = gen.generate([self.translation_prompt(t, src, tgt) for t in texts], n, dec)
        out: Outputs = []
        for samples in results:
            row: list[str | None] = []
            for c in samples:
                text = first_line(c.text) if c.text is not None else None
                row.append(text or None)
                if c.text is None:
                    logger.debug("llm translation failed: %s", c.error)
            out.append(row)
        return out

    def rewrite(
        self, texts: Sequence[str], n: int, decoding: Seq2SeqDecoding, labels: Sequence[str | None]
    ) -> Outputs:
        from .generators import Decoding
        from .prompts import render

        if not texts:
            return []
        gen, mode = self.generator, self.mode
        prompts = [
            self._messages(
                render(
                    "paraphrase",
                    mode,
                    self.language,
                    self.template,
                    text=text,
                    label=label,
                    domain=self.domain,
                )
            )
            for text, label in zip(texts, labels, strict=True)
        ]
        longest = max(len(t) for t in texts)
        cap = self.generator_config.max_new_tokens if self.generator_config is not None else 160
        dec = Decoding(
            max_new_tokens=min(decoding.max_new_tokens, cap, 2 * longest + 32),
            temperature=decoding.temperature if decoding.sample else 0.0,
            top_p=decoding.top_p,
            stop=("\n",) if mode == "completion" else (),
            seed=decoding.seed,
        )
        results = gen.generate(prompts, n, dec)
        return [[first_line(c.text) if c.text else None for c in samples] for samples in results]


def first_line(text: str) -> str:
    """An LLM's answer as one line: the first non-empty one, without surrounding quotes."""
    for line in text.strip().splitlines():
        line = line.strip().strip('"“”「」')
        if line:
            return line
    return ""
