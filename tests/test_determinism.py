"""The same `augment expand` in two fresh processes gives byte-identical outputs, whatever the thread
count, the batch size and the string-hash seed (issue 12).

Two runs of the CLI on a Chinese and on an English subset with a pool: one with ``OMP_NUM_THREADS=1``,
batches of 4 and ``PYTHONHASHSEED=1``, the other with 2 threads, batches of 32 and ``PYTHONHASHSEED=2``
(set iteration order differs between them), each with its own empty cache folder, so no vector is
read back from the other run's embedding cache. ``augmented.jsonl`` and ``rejected.jsonl`` must be
equal byte for byte; the manifests may differ only in timings, paths, times and the batch size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EN_CLINIC, ZH_BANK, read_jsonl, write_jsonl

AUGMENT = Path(sys.executable).with_name("augment")
METHODS = "swap,delete,spelling,pseudo_label"


def _inputs(tmp: Path, sample: Path) -> tuple[Path, Path]:
    rows = read_jsonl(sample / "seeds.jsonl")
    labels = sorted({r["label"] for r in rows})
    seeds: list[dict] = []
    for label in labels:  # three of each label: the recipe cross-validates, every filter decides
        seeds += [r for r in rows if r["label"] == label][:3]
    pool = read_jsonl(sample / "unlabeled.jsonl")[:60]
    return write_jsonl(tmp / "seeds.jsonl", seeds), write_jsonl(tmp / "pool.jsonl", pool)


def _start(tmp: Path, name: str, seeds: Path, pool: Path, threads: int, batch: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONHASHSEED": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "AUGMENT_CACHE_DIR": str(tmp / f"cache-{name}"),
        "HF_DATASETS_CACHE": str(tmp / f"cache-{name}" / "datasets"),
    }
    args = [str(AUGMENT), "-q", "expand", str(seeds), "--unlabeled", str(pool), "-o", str(tmp / name)]
    args += ["--methods", METHODS, "--batch-size", str(batch)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _comparable(manifest: dict) -> dict:
    m = json.loads(json.dumps(manifest))
    for key in ("command", "started_at", "finished_at", "timings_s", "outputs"):
        m.pop(key)
    for info in m["inputs"].values():
        info.pop("path")
    m["config"].pop("batch_size")
    for note in m["data_notes"]:
        note.pop("file")
    return m


@pytest.mark.parametrize("sample", [ZH_BANK, EN_CLINIC], ids=["zh", "en"])
def test_two_processes_with_other_threads_and_batches_give_the_same_bytes(tmp_path, sample):
    seeds, pool = _inputs(tmp_path, sample)
    # the two runs go side by side: each is a fresh process with its own caches
    runs = {
        "a": _start(tmp_path, "a", seeds, pool, threads=1, batch=4),
        "b": _start(tmp_path, "b", seeds, pool, threads=2, batch=32),
    }
    for name, proc in runs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, (name, out)
    a, b = tmp_path / "a", tmp_path / "b"
    rows = read_jsonl(a / "augmented.jsonl")
    assert {r["method"] for r in rows} >= {"swap", "delete", "spelling"}  # a real run, not an empty one
    for name in ("augmented.jsonl", "rejected.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma = json.loads((a / "manifest.json").read_text(encoding="utf-8"))
    mb = json.loads((b / "manifest.json").read_text(encoding="utf-8"))
    assert ma["config"]["batch_size"] == 4 and mb["config"]["batch_size"] == 32
    assert _comparable(ma) == _comparable(mb)
