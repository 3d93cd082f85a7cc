"""The in-context-learning baseline beside seed-only fine-tuning, on the benchmark sets (issue 14).

For every set in ``../shared/data`` (sst2, trec, snips, chnsenticorp, waimai10k) and splits 0-2, on a
fixed subset of the test rows (``--rows`` of them, a ``random.Random(0)`` sample of test.jsonl's
indices, the same for every column):

* **zero-shot**: the embedded LLM of the set's language (``augment/generators/defaults.py``: SmolLM2-135M
  for English, Qwen2.5-Coder-0.5B for Chinese, through llama.cpp) scores each label after the prompt;
  it needs no training rows, so it is run once per set and shown in every split's mean;
* **k-shot similar / random**: the same, with ``--shots`` demonstrations from the split's train.jsonl,
  the nearest by the default embedder or drawn at random;
* **(1) seed LR**: logistic regression on the default embedder's embeddings of the split's train rows,
  C chosen on its dev file — benchmarks/quality.py's "(1)", by its own helpers.

Nothing is chosen on test: the rows are a seeded sample of indices, label names come from labels.json
and the head's C from dev. Each finished (set, split, column) is kept in ``--work``, so a rerun costs
only what is missing.

    python benchmarks/icl_baseline.py --rows 10 --write benchmarks/RESULTS_icl.md
    python benchmarks/icl_baseline.py --rows 10 --report-only   # the table from what has finished
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from quality import C_GRID, LANG, SETS, _dev_key, _lr, read_jsonl, scores, split_paths  # noqa: E402

from augment.generators.defaults import QWEN_ID, SMOLLM2_ID  # noqa: E402

logger = logging.getLogger("icl_baseline")
COLUMNS = ("zero-shot", "similar", "random", "(1) seed LR")


def test_subset(data: Path, name: str, n: int) -> list[dict]:
    rows = read_jsonl(data / name / "test.jsonl")
    idx = sorted(random.Random(0).sample(range(len(rows)), min(n, len(rows))))
    return [rows[i] for i in idx]


def seed_lr(emb, train: list[dict], dev: list[dict], test: list[dict]) -> dict[str, float]:
    """benchmarks/quality.py's (1): C on dev, then scored on the test subset."""
    tx, dx, sx = (emb.encode([r["text"] for r in rows]) for rows in (train, dev, test))
    ty, dy = [r["label"] for r in train], [r["label"] for r in dev]
    best = max(((_dev_key(_lr(tx, ty, c), dx, dy), c) for c in C_GRID), key=lambda t: (t[0], -t[1]))
    model = _lr(tx, ty, best[1])
    return {**scores([r["label"] for r in test], list(model.predict(sx))), "C": best[1]}


def run_set(data: Path, name: str, splits: list[int], n: int, shots: int, work: Path) -> dict[str, Any]:
    from augment.embedders import load_embedder, resolve_embedder_spec
    from augment.generators import GeneratorConfig, load_generator
    from finetune.icl import DemoPicker, Row, classify

    path = work / f"{name}.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def save() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, ensure_ascii=False))

    lang = LANG[name]
    test = test_subset(data, name, n)
    tests = [Row(str(r.get("id", i)), r["text"], r["label"]) for i, r in enumerate(test)]
    names = json.loads((data / name / "labels.json").read_text(encoding="utf-8"))
    gen = emb = None

    def generator():
        nonlocal gen
        gen = gen or load_generator(GeneratorConfig(), lang)
        return gen

    def embedder():
        nonlocal emb
        emb = emb or load_embedder(resolve_embedder_spec("auto", lang))
        return emb

    def keep(key: str, out: dict[str, Any]) -> None:
        result[key] = {k: v for k, v in out.items() if k != "predictions"}
        logger.info(
            "%s %s: %s", name, key, {k: result[key].get(k) for k in ("accuracy", "unparseable", "seconds")}
        )
        save()

    result["rows"] = len(tests)
    if "zero-shot" not in result:
        train0 = [
            Row(str(i), r["text"], r["label"])
            for i, r in enumerate(read_jsonl(split_paths(data, name, 0)[0]))
        ]
        keep("zero-shot", classify(generator(), train0, tests, language=lang, shots=0, label_names=names))
    for k in splits:
        train_p, dev_p = split_paths(data, name, k)
        train_rows, dev_rows = read_jsonl(train_p), read_jsonl(dev_p)
        train = [Row(str(r.get("id", i)), r["text"], r["label"]) for i, r in enumerate(train_rows)]
        for how in ("similar", "random"):
            key = f"split{k} {how}"
            if key not in result:
                picker = DemoPicker(train, how, embedder=embedder() if how == "similar" else None, seed=k)
                out = classify(
                    generator(), train, tests, language=lang, shots=shots, demos=how, label_names=names,
                    picker=picker, seed=k,
                )  # fmt: skip
                keep(key, out)
        key = f"split{k} (1) seed LR"
        if key not in result:
            t = time.perf_counter()
            keep(
                key,
                {
                    **seed_lr(embedder(), train_rows, dev_rows, test),
                    "seconds": round(time.perf_counter() - t, 1),
                },
            )
    result["model"] = getattr(gen, "model_id", result.get("model"))
    save()
    return result


def _ms(vals: list[float]) -> str:
    if not vals:
        return "–"
    m = statistics.mean(vals)
    s = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def report(results: dict[str, dict[str, Any]], splits: list[int], shots: int, n: int, command: str) -> str:
    lines = [
        "# The in-context-learning baseline beside seed-only fine-tuning",
        "",
        f"Test accuracy (%), mean ± std over splits {','.join(map(str, splits))}, on a fixed subset of "
        f"**{n} test rows per set** (a `random.Random(0)` sample of test.jsonl; CPU time is scarce: "
        "a 0.5B model on 2 shared cores). Zero-shot needs no training rows: one run per set. "
        f"k = {shots} demonstrations; answers scored by each label's log-likelihood "
        "(sum over its tokens; the label names of labels.json). Unparseable answers: {unparseable}.",
        "",
        f"Command: `{command}`",
        "",
        f"| set | LLM | zero-shot | {shots}-shot similar | {shots}-shot random | (1) seed LR (fine-tuned head) "
        f"| s/row ({shots}-shot similar) | splits done |",
        "|---|---|---|---|---|---|---|---|",
    ]
    means: dict[str, dict[str, list[float]]] = {"en": {}, "zh": {}}
    unparseable = 0
    for name, r in results.items():
        col = {
            "zero-shot": [r["zero-shot"]["accuracy"]] if "zero-shot" in r else [],
            "similar": [r[f"split{k} similar"]["accuracy"] for k in splits if f"split{k} similar" in r],
            "random": [r[f"split{k} random"]["accuracy"] for k in splits if f"split{k} random" in r],
            "(1) seed LR": [
                r[f"split{k} (1) seed LR"]["accuracy"] for k in splits if f"split{k} (1) seed LR" in r
            ],
        }
        secs = [r[f"split{k} similar"]["seconds_per_row"] for k in splits if f"split{k} similar" in r]
        model = (
            (r.get("model") or (QWEN_ID if LANG[name] == "zh" else SMOLLM2_ID)).split(" (")[0].split("/")[-1]
        )
        done = len(col["similar"])
        unparseable += sum(v.get("unparseable") or 0 for v in r.values() if isinstance(v, dict))
        speed = f"{statistics.mean(secs):.1f}" if secs else "–"
        cells = " | ".join(_ms(col[c]) for c in COLUMNS)
        lines.append(f"| {name} | {model} | {cells} | {speed} | {done} of {len(splits)} |")
        for c in COLUMNS:
            means[LANG[name]].setdefault(c, []).append(statistics.mean(col[c]) if col[c] else float("nan"))
    for lang, m in means.items():
        if m:
            lines.append(
                f"| **{lang} mean** | | "
                + " | ".join(f"{100 * statistics.mean(m[c]):.1f}" for c in COLUMNS)
                + " | | |"
            )
    return "\n".join(lines).replace("{unparseable}", str(unparseable)) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--splits", default="0,1,2")
    ap.add_argument("--rows", type=int, default=20, help="test rows per set")
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--work", type=Path, default=Path("/tmp/augment-icl-work"))
    ap.add_argument("--write", type=Path, default=None, help="write the markdown report here")
    ap.add_argument("--report-only", action="store_true", help="only tabulate what the work folder holds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "sentence_transformers", "augment", "finetune", "jieba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    splits = [int(s) for s in args.splits.split(",")]
    work = args.work / f"rows{args.rows}-k{args.shots}"
    t0 = time.perf_counter()
    names = args.sets.split(",")
    if args.report_only:
        results = {
            n: json.loads((work / f"{n}.json").read_text()) for n in names if (work / f"{n}.json").exists()
        }
    else:
        results = {n: run_set(args.data, n, splits, args.rows, args.shots, work) for n in names}
    command = "python benchmarks/icl_baseline.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"
    )
    text = report(results, splits, args.shots, args.rows, command.strip())
    text += f"\nWall time: {(time.perf_counter() - t0) / 60:.1f} min.\n"
    print(text)
    if args.write:
        args.write.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
