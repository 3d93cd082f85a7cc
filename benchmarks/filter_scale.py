"""Scale of the dedup and label-consistency filters: N candidates with 384-dimensional embeddings.

Synthetic but shaped like augmentation output: 200 seeds over 10 labels; each candidate is a
noisy copy of a seed's embedding (cosine ~0.9-0.97 to it, like a rewrite) with a Chinese text;
5% are exact text duplicates of an earlier candidate, 5% are one character away from one, 5% are
embedding near-duplicates of one, and 5% carry a wrong label. Times the two filters only
(embedding is the embedder's cost, measured elsewhere) and reports peak memory growth.

    python benchmarks/filter_scale.py --sizes 25000 50000 100000
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make(n: int, rng: np.random.Generator):
    from augment.record import Lineage, Record

    d, n_seeds, n_labels = 384, 200, 10
    centers = rng.standard_normal((n_labels, d)).astype(np.float32)
    seed_labels = np.arange(n_seeds) % n_labels
    seed_vecs = centers[seed_labels] + 0.9 * rng.standard_normal((n_seeds, d)).astype(np.float32)
    seed_vecs /= np.linalg.norm(seed_vecs, axis=1, keepdims=True)
    chars = np.array(
        list(
            "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理"
        )
    )
    seed_texts = ["".join(rng.choice(chars, rng.integers(12, 30))) for _ in range(n_seeds)]
    seeds = [
        Record(id=f"s-{i}", task="classification", fields={"text": seed_texts[i]}, label=f"L{seed_labels[i]}")
        for i in range(n_seeds)
    ]
    parent = rng.integers(0, n_seeds, n)
    vecs = seed_vecs[parent] + 0.025 * rng.standard_normal((n, d)).astype(np.float32)
    texts = ["".join(rng.choice(chars, rng.integers(12, 30))) for _ in range(n)]
    labels = [f"L{seed_labels[p]}" for p in parent]
    kinds = rng.random(n)
    for i in range(1000, n):
        j = int(rng.integers(0, i))
        if kinds[i] < 0.05:
            texts[i] = texts[j]
        elif kinds[i] < 0.10:
            t = list(texts[j])
            t[int(rng.integers(0, len(t)))] = str(rng.choice(chars))
            texts[i] = "".join(t)
        elif kinds[i] < 0.15:
            vecs[i] = vecs[j] + 0.001 * rng.standard_normal(d).astype(np.float32)
        elif kinds[i] < 0.20:
            labels[i] = f"L{(seed_labels[parent[i]] + 1) % n_labels}"
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    cands = [
        Record(
            id=f"a-{i}",
            task="classification",
            fields={"text": texts[i]},
            label=labels[i],
            origin="augmented",
            method="bench",
            parent_ids=(f"s-{parent[i]}",),
            lineage=Lineage(),
        )
        for i in range(n)
    ]
    return seeds, seed_vecs, cands, vecs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=int, default=[25000, 50000, 100000])
    args = ap.parse_args()
    from augment.filters import FilterContext, make_filter, seed_baseline

    print(
        "| candidates | dedup s | label s | total s | kept | dropped: exact / text-near / emb-near / label | peak RSS MB (growth) |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        rng = np.random.default_rng(0)
        seeds, seed_vecs, cands, vecs = make(n, rng)
        ctx = FilterContext(seeds=seeds, field="text", seed_vectors=seed_vecs)
        ctx.baseline = seed_baseline(seed_vecs)
        ctx.candidate_vectors = {c.id: v for c, v in zip(cands, vecs, strict=True)}
        before = rss_mb()
        t0 = time.perf_counter()
        verdicts = make_filter("dedup", language="zh")(cands, ctx)
        t1 = time.perf_counter()
        survivors = [c for c, v in zip(cands, verdicts, strict=True) if v.keep]
        label_v = make_filter("label")(survivors, ctx)
        t2 = time.perf_counter()
        codes = [v.code for v in verdicts if not v.keep]
        exact = sum(c.startswith("exact") for c in codes)
        text_near = sum(c.startswith("text_near") for c in codes)
        emb_near = sum(c.startswith("near") for c in codes)
        label_drop = sum(not v.keep for v in label_v)
        print(
            f"| {n} | {t1 - t0:.1f} | {t2 - t1:.1f} | {t2 - t0:.1f} | {len(survivors) - label_drop} | "
            f"{exact} / {text_near} / {emb_near} / {label_drop} | {rss_mb():.0f} (+{rss_mb() - before:.0f}) |"
        )


if __name__ == "__main__":
    main()
