"""`augment expand` at scale: a synthetic 100,000-row unlabelled pool, the local and the Ray executor
side by side in one run, with rows per second and peak memory for each stage.

    python benchmarks/scale.py --rows 100000 --cpus 2

The seeds are the English sample (samples/en_clinic_triage, 60 rows, 8 labels). The pool is made
from them: each pool row is a seed's text with a share of its words swapped for words of other
seeds and a few random vocabulary words, so it is near one label but not a copy (no labels are
kept). The run is what a user with a large pool runs: lexical rewrites of the seeds and pseudo-
labelling of the pool (the pool's embedding is the heavy map step), then the filters and the recipe
over every candidate (the aggregate steps), then the outputs.

Each executor runs in a fresh process (so the peak RSS of one does not hide the other's), with the
persistent embedding cache off (both embed everything). A sampler reads, every 0.2 s, the RSS of the
driver and of every Ray process (workers, raylet, object store), and gives each sample to the stage
the pipeline last logged (``stage <name>`` lines of ``augment.pipeline``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "samples" / "en_clinic_triage" / "seeds.jsonl"
FILLER = (
    "pt reports mild severe sudden gradual since yesterday last night this morning two days a week "
    "worse better after before with without pain swelling fever cough nausea rash itching dizzy tired "
    "left right upper lower chest back knee hand foot head eye ear throat skin stomach"
).split()


def make_pool(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    seeds = [json.loads(line)["text"] for line in SEEDS.read_text(encoding="utf-8").splitlines() if line.strip()]
    vocab = sorted({w for s in seeds for w in s.split()}) + FILLER
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            words = rng.choice(seeds).split()
            out = [rng.choice(vocab) if rng.random() < 0.3 else w for w in words]
            out += rng.sample(FILLER, rng.randint(0, 3))
            f.write(json.dumps({"id": f"p{i:06d}", "text": " ".join(out)}) + "\n")


# -- one executor in a child process ------------------------------------------------------------
class _Stages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.current = "start"
        self.order = ["start"]
        self.started = {"start": time.perf_counter()}

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("stage "):
            name = msg[len("stage ") :].strip()
            self.current = name
            if name not in self.started:
                self.order.append(name)
                self.started[name] = time.perf_counter()


def _rss_mb() -> tuple[float, float]:
    """(driver, Ray processes) resident memory in MB."""
    import psutil

    me = psutil.Process()
    driver = me.memory_info().rss
    ray = 0
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if p.pid != me.pid and ("ray::" in cmd or "raylet" in cmd or "gcs_server" in cmd or "ray/" in cmd):
                ray += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return driver / 2**20, ray / 2**20


def child(args: argparse.Namespace) -> None:
    from augment.config import ExpandConfig
    from augment.pipeline import expand

    stages = _Stages()
    logging.getLogger("augment").addHandler(stages)
    logging.getLogger("augment").setLevel(logging.INFO)
    peaks: dict[str, list[float]] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            d, r = _rss_mb()
            p = peaks.setdefault(stages.current, [0.0, 0.0, 0.0])
            p[0], p[1], p[2] = max(p[0], d), max(p[1], r), max(p[2], d + r)
            stop.wait(0.2)

    threading.Thread(target=sample, daemon=True).start()
    config = ExpandConfig.from_dict(
        {
            "embedder": args.embedder,
            "methods": {"names": ["synonym", "pseudo_label"]},
            "recipe": {"mode": args.recipe},
            **({"executor": "ray", "ray_cpus": args.cpus} if args.executor == "ray" else {}),
        }
    )
    t = time.perf_counter()
    res = expand(SEEDS, args.out, config, pool_path=args.pool, overwrite=True)
    total = time.perf_counter() - t
    stop.set()
    ends = [stages.started[n] for n in stages.order[1:]] + [t + total]
    rows = []
    for name, end in zip(stages.order, ends, strict=True):
        secs = end - stages.started[name]
        d, r, both = peaks.get(name, [0.0, 0.0, 0.0])
        rows.append({"stage": name, "seconds": round(secs, 2), "driver_mb": round(d), "ray_mb": round(r), "total_mb": round(both)})
    print(
        json.dumps(
            {
                "executor": args.executor,
                "seconds": round(total, 2),
                "kept": len(res.kept),
                "rejected": len(res.rejected),
                "stages": rows,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--embedder", default="fast", help="fast (MiniLM), or hashing for a model-free plumbing run")
    ap.add_argument("--executors", nargs="+", default=["local", "ray"])
    ap.add_argument(
        "--recipe", default="auto", help="auto (the default run), or off: the recipe is driver work, the same under both executors"
    )
    ap.add_argument("--keep", help="keep the pool and both outputs in this folder (to compare them)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--executor", help=argparse.SUPPRESS)
    ap.add_argument("--pool", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        pool = Path(tmp) / "pool.jsonl"
        make_pool(pool, args.rows)
        results = []
        env = {**os.environ, "AUGMENT_EMBED_CACHE": "0", "AUGMENT_CACHE_DIR": str(Path(tmp) / "cache")}
        for ex in args.executors:
            cmd = [
                sys.executable, __file__, "--child", "--executor", ex, "--pool", str(pool),
                "--out", str(Path(tmp) / f"out-{ex}"), "--embedder", args.embedder, "--cpus", str(args.cpus),
                "--recipe", args.recipe,
            ]  # fmt: skip
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"{ex}: exit {proc.returncode}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        same = all(
            (Path(tmp) / f"out-{args.executors[0]}" / name).read_bytes() == (Path(tmp) / f"out-{ex}" / name).read_bytes()
            for ex in args.executors[1:]
            for name in ("augmented.jsonl", "rejected.jsonl")
        )
    print(f"pool rows: {args.rows}; seeds: 60; embedder: {args.embedder}; CPUs: {args.cpus}; recipe: {args.recipe}")
    print(f"outputs byte-identical across executors: {same}\n")
    print("| executor | stage | seconds | pool rows/s | driver peak MB | Ray processes peak MB | total peak MB |")
    print("|---|---|---|---|---|---|---|")
    pool_stages = ("load", "embed", "generate:pseudo_label", "filter", "recipe", "write")
    for r in results:
        for s in r["stages"]:
            if s["stage"] == "start" or (s["seconds"] < 0.05 and not s["total_mb"]):
                continue
            rate = f"{args.rows / s['seconds']:.0f}" if s["stage"] in pool_stages and s["seconds"] > 0 else ""
            mb = [str(s[k]) if s["total_mb"] else "(under 0.2 s)" for k in ("driver_mb", "ray_mb", "total_mb")]
            print(f"| {r['executor']} | {s['stage']} | {s['seconds']} | {rate} | {' | '.join(mb)} |")
        print(f"| {r['executor']} | **all** | {r['seconds']} | {args.rows / r['seconds']:.0f} | | | |")


if __name__ == "__main__":
    main()
