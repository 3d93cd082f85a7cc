"""Design choices of the recipe, made on held-out *dev* data, never on test.

The recipe's defaults (which labeller ranks the pool, whether the learner weighs pseudo-labels by
confidence, one labelling pass or self-training) are chosen here by the accuracy on each set's
``dev_full.jsonl`` minus the split's few-shot dev rows (700-1,200 labelled rows that are not the test
file). Each variant makes its own choices (q, C) on the split's small dev file only, as a user would.

    python benchmarks/recipe_choices.py --splits 0,1,2,3,4

Embeddings come from the engine's default embedder through the on-disk cache (run
``benchmarks/quality.py --warm-only`` first, or pay for them here).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from quality import LANG, SETS, pool_for, read_jsonl, split_paths  # noqa: E402

from augment.recipe import top_fraction  # noqa: E402

C_GRID = (0.1, 1.0, 10.0, 100.0)
Q_GRID = (0.0, 0.05, 0.1, 0.2, 0.4, 1.0)
logger = logging.getLogger("recipe_choices")


def lr(x, y, c, w=None):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000).fit(x, y, sample_weight=w)


def key(m, dx, dy):
    from sklearn.metrics import log_loss

    return (float(np.mean(m.predict(dx) == np.array(dy, dtype=object))), -log_loss(dy, m.predict_proba(dx), labels=m.classes_))


def lr_labeller(c):
    def label(tx, ty, px):
        m = lr(tx, ty, c)
        p = m.predict_proba(px)
        return m.classes_[p.argmax(1)], p.max(1)

    return label


def ensemble_labeller(tx, ty, px):
    from augment.methods.pseudo_label import score_pool

    labels, conf, _ = score_pool(["logreg", "prototype", "knn"], 5, 13, tx, list(ty), px)
    return np.array(labels, dtype=object), conf


def variant(tx, ty, dx, dy, px, *, labeller: str, weighted: bool, rounds: int = 1):
    """Choose (q, C) on the small dev file; return the final model."""
    best = None
    for c in C_GRID:
        lab = lr_labeller(c) if labeller == "lr" else ensemble_labeller
        pred, conf = lab(tx, ty, px)
        for q in Q_GRID:
            idx = top_fraction(list(pred), conf, q)
            x = np.concatenate([tx, px[idx]])
            y = list(ty) + list(pred[idx])
            w = np.concatenate([np.ones(len(ty)), conf[idx]]) if weighted else None
            if rounds > 1 and q > 0:
                m = lr(x, y, c, w)
                p = m.predict_proba(px)
                pred2, conf2 = m.classes_[p.argmax(1)], p.max(1)
                idx = top_fraction(list(pred2), conf2, q)
                x = np.concatenate([tx, px[idx]])
                y = list(ty) + list(pred2[idx])
                w = np.concatenate([np.ones(len(ty)), conf2[idx]]) if weighted else None
            m = lr(x, y, c, w)
            k = (key(m, dx, dy), -c, -q)
            if best is None or k > best[0]:
                best = (k, m, c, q)
    return best[1], best[2], best[3]


VARIANTS = {
    "(1) seed LR": None,
    "(3c) LR labeller": dict(labeller="lr", weighted=False),
    "LR labeller, weighted": dict(labeller="lr", weighted=True),
    "ensemble labeller": dict(labeller="ensemble", weighted=False),
    "ensemble, weighted": dict(labeller="ensemble", weighted=True),
    "LR labeller, 2 rounds": dict(labeller="lr", weighted=False, rounds=2),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--splits", default="0,1,2,3,4")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from augment.embedders import load_embedder, resolve_embedder_spec

    table: dict[str, dict[str, list[float]]] = {}
    for name in args.sets.split(","):
        emb = load_embedder(resolve_embedder_spec("auto", LANG[name]))
        full = read_jsonl(args.data / name / "dev_full.jsonl")
        table[name] = {v: [] for v in VARIANTS}
        for k in [int(s) for s in args.splits.split(",")]:
            t0 = time.perf_counter()
            tp, dp = split_paths(args.data, name, k)
            train, dev = read_jsonl(tp), read_jsonl(dp)
            dev_texts = {r["text"] for r in dev} | {r["text"] for r in train}
            held = [r for r in full if r["text"] not in dev_texts]
            pool = pool_for(args.data, name, train, dev)
            tx, dx = emb.encode([r["text"] for r in train]), emb.encode([r["text"] for r in dev])
            hx, px = emb.encode([r["text"] for r in held]), emb.encode([r["text"] for r in pool])
            ty, dy, hy = [r["label"] for r in train], [r["label"] for r in dev], [r["label"] for r in held]
            for vname, kw in VARIANTS.items():
                if kw is None:
                    c = max(C_GRID, key=lambda c: (key(lr(tx, ty, c), dx, dy), -c))
                    m = lr(tx, ty, c)
                else:
                    m, c, q = variant(tx, ty, dx, dy, px, **kw)
                acc = float(np.mean(m.predict(hx) == np.array(hy, dtype=object)))
                table[name][vname].append(acc)
            logger.info(
                "%s split %d (%.0f s): %s", name, k, time.perf_counter() - t0,
                {v: round(100 * a[-1], 1) for v, a in table[name].items()},
            )
    print("\nAccuracy (%) on dev_full minus the few-shot rows, mean ± std over splits\n")
    print("| set | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "--:|" * len(VARIANTS))
    for name, cols in table.items():
        cells = [f"{100 * statistics.mean(v):.1f} ± {100 * statistics.stdev(v) if len(v) > 1 else 0:.1f}" for v in cols.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nPaired mean difference vs (3c) LR labeller (points):\n")
    for name, cols in table.items():
        base = cols["(3c) LR labeller"]
        diffs = {v: statistics.mean(100 * (a - b) for a, b in zip(vals, base, strict=True)) for v, vals in cols.items()}
        print(f"- {name}: " + ", ".join(f"{v} {d:+.1f}" for v, d in diffs.items()))


if __name__ == "__main__":
    main()
