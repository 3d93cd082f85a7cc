"""Does augmentation make the model better? The whole user path on the benchmark sets, split by split.

For every set in ``../shared/data`` (sst2, trec, snips, chnsenticorp, waimai10k) and splits 0-4:

* the pool: a ``random.Random(0)`` sample of at most 5,000 ``unlabeled.jsonl`` rows, minus the
  split's train/dev texts (the protocol of ``shared/docs/quality-floors.md``);
* **seed-only**: ``augment finetune SEEDS --dev DEV --test TEST`` with its default method;
* **default**: ``augment expand SEEDS --unlabeled POOL --dev DEV`` with the embedded defaults, then the
  same ``augment finetune`` on its output — the path a user runs;
* **no recipe**: the same expand with ``--recipe off`` (every row the filters pass, pseudo-labels
  gated at confidence 0.8: the engine's behaviour before the recipe existed), and from that one run,
  **seed + each method alone** (the seeds plus that method's rows);
* two floors computed here on the same embeddings as the default learner: **(1)** logistic
  regression on the seeds, C chosen on dev; **(3c)** the naive pseudo-labelling recipe: (1) labels
  the pool, the most confident fraction q of each predicted class is added, q and C chosen jointly
  on dev; and the same two floors on the fast embedders (MiniLM / e5-small) the floors file used.

Every choice uses train/dev only; the test file is read only to score. Embeddings are cached on disk
(``augment/embedcache.py``), and each finished (set, split, column) result is kept in the work
folder, so a rerun costs only what is missing.

    python benchmarks/quality.py                       # everything: 5 sets x 5 splits
    python benchmarks/quality.py --quick               # split 0 only
    python benchmarks/quality.py --sets sst2 --splits 0,1 --write benchmarks/RESULTS.md
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETS = ("sst2", "trec", "snips", "chnsenticorp", "waimai10k")
LANG = {"sst2": "en", "trec": "en", "snips": "en", "chnsenticorp": "zh", "waimai10k": "zh"}
C_GRID = (0.1, 1.0, 10.0, 100.0)
Q_GRID = (0.05, 0.1, 0.2, 0.4, 1.0)
POOL_MAX = 5000

logger = logging.getLogger("quality")


# -- data ----------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def split_paths(data: Path, name: str, k: int) -> tuple[Path, Path]:
    d = data / name
    if k == 0:
        return d / "train.jsonl", d / "dev.jsonl"
    return d / "splits" / f"train_{k}.jsonl", d / "splits" / f"dev_{k}.jsonl"


def pool_for(data: Path, name: str, train: list[dict], dev: list[dict]) -> list[dict]:
    rows = read_jsonl(data / name / "unlabeled.jsonl")
    idx = sorted(random.Random(0).sample(range(len(rows)), min(POOL_MAX, len(rows))))
    taken = {r["text"] for r in train} | {r["text"] for r in dev}
    return [{"id": rows[i].get("id", f"u{i}"), "text": rows[i]["text"]} for i in idx if rows[i]["text"] not in taken]


# -- metrics -------------------------------------------------------------------------------------
def scores(y_true: list[str], y_pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
    }


# -- floors on frozen embeddings -----------------------------------------------------------------
def _lr(x, y, c):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000).fit(x, y)


def _dev_key(lr, dx, dy):
    from sklearn.metrics import log_loss

    acc = float(np.mean(lr.predict(dx) == np.array(dy, dtype=object)))
    return (acc, -log_loss(dy, lr.predict_proba(dx), labels=lr.classes_))


def floors(embed, train, dev, test, pool) -> dict[str, dict[str, float]]:
    """(1) seed LR with C on dev; (3c) (1) labels the pool, the fraction q of each predicted class
    and the final C chosen jointly on dev (ties: lower dev log-loss, then smaller C and q)."""
    from augment.recipe import top_fraction

    tx, dx, sx = embed([r["text"] for r in train]), embed([r["text"] for r in dev]), embed([r["text"] for r in test])
    ty, dy, sy = [r["label"] for r in train], [r["label"] for r in dev], [r["label"] for r in test]
    px = embed([r["text"] for r in pool])
    best1 = max(((_dev_key(_lr(tx, ty, c), dx, dy), c) for c in C_GRID), key=lambda t: (t[0], -t[1]))
    c1 = best1[1]
    m1 = _lr(tx, ty, c1)
    out = {"(1) seed LR": {**scores(sy, list(m1.predict(sx))), "C": c1}}
    best = None
    proba = m1.predict_proba(px)  # (1) labels the pool, as in quality-floors.md
    pred = m1.classes_[proba.argmax(1)]
    conf = proba.max(1)
    for c in C_GRID:
        for q in Q_GRID:
            keep = top_fraction(list(pred), conf, q)  # the engine's own per-class top fraction
            m = _lr(np.concatenate([tx, px[keep]]), ty + list(pred[keep]), c)
            key = (_dev_key(m, dx, dy), -c, -q)
            if best is None or key > best[0]:
                best = (key, m, c, q)
    _, m3, c3, q3 = best
    out["(3c) PL q on dev"] = {**scores(sy, list(m3.predict(sx))), "C": c3, "q": q3}
    return out


# -- the user path -------------------------------------------------------------------------------
def run_expand(seeds: Path, pool: Path, dev: Path, out: Path, recipe: str) -> dict[str, Any]:
    from augment.config import ExpandConfig
    from augment.pipeline import expand

    config = ExpandConfig.from_dict({"recipe": {"mode": recipe}})
    res = expand(seeds, out, config, pool_path=pool, dev_path=dev, overwrite=True)
    m = res.manifest
    return {"kept": m["counts"]["kept"], "per_method": m["counts"]["per_method"], "recipe": m.get("recipe")}


def run_finetune(data: Path, dev: Path, test: Path, out: Path) -> dict[str, float]:
    from finetune import TrainConfig, finetune

    res = finetune(data, out, TrainConfig(), dev=dev, test=test, overwrite=True)
    t = res.metrics["test"]
    return {"accuracy": float(t["accuracy"]), "macro_f1": float(t["macro_f1"]), "method": res.manifest.get("method")}


def only_method(augmented: Path, method: str, out: Path) -> Path:
    rows = [r for r in read_jsonl(augmented) if r["origin"] == "seed" or r.get("method") == method]
    return write_jsonl(out, rows)


# -- one split -----------------------------------------------------------------------------------
def run_split(data: Path, name: str, k: int, work: Path, fast_floors: bool) -> dict[str, Any]:
    from augment.embedders import load_embedder, resolve_embedder_spec

    done_path = work / name / f"split{k}.json"
    result: dict[str, Any] = json.loads(done_path.read_text()) if done_path.exists() else {}

    def save() -> None:
        done_path.parent.mkdir(parents=True, exist_ok=True)
        done_path.write_text(json.dumps(result, indent=1))

    train_p, dev_p = split_paths(data, name, k)
    test_p = data / name / "test.jsonl"
    train, dev, test = read_jsonl(train_p), read_jsonl(dev_p), read_jsonl(test_p)
    pool = pool_for(data, name, train, dev)
    d = work / name / f"split{k}"
    pool_p = write_jsonl(d / "pool.jsonl", pool)
    result.setdefault("meta", {"train": len(train), "dev": len(dev), "test": len(test), "pool": len(pool)})

    def column(key: str, fn) -> None:
        if key in result:
            return
        t = time.perf_counter()
        result[key] = fn()
        result[key]["seconds"] = round(time.perf_counter() - t, 1)
        logger.info("%s split %d %s: %s", name, k, key, {a: b for a, b in result[key].items() if a != "expand"})
        save()

    lang = LANG[name]
    spec = resolve_embedder_spec("auto", lang)
    emb = load_embedder(spec)
    result.setdefault("embedder", emb.model_id)
    if "(3c) PL q on dev" not in result:
        result.update(floors(emb.encode, train, dev, test, pool))
    if fast_floors and not any(k.endswith("]") for k in result):
        femb = load_embedder(resolve_embedder_spec("fast", lang))
        for key, val in floors(femb.encode, train, dev, test, pool).items():
            result[f"{key} [fast: {femb.model_id.split(' ')[0]}]"] = val
    save()

    column("seed-only", lambda: run_finetune(train_p, dev_p, test_p, d / "ft-seed"))

    def default() -> dict[str, Any]:
        info = run_expand(train_p, pool_p, dev_p, d / "exp-default", "auto")
        return {**run_finetune(d / "exp-default" / "augmented.jsonl", dev_p, test_p, d / "ft-default"), "expand": info}

    column("default", default)

    def no_recipe() -> dict[str, Any]:
        info = run_expand(train_p, pool_p, dev_p, d / "exp-off", "off")
        return {**run_finetune(d / "exp-off" / "augmented.jsonl", dev_p, test_p, d / "ft-off"), "expand": info}

    column("no recipe", no_recipe)
    methods = sorted(result["no recipe"]["expand"]["per_method"])
    for m in methods:
        column(
            f"seed+{m}",
            lambda m=m: run_finetune(
                only_method(d / "exp-off" / "augmented.jsonl", m, d / f"only-{m}.jsonl"), dev_p, test_p, d / f"ft-{m}"
            ),
        )
    return result


def warm(data: Path, names: list[str], splits: list[int], fast: bool) -> None:
    """Embed every text a run will need, one large call per set and embedder (length-sorted batches)."""
    from augment.embedders import load_embedder, resolve_embedder_spec

    for name in names:
        texts: set[str] = {r["text"] for r in read_jsonl(data / name / "test.jsonl")}
        for k in splits:
            for p in split_paths(data, name, k):
                texts |= {r["text"] for r in read_jsonl(p)}
        texts |= {r["text"] for r in pool_for(data, name, [], [])}
        specs = ["auto", "fast"] if fast else ["auto"]
        for spec in specs:
            t = time.perf_counter()
            emb = load_embedder(resolve_embedder_spec(spec, LANG[name]))
            emb.encode(sorted(texts))
            logger.info("%s: %d texts embedded with %s in %.0f s", name, len(texts), emb.model_id, time.perf_counter() - t)


# -- report --------------------------------------------------------------------------------------
def _ms(vals: list[float]) -> str:
    if not vals:
        return "–"
    m = 100 * statistics.mean(vals)
    s = 100 * statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{m:.1f} ± {s:.1f}"


def _fast_names(r: dict[str, Any]) -> dict[str, Any]:
    """``(1) seed LR [fast: MODEL]`` -> ``(1) seed LR fast`` (MiniLM for English, e5 for Chinese)."""
    return {(k.split(" [fast")[0] + " fast" if k.endswith("]") else k): v for k, v in r.items()}


def report(results: dict[str, dict[int, dict[str, Any]]], command: str) -> str:
    results = {name: {k: _fast_names(r) for k, r in per.items()} for name, per in results.items()}
    cols: list[str] = []
    for per_split in results.values():
        for r in per_split.values():
            for key, val in r.items():
                if isinstance(val, dict) and "accuracy" in val and key not in cols:
                    cols.append(key)
    main = ["(1) seed LR", "(3c) PL q on dev", "seed-only", "default", "no recipe"]
    fast = [c for c in cols if c.endswith(" fast")]
    per_method = sorted(c for c in cols if c.startswith("seed+"))
    order = fast + [c for c in main if c in cols]
    short = {c: c for c in cols}
    lines = [f"Command: `{command}`", ""]
    for metric in ("accuracy", "macro_f1"):
        lines.append(f"### Test {metric.replace('_', '-')} (%), mean ± std over splits")
        lines.append("")
        lines.append("| set | splits | " + " | ".join(short[c] for c in order) + " |")
        lines.append("|---|--:|" + "--:|" * len(order))
        for name, per_split in results.items():
            cells = [_ms([r[c][metric] for r in per_split.values() if c in r]) for c in order]
            lines.append(f"| {name} | {len(per_split)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("### Each method alone (seeds + that method's filtered rows, no recipe): test accuracy (%)")
    lines.append("")
    lines.append("| set | seed-only | " + " | ".join(per_method) + " |")
    lines.append("|---|--:|" + "--:|" * len(per_method))
    for name, per_split in results.items():
        cells = [_ms([r[c]["accuracy"] for r in per_split.values() if c in r]) for c in ["seed-only", *per_method]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    order = order + per_method
    lines.append("### Paired per-split deltas of test accuracy (points): default minus …")
    lines.append("")
    lines.append("| set | vs seed-only | vs (1) | vs (3c) | vs no recipe | vs (3c) fast | per split (vs 3c) | default better than 3c |")
    lines.append("|---|--:|--:|--:|--:|--:|---|--:|")
    means: dict[str, dict[str, float]] = {}

    def ref_of(r: dict, ref: str) -> dict | None:
        return r.get("(3c) PL q on dev fast" if ref == "(3c) fast" else ref)

    for name, per_split in results.items():
        row = []
        for ref in ("seed-only", "(1) seed LR", "(3c) PL q on dev", "no recipe", "(3c) fast"):
            ds = [
                100 * (r["default"]["accuracy"] - ref_of(r, ref)["accuracy"])
                for r in per_split.values()
                if "default" in r and ref_of(r, ref) is not None
            ]
            row.append(f"{statistics.mean(ds):+.1f}" if ds else "–")
        ds = [100 * (r["default"]["accuracy"] - r["(3c) PL q on dev"]["accuracy"]) for r in per_split.values() if "default" in r]
        wins = sum(d > 0 for d in ds)
        lines.append(f"| {name} | " + " | ".join(row) + f" | {' '.join(f'{d:+.1f}' for d in ds)} | {wins} of {len(ds)} |")
        means[name] = {c: 100 * statistics.mean([r[c]["accuracy"] for r in per_split.values() if c in r]) for c in order if any(c in r for r in per_split.values())}
    lines.append("")
    lines.append("### Language means of test accuracy (%)")
    lines.append("")
    order = [c for c in order if not c.startswith("seed+")]
    lines.append("| languages | " + " | ".join(short[c] for c in order) + " |")
    lines.append("|---|" + "--:|" * len(order))
    for lang, label in (("en", "English mean"), ("zh", "Chinese mean")):
        names = [n for n in means if LANG[n] == lang]
        if not names:
            continue
        cells = []
        for c in order:
            vals = [means[n][c] for n in names if c in means[n]]
            cells.append(f"{statistics.mean(vals):.1f}" if len(vals) == len(names) else "–")
        lines.append(f"| {label} ({', '.join(names)}) | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("### What the default recipe chose (per split)")
    lines.append("")
    lines.append("| set | split | pseudo-label fraction | methods kept | rows kept | proxy dev acc. seed-only → chosen | expand + finetune s |")
    lines.append("|---|--:|--:|---|--:|---|--:|")
    for name, per_split in results.items():
        for k, r in per_split.items():
            if "default" not in r:
                continue
            rec = r["default"]["expand"].get("recipe") or {}
            ch = rec.get("chosen") or {}
            sc = rec.get("score") or {}
            lines.append(
                f"| {name} | {k} | {ch.get('pseudo_label_fraction')} | {', '.join(ch.get('methods') or []) or 'none'} | "
                f"{r['default']['expand']['kept']} | {sc.get('seed_only', {}).get('accuracy', float('nan')):.3f} → "
                f"{sc.get('chosen', {}).get('accuracy', float('nan')):.3f} | {r['default']['seconds']} |"
            )
    emb = {r.get("embedder") for per in results.values() for r in per.values()}
    lines.append("")
    lines.append(f"Embedder of the default path and of the floors (1)/(3c): {', '.join(sorted(e for e in emb if e))}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--splits", default="0,1,2,3,4")
    ap.add_argument("--quick", action="store_true", help="split 0 only")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".quality-work")
    ap.add_argument("--no-fast-floors", action="store_true", help="skip the floors on MiniLM / e5-small")
    ap.add_argument("--warm-only", action="store_true", help="only fill the embedding cache")
    ap.add_argument("--report-only", action="store_true", help="only tabulate the splits already finished")
    ap.add_argument("--write", type=Path, default=None, help="write the markdown report here")
    ap.add_argument("--json", type=Path, default=None, help="write all per-split results here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "sentence_transformers", "augment", "finetune", "jieba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    splits = [0] if args.quick else [int(s) for s in args.splits.split(",")]
    results: dict[str, dict[int, dict[str, Any]]] = {}
    t0 = time.perf_counter()
    if args.warm_only:  # fill the embedding cache first, e.g. on a bigger machine, then copy it
        warm(args.data, args.sets.split(","), splits, not args.no_fast_floors)
        return
    for name in args.sets.split(","):
        results[name] = {}
        for k in splits:
            if args.report_only:  # the table from the finished splits in the work folder
                done = args.work / name / f"split{k}.json"
                if done.exists() and "default" in (r := json.loads(done.read_text())):
                    results[name][k] = r
                continue
            results[name][k] = run_split(args.data, name, k, args.work, not args.no_fast_floors)
    command = "python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(results, command.strip()) + f"\nWall time: {(time.perf_counter() - t0) / 60:.1f} min.\n"
    print(text)
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
