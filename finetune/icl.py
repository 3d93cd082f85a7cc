"""The in-context-learning baseline: an LLM classifies each test row from a prompt alone, zero-shot and
k-shot, with no training. What prompting the model gets before anyone fine-tunes (issue 14).

* **Prompt**: the label set (in ``label_names`` when given), ``k`` demonstrations from the training
  rows, then the row to classify (templates ``icl`` in :mod:`augment.prompts`, Chinese or English).
* **Demonstrations**: ``similar`` — the ``k`` training rows nearest the test row by embedding cosine,
  the nearest last (next to the question); ``random`` — ``k`` rows drawn once with a fixed seed and
  shown to every row (the usual fixed-prompt protocol; llama.cpp then evaluates the shared prefix once).
* **Answer**, constrained to the label set: where the backend scores continuations (llama.cpp,
  transformers: :func:`augment.generators.can_score`) each label name is scored by the sum of its
  tokens' log-probabilities after the prompt and the best wins; otherwise (the OpenAI-compatible
  backend) the model answers greedily and the answer is parsed (an exact label name, else the first
  label named in it); answers that name no label are counted as ``unparseable`` and scored wrong.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augment.config import DataConfig
from augment.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

DEFAULT_SHOTS = 4  # see the README's ICL section: prompt evaluation is the cost on CPU, and 4 fit long rows in 2k tokens
MAX_CHARS = 300  # each demonstration and test text is cut to this many characters
UNPARSEABLE = "<unparseable>"
DEMOS = ("similar", "random")


@dataclass
class Row:
    id: str
    text: str
    label: str | None


def read_label_names(path: str | Path | None) -> dict[str, str] | list[str] | None:
    """``labels.json``: a list of the labels (their order and set) or a mapping label -> name."""
    if path is None:
        return None
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read label names ({exc})") from None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    raise ConfigError(f"{path}: expected a JSON list of labels or an object label -> name")


def label_table(
    labels: Sequence[str], label_names: Mapping[str, str] | Sequence[str] | None
) -> dict[str, str]:
    """label -> the name the prompt uses, in the order the prompt lists them."""
    if label_names is None:
        return {lab: lab for lab in sorted(labels)}
    if isinstance(label_names, Mapping):
        missing = sorted(set(labels) - set(label_names))
        if missing:
            raise ConfigError(f"label names given for some labels but not for {missing}")
        table = {str(k): str(v) for k, v in label_names.items()}
    else:
        table = {str(v): str(v) for v in label_names}
        missing = sorted(set(labels) - set(table))
        if missing:
            raise ConfigError(f"labels {missing} are not in the label list")
    if len(set(table.values())) != len(table):
        raise ConfigError("two labels share one name")
    return table


def _norm(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).lower()
    return re.sub(r"[\s\"'“”‘’「」『』.,:;!?，。：；！？()（）\[\]【】*`_-]+", "", s)


def parse_answer(answer: str | None, table: Mapping[str, str]) -> str | None:
    """The label an answer names: the whole answer (or its first line) equal to a label or its name,
    else the label named earliest in it; None when it names none."""
    if not answer:
        return None
    forms = [(lab, _norm(f)) for lab, name in table.items() for f in (name, lab) if _norm(f)]
    lines = [ln for ln in answer.strip().splitlines() if ln.strip()]
    for cand in [answer] + lines[:1]:
        n = _norm(cand)
        for lab, f in forms:
            if n == f:
                return lab
    text = _norm(answer)
    hits = [(text.find(f), -len(f), lab) for lab, f in forms if f in text]
    return min(hits)[2] if hits else None


class DemoPicker:
    """Chooses the k demonstrations of each test row from the training rows."""

    def __init__(self, train: Sequence[Row], how: str, *, embedder: Any = None, seed: int = 0) -> None:
        if how not in DEMOS:
            raise ConfigError(f"demos must be one of {', '.join(DEMOS)}, got {how!r}")
        if how == "similar" and embedder is None:
            raise ConfigError("similar demonstrations need an embedder")
        self.train, self.how, self.embedder, self.seed = list(train), how, embedder, seed
        self._train_vecs = embedder.encode([r.text for r in self.train]) if how == "similar" else None

    def pick(self, tests: Sequence[Row], k: int) -> list[list[Row]]:
        k = min(k, len(self.train))
        if k <= 0:
            return [[] for _ in tests]
        if self.how == "random":  # one seeded draw shared by every row (the usual fixed-prompt protocol)
            drawn = [self.train[j] for j in random.Random(self.seed).sample(range(len(self.train)), k)]
            return [list(drawn) for _ in tests]
        import numpy as np

        sims = self.embedder.encode([r.text for r in tests]) @ self._train_vecs.T
        out = []
        for i, test in enumerate(tests):
            s = sims[i].copy()
            for j, r in enumerate(self.train):  # a training copy of the test row is no demonstration
                if r.text == test.text:
                    s[j] = -np.inf
            top = np.argsort(-s, kind="stable")[:k]
            out.append([self.train[j] for j in reversed(top)])  # the nearest last, next to the question
        return out


def _cut(text: str, n: int = MAX_CHARS) -> str:
    text = " ".join(text.split()) if " " in text else text.replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def build_prompt(
    text: str,
    demos: Sequence[Row],
    table: Mapping[str, str],
    *,
    language: str,
    chat: bool,
    domain: str | None = None,
):
    """The prompt for one row: chat messages for chat models, a plain string otherwise."""
    from augment.prompts import render

    mode = "chat" if chat else "completion"
    body = render(
        "icl",
        mode,
        language,
        labels=list(table.values()),
        demos=[{"text": _cut(d.text), "label": table[d.label]} for d in demos],
        text=_cut(text),
        domain=domain,
    )
    return [{"role": "user", "content": body}] if chat else body


def _options(table: Mapping[str, str], language: str, chat: bool) -> list[str]:
    from augment.prompts import prompt_language

    lead = " " if not chat and prompt_language(language) == "en" else ""
    return [lead + name for name in table.values()]


def classify(
    gen: Any,
    train: Sequence[Row],
    test: Sequence[Row],
    *,
    language: str,
    shots: int,
    demos: str = "similar",
    embedder: Any = None,
    label_names: Mapping[str, str] | Sequence[str] | None = None,
    answer: str = "auto",
    seed: int = 0,
    domain: str | None = None,
    picker: DemoPicker | None = None,
) -> dict[str, Any]:
    """One setting (``shots`` demonstrations chosen ``demos``-wise) on every test row: predictions,
    accuracy, macro-F1 over the label set and the count of unparseable answers."""
    from augment.generators import Decoding, can_score

    labels = sorted({r.label for r in train if r.label is not None})  # never from the test rows
    table = label_table(labels, label_names)
    if answer == "auto":
        answer = "score" if can_score(gen) else "generate"
    if answer == "score" and not can_score(gen):
        raise ConfigError(f"the {gen.backend} backend gives no log-probabilities: use --answer generate")
    if shots > 0:
        picker = picker or DemoPicker(train, demos, embedder=embedder, seed=seed)
        chosen = picker.pick(test, shots)
    else:
        chosen = [[] for _ in test]
    options = _options(table, language, gen.chat)
    names = list(table)
    prompts = [
        build_prompt(r.text, d, table, language=language, chat=gen.chat, domain=domain)
        for r, d in zip(test, chosen, strict=True)
    ]
    t0 = time.perf_counter()
    preds: list[dict[str, Any]] = []
    if answer == "score":
        for r, d, p in zip(test, chosen, prompts, strict=True):
            s = gen.score(p, options)
            best = max(range(len(s)), key=lambda j: s[j])
            preds.append(
                {"id": r.id, "label": r.label, "prediction": names[best], "parsed": True,
                 "scores": {names[j]: round(s[j], 4) for j in range(len(s))},
                 "demos": [x.id for x in d]}
            )  # fmt: skip
    else:
        decoding = Decoding(max_new_tokens=16, temperature=0.0, top_p=1.0, stop=() if gen.chat else ("\n",))
        outs = gen.generate(prompts, 1, decoding)
        for r, d, o in zip(test, chosen, outs, strict=True):
            c = o[0]
            lab = parse_answer(c.text, table)
            preds.append(
                {"id": r.id, "label": r.label, "prediction": lab or UNPARSEABLE, "parsed": lab is not None,
                 "answer": c.text if c.text is not None else f"error: {c.error}",
                 "demos": [x.id for x in d]}
            )  # fmt: skip
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {
        "setting": "zero-shot" if shots <= 0 else f"{shots}-shot {demos}",
        "shots": max(shots, 0),
        "demos": demos if shots > 0 else None,
        "answer": answer,
        "n": len(test),
        "unparseable": sum(not p["parsed"] for p in preds),
        "seconds": round(seconds, 2),
        "seconds_per_row": round(seconds / max(len(test), 1), 3),
        "predictions": preds,
    }
    gold = [p["label"] for p in preds]
    if all(g is not None for g in gold) and gold:
        from sklearn.metrics import accuracy_score, f1_score

        pred = [p["prediction"] for p in preds]
        result["accuracy"] = float(accuracy_score(gold, pred))
        result["macro_f1"] = float(f1_score(gold, pred, labels=names, average="macro", zero_division=0.0))
    return result


def rows_of(examples: Any) -> list[Row]:
    """Rows of a :class:`finetune.data.Examples` (classification)."""
    return [Row(r.id, r.fields["text"], r.label) for r in examples.rows]


def icl(
    data: str | Path,
    test: str | Path,
    *,
    shots: int = DEFAULT_SHOTS,
    demos: str = "similar",
    generator: Any = None,
    embedder: str = "auto",
    label_names: Mapping[str, str] | Sequence[str] | None = None,
    answer: str = "auto",
    columns: DataConfig | None = None,
    language: str = "auto",
    seed: int = 0,
    zero_shot: bool = True,
    domain: str | None = None,
) -> dict[str, Any]:
    """``augment icl``: the test rows classified zero-shot and ``shots``-shot; training rows of DATA
    (seeds, or every row of an ``augment expand`` output) are the demonstrations."""
    from augment.generators import GeneratorConfig, load_generator
    from augment.language import detect_language

    from .data import read_examples

    train_ex = read_examples(data, columns, task="classification")
    if train_ex.task != "classification":
        raise DataError(f"{train_ex.path}: the ICL baseline classifies; this is {train_ex.task} data")
    test_ex = read_examples(test, columns, task="classification")
    train, tests = rows_of(train_ex), rows_of(test_ex)
    if language == "auto":
        language = detect_language([r.text for r in train[:200]])
    cfg = generator or GeneratorConfig()
    t0 = time.perf_counter()
    gen = load_generator(cfg, language)
    load_s = time.perf_counter() - t0
    emb = None
    if shots > 0 and demos == "similar":
        from augment.embedders import load_embedder, resolve_embedder_spec

        emb = load_embedder(resolve_embedder_spec(embedder, language))
    settings = []
    common = dict(language=language, label_names=label_names, answer=answer, seed=seed, domain=domain)
    if zero_shot or shots <= 0:
        settings.append(classify(gen, train, tests, shots=0, **common))
    if shots > 0:
        settings.append(classify(gen, train, tests, shots=shots, demos=demos, embedder=emb, **common))
    return {
        "kind": "icl",
        "data": str(train_ex.path),
        "test": str(test_ex.path),
        "language": language,
        "backend": gen.backend,
        "model": gen.model_id,
        "embedder": getattr(emb, "model_id", None),
        "train_rows": len(train),
        "test_rows": len(tests),
        "labels": label_table(sorted({r.label for r in train if r.label}), label_names),
        "seconds_load": round(load_s, 2),
        "settings": settings,
    }


def table(report: Mapping[str, Any]) -> str:
    from .metrics import format_table

    rows = []
    for s in report["settings"]:
        acc = f"{s['accuracy']:.3f}" if "accuracy" in s else "–"
        f1 = f"{s['macro_f1']:.3f}" if "macro_f1" in s else "–"
        rows.append(
            [
                s["setting"],
                acc,
                f1,
                f"{s['unparseable']} of {s['n']}",
                s["answer"],
                f"{s['seconds_per_row']:.2f}",
            ]
        )
    head = ["setting", "accuracy", "macro-f1", "unparseable", "answer", "s/row"]
    foot = (
        f"{report['language']}, {report['backend']} {report['model']}; demonstrations from "
        f"{report['train_rows']} rows of {report['data']}"
        + (f" (similar by {report['embedder']})" if report.get("embedder") else "")
        + f"; {report['test_rows']} test rows"
    )
    return format_table(head, rows) + "\n\n" + foot


def icl_variants(
    seeds: Any,
    test: Any,
    language: str,
    *,
    shots: int = DEFAULT_SHOTS,
    demos: str = "similar",
    generator: Any = None,
    embedder: str = "auto",
    label_names: Mapping[str, str] | Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """``augment evaluate --baseline icl``: zero-shot and k-shot on one repeat's test rows, the repeat's
    seeds as the demonstrations; entries shaped like the fine-tuned variants'."""
    from augment.generators import GeneratorConfig, load_generator

    if test.task != "classification":
        raise ConfigError("the ICL baseline is for classification data")
    gen = load_generator(generator or GeneratorConfig(), language)
    emb = None
    if shots > 0 and demos == "similar":
        from augment.embedders import load_embedder, resolve_embedder_spec

        emb = load_embedder(resolve_embedder_spec(embedder, language))
    train, tests = rows_of(seeds), rows_of(test)
    out = {}
    for k in (0, shots) if shots > 0 else (0,):
        r = classify(
            gen, train, tests, language=language, shots=k, demos=demos, embedder=emb, label_names=label_names
        )
        out[f"icl {r['setting']}"] = {
            "train_rows": len(train) if k else 0,
            "accuracy": r["accuracy"],
            "macro_f1": r["macro_f1"],
            "unparseable": r["unparseable"],
            "seconds": r["seconds"],
        }
        logger.info("icl %s: accuracy %.4f, %d unparseable", r["setting"], r["accuracy"], r["unparseable"])
    return out
