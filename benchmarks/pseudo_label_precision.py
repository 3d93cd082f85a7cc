"""How right are the pseudo-labels? Seeds = a benchmark's few-shot train split; pool = its labelled
dev_full pool with the labels hidden (never the test split). Reports, per setting, how many pool rows
were accepted and the accuracy of the accepted labels, for each of the few-shot splits given.

    python benchmarks/pseudo_label_precision.py --data ../shared/data --sets chnsenticorp snips
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--sets", nargs="+", default=["chnsenticorp", "snips"])
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--pool-size", type=int, default=600)
    args = ap.parse_args()

    from augment.context import RunContext
    from augment.embedcache import CachedEmbedder
    from augment.embedders import load_embedder, resolve_embedder_spec
    from augment.language import detect_language
    from augment.methods import build_method
    from augment.record import seed_record

    settings = {
        "logreg only, t=0.8": {"classifiers": ["logreg"], "agree": 1},
        "3 classifiers, 2 agree, t=0.8": {},
        "3 classifiers, 3 agree, t=0.9": {"agree": 3, "threshold": 0.9},
    }
    print("| set | setting | accepted per split | accuracy of accepted (mean ± std over splits) |")
    print("|---|---|---|---|")
    for name in args.sets:
        root = Path(args.data) / name
        pool_rows = read(root / "dev_full.jsonl")
        random.Random(0).shuffle(pool_rows)
        pool_rows = pool_rows[: args.pool_size]
        truth = {r["text"]: r["label"] for r in pool_rows}
        lang = detect_language([r["text"] for r in pool_rows[:100]])
        emb = CachedEmbedder(load_embedder(resolve_embedder_spec("auto", lang)))
        pool = [seed_record("classification", {"text": r["text"]}, None, origin="pool") for r in pool_rows]
        for label, params in settings.items():
            accs, taken = [], []
            for k in range(args.splits):  # split 0 is train.jsonl, the others splits/train_K.jsonl
                split = root / "splits" / f"train_{k}.jsonl" if k else root / "train.jsonl"
                seeds = [seed_record("classification", {"text": r["text"]}, r["label"]) for r in read(split)]
                m = build_method("pseudo_label", {"per_class": 10**6, **params})
                m.setup(RunContext(seeds=seeds, language=lang, pool=pool))
                out = m.label_pool(pool, seeds, "text", emb, 13)
                acc = [r for r in out if r.rejection is None]
                taken.append(len(acc))
                if acc:  # a split where nothing passed the gate has no accuracy to report
                    accs.append(sum(truth[r.fields["text"]] == r.label for r in acc) / len(acc))
            score = f"{statistics.mean(accs):.3f} ± {statistics.pstdev(accs):.3f}" if accs else "n/a"
            print(
                f"| {name} | {label} | {' / '.join(map(str, taken))} of {len(pool)} | {score}"
                f"{f' ({len(accs)} splits)' if len(accs) < len(taken) else ''} |"
            )


if __name__ == "__main__":
    main()
