"""Does `augment select` choose better rows to label than chance? A simulated labelling loop.

For every set in ``../shared/data`` (sst2, trec, snips, chnsenticorp, waimai10k) and splits 0-2:

* the pool: a ``random.Random(0)`` sample of at most 5,000 ``unlabeled.jsonl`` rows, minus the split's
  train/dev texts (as ``benchmarks/quality.py``), keeping the rows whose text is in ``train_full.jsonl``
  (their labels come from there: the simulated expert);
* from the split's seeds, N = 20, 50, 100 pool rows are chosen by ``augment select``'s rule
  (:func:`augment.select.choose`, the classifier of the command) or at random (3 draws per split,
  averaged), labelled from ``train_full``, added to the seeds;
* logistic regression on the frozen embeddings is retrained on seeds + the N rows, C chosen on the
  split's dev file (``quality.py``'s helpers), and scored on ``test.jsonl``.

Selection variants (margin / entropy, diversity weight, class balance) are compared on the dev files
only (``--variants``); the test file is read only to score. Embeddings come from the on-disk cache.

    python benchmarks/select_benefit.py --write benchmarks/RESULTS_select.md
    python benchmarks/select_benefit.py --sets sst2 --splits 0 --variants default,entropy
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from quality import C_GRID, LANG, SETS, _dev_key, _lr, pool_for, read_jsonl, split_paths  # noqa: E402

NS = (20, 50, 100)
RANDOM_DRAWS = 3
# name -> SelectConfig keyword arguments (budget and seed are added per run); every variant is BASE with
# its changes, whatever SelectConfig's defaults are. DEFAULT is what `augment select` does by default.
BASE: dict[str, Any] = {"uncertainty": "margin", "diversity": 2.0, "candidates": 10.0, "balance": True, "density": 0.0}
VARIANTS: dict[str, dict[str, Any]] = {
    name: {**BASE, **change}
    for name, change in {
        "density 0": {},  # margin, diversity 2, candidates 10 x budget, balance on, no typicality
        "entropy": {"uncertainty": "entropy"},
        "uncertainty only": {"diversity": 0.0},
        "diversity 1": {"diversity": 1.0},
        "candidates 3": {"candidates": 3.0},
        "no balance": {"balance": False},
        "density 1": {"density": 1.0},  # the default of `augment select`
        "density 3": {"density": 3.0},
        "density 1 wide": {"density": 1.0, "candidates": 100.0},
        "typical": {"uncertainty_weight": 0.0, "density": 1.0, "diversity": 1.0, "candidates": 1000.0},
        "typical diversity 2": {"uncertainty_weight": 0.0, "density": 1.0, "candidates": 1000.0},
    }.items()
}
DEFAULT = "density 1"

logger = logging.getLogger("select_benefit")


def retrain(x: np.ndarray, y: list[str], dx, dy, sx, sy) -> tuple[float, float]:
    """LR with C chosen on dev (accuracy, then log-loss, then smaller C): (dev acc, test acc)."""
    best = max(((_dev_key(_lr(x, y, c), dx, dy), c) for c in C_GRID), key=lambda t: (t[0], -t[1]))
    m = _lr(x, y, best[1])
    return best[0][0], float(np.mean(m.predict(sx) == np.array(sy, dtype=object)))


def run_set(data: Path, name: str, splits: list[int], variants: list[str], embedder: str) -> dict:
    from augment.embedders import load_embedder, resolve_embedder_spec
    from augment.select import SelectConfig, choose, fit_classifier

    emb = load_embedder(resolve_embedder_spec(embedder, LANG[name]))
    gold = {r["text"]: r["label"] for r in read_jsonl(data / name / "train_full.jsonl")}
    test = read_jsonl(data / name / "test.jsonl")
    sx, sy = emb.encode([r["text"] for r in test]), [r["label"] for r in test]
    out: dict[str, Any] = {"embedder": emb.model_id, "splits": {}}
    for k in splits:
        t0 = time.perf_counter()
        train_p, dev_p = split_paths(data, name, k)
        train, dev = read_jsonl(train_p), read_jsonl(dev_p)
        pool = [r for r in pool_for(data, name, train, dev) if r["text"] in gold]
        tx, ty = emb.encode([r["text"] for r in train]), [r["label"] for r in train]
        dx, dy = emb.encode([r["text"] for r in dev]), [r["label"] for r in dev]
        px, py = emb.encode([r["text"] for r in pool]), [gold[r["text"]] for r in pool]
        res: dict[str, Any] = {"pool": len(pool), "seed-only": retrain(tx, ty, dx, dy, sx, sy)}
        clf = fit_classifier(tx, ty, seed=13)
        proba = clf.predict_proba(px)
        for n in NS:
            runs = []
            for d in range(RANDOM_DRAWS):
                idx = random.Random(1000 * k + 100 * d + n).sample(range(len(pool)), n)
                runs.append(retrain(np.concatenate([tx, px[idx]]), ty + [py[i] for i in idx], dx, dy, sx, sy))
            res[f"random@{n}"] = tuple(float(np.mean([r[j] for r in runs])) for j in (0, 1))
            for v in variants:
                config = SelectConfig(budget=n, seed=13, **VARIANTS[v])
                idx = [c.index for c in choose(px, proba, tx, config, clf.classes)]
                assert len(set(idx)) == n
                res[f"{v}@{n}"] = retrain(np.concatenate([tx, px[idx]]), ty + [py[i] for i in idx], dx, dy, sx, sy)
        out["splits"][k] = res
        logger.info("%s split %d: %d pool rows, %.1f s", name, k, len(pool), time.perf_counter() - t0)
    return out


def _ms(vals: list[float]) -> str:
    m = 100 * statistics.mean(vals)
    s = 100 * statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{m:.1f} ± {s:.1f}"


def report(results: dict[str, dict], variants: list[str], chosen: str, command: str) -> str:
    lines = [f"Command: `{command}`", ""]
    emb = sorted({r["embedder"] for r in results.values()})
    lines.append(f"Embedder: {', '.join(emb)}. Splits: {', '.join(str(k) for k in next(iter(results.values()))['splits'])}.")
    lines.append("")

    def vals(name: str, key: str, j: int) -> list[float]:
        return [r[key][j] for r in results[name]["splits"].values()]

    lines.append(f"### Test accuracy (%), mean ± std over splits: `select` ({chosen}) vs random rows")
    lines.append("")
    lines.append("| set | pool | seed-only | N | select | random (3 draws) | select − random | points per row: select | random |")
    lines.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    mean_rows: dict[int, list[tuple[float, float, float]]] = {n: [] for n in NS}
    for name in results:
        base = vals(name, "seed-only", 1)
        pool = statistics.mean(r["pool"] for r in results[name]["splits"].values())
        for n in NS:
            sel, rnd = vals(name, f"{chosen}@{n}", 1), vals(name, f"random@{n}", 1)
            b = statistics.mean(base)
            gs, gr = statistics.mean(sel) - b, statistics.mean(rnd) - b
            mean_rows[n].append((b, statistics.mean(sel), statistics.mean(rnd)))
            lines.append(
                f"| {name} | {pool:.0f} | {_ms(base)} | {n} | {_ms(sel)} | {_ms(rnd)} | "
                f"{100 * (statistics.mean(sel) - statistics.mean(rnd)):+.1f} | {100 * gs / n:+.3f} | {100 * gr / n:+.3f} |"
            )
    for n in NS:
        b, s, r = (statistics.mean(v[i] for v in mean_rows[n]) for i in range(3))
        lines.append(
            f"| **mean of {len(results)} sets** | | {100 * b:.1f} | {n} | **{100 * s:.1f}** | {100 * r:.1f} | "
            f"**{100 * (s - r):+.1f}** | {100 * (s - b) / n:+.3f} | {100 * (r - b) / n:+.3f} |"
        )
    lines.append("")
    for j, what in ((0, "Dev"), (1, "Test")):
        lines.append(f"### Variants: {what.lower()} accuracy (%), mean over sets and splits, minus random")
        lines.append("")
        lines.append("| variant | " + " | ".join(f"N={n}" for n in NS) + " | mean |")
        lines.append("|---|" + "--:|" * (len(NS) + 1))
        for v in variants:
            ds = []
            for n in NS:
                d = statistics.mean(
                    statistics.mean(vals(name, f"{v}@{n}", j)) - statistics.mean(vals(name, f"random@{n}", j))
                    for name in results
                )
                ds.append(100 * d)
            lines.append(f"| {v} | " + " | ".join(f"{d:+.1f}" for d in ds) + f" | {statistics.mean(ds):+.1f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--splits", default="0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--chosen", default=None, help="variant of the main table [the best mean dev gain]")
    ap.add_argument("--embedder", default="auto")
    ap.add_argument("--write", type=Path, default=None, help="write the markdown report here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "sentence_transformers", "augment", "jieba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    variants = args.variants.split(",")
    splits = [int(s) for s in args.splits.split(",")]
    t0 = time.perf_counter()
    results = {name: run_set(args.data, name, splits, variants, args.embedder) for name in args.sets.split(",")}
    chosen = args.chosen
    if chosen is None:  # chosen on dev only: the highest mean dev gain over random, over sets and N
        def dev_gain(v: str) -> float:
            return statistics.mean(
                r["splits"][k][f"{v}@{n}"][0] - r["splits"][k][f"random@{n}"][0]
                for r in results.values()
                for k in r["splits"]
                for n in NS
            )

        chosen = max(variants, key=lambda v: (dev_gain(v), v == DEFAULT))
    command = "python benchmarks/select_benefit.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(results, variants, chosen, command.strip())
    text += f"\nMain table's variant `{chosen}`: the best mean dev gain over random (dev files only).\n"
    text += f"`augment select`'s defaults are the variant `{DEFAULT}`: {VARIANTS[DEFAULT]}.\n"
    text += f"\nWall time: {(time.perf_counter() - t0) / 60:.1f} min.\n"
    print(text)
    if args.write:
        args.write.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
