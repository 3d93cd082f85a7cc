"""Kill and resume for real (issue 12): `augment expand` runs as a subprocess, gets SIGKILL at several
points, is rerun with ``--resume``, and its final outputs must equal an uninterrupted run's, byte for
byte: nothing duplicated, nothing lost. And a lock: a second run given the same ``-o`` while the
first is running is refused with one clear line, whatever flags it has.

The kill points are found by watching the run's checkpoints (``OUT/.work/gen-*.jsonl``); a batch of
two seeds takes milliseconds, so "after the first batch" can be after a few: the test reads what the
checkpoints held at the kill and checks that the resumed run reused exactly those seeds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ZH_BANK, read_jsonl, write_jsonl

AUGMENT = Path(sys.executable).with_name("augment")
# 12 seeds in batches of 2: 6 checkpoint lines per lexical method, then one for the labelled pool
ARGS = ["--methods", "swap,delete,pseudo_label", "--batch-size", "2", "--n-per-seed", "1"]
_LOG = re.compile(r"^(DEBUG|INFO|WARNING) [\w.]+: ")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("kill")
    seeds = write_jsonl(tmp / "seeds.jsonl", read_jsonl(ZH_BANK / "seeds.jsonl")[:12])
    pool = write_jsonl(tmp / "pool.jsonl", read_jsonl(ZH_BANK / "unlabeled.jsonl")[:30])
    return seeds, pool


def _cmd(inputs, out: Path, *extra: str) -> list[str]:
    seeds, pool = inputs
    return [str(AUGMENT), "expand", str(seeds), "--unlabeled", str(pool), "-o", str(out), *ARGS, *extra]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not _LOG.match(ln)]


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kill-ref") / "out"
    done = _run(_cmd(inputs, out))
    assert done.returncode == 0, done.stderr
    return out


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _checkpointed_seeds(out: Path) -> int:
    """Seeds (or pool rows) the checkpoints hold a whole line for, over every step."""
    n = 0
    for path in (out / ".work").glob("gen-*.jsonl"):
        for line in path.read_text(encoding="utf-8").split("\n"):
            try:
                n += len(json.loads(line)["seed_ids"])
            except (json.JSONDecodeError, KeyError):
                pass  # a torn last line: redone on resume
    return n


# when to kill: a predicate on the output folder (None: after a fixed delay)
KILL_POINTS = {
    "at_start": None,
    "folder_just_made": lambda out: (out / ".work").exists(),
    "after_first_swap_batch": lambda out: _lines(out / ".work" / "gen-swap-text.jsonl") >= 1,
    "after_second_swap_batch": lambda out: _lines(out / ".work" / "gen-swap-text.jsonl") >= 2,
    "labelling_the_pool": lambda out: _lines(out / ".work" / "gen-delete-text.jsonl") >= 6,
    "writing_the_outputs": lambda out: any(out.glob("*.jsonl*")) or any(out.glob(".*.tmp")),
}


def _kill(cmd: list[str], out: Path, when) -> int:
    """Start the run and SIGKILL it at ``when``; returns the exit status (-9 when it was killed)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + (0.3 if when is None else 600)
    while proc.poll() is None and time.monotonic() < deadline:
        if when is not None and when(out):
            break
        time.sleep(0.002)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    return proc.wait()


def _manifest(out: Path) -> dict:
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for key in ("command", "started_at", "finished_at", "timings_s", "outputs", "resume"):
        m.pop(key)
    return m


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_resume_matches_an_uninterrupted_run(inputs, reference, tmp_path, point):
    out = tmp_path / "out"
    status = _kill(_cmd(inputs, out), out, KILL_POINTS[point])
    if point != "writing_the_outputs":  # that window is short: the run may finish first
        assert status == -signal.SIGKILL, f"the run ended ({status}) before the kill point"
    killed = status == -signal.SIGKILL
    reusable = _checkpointed_seeds(out) if out.exists() else 0
    if killed and (out / ".work").exists():
        assert (out / ".work" / "lock").exists()  # the dead run's lock file stays; it blocks nothing
    if point == "at_start":
        assert not out.exists() or not (out / ".work" / "state.json").exists()

    resumed = _run(_cmd(inputs, out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    for name in ("augmented.jsonl", "rejected.jsonl"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), (point, name)
    assert _manifest(out) == _manifest(reference)
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    if killed:
        assert m["resume"]["seeds_reused"] == reusable, (point, m["resume"])
    assert sorted(p.name for p in out.iterdir()) == ["augmented.jsonl", "manifest.json", "rejected.jsonl"]


def test_second_run_on_the_same_out_is_refused(tmp_path):
    """A (the whole Chinese sample) is running; B, C and D on its -o are refused, with --overwrite or
    --resume too, and A's outputs come out whole."""
    seeds, pool = ZH_BANK / "seeds.jsonl", ZH_BANK / "unlabeled.jsonl"
    out = tmp_path / "out"
    cmd = [str(AUGMENT), "expand", str(seeds), "--unlabeled", str(pool), "-o", str(out), *ARGS]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = out / ".work" / "lock"
    while first.poll() is None and not (lock.exists() and lock.read_text()):
        time.sleep(0.01)
    assert first.poll() is None, "the first run ended before it could be raced"
    others = [
        subprocess.Popen(cmd + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for extra in ([], ["--overwrite"], ["--resume"])
    ]
    message = (
        f"Error: {out}: another augment run (pid {first.pid}) is writing to this folder; "
        "wait for it to finish or choose another -o"
    )
    for proc in others:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode != 0
        assert _errors(err) == [message]
    assert first.poll() is None, "the refusals came after the first run had finished: the lock was not tested"
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    rows = read_jsonl(out / "augmented.jsonl")
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert len(rows) == m["counts"]["output_rows"] and len({r["id"] for r in rows}) == len(rows)
    assert not (out / ".work").exists()
    # once it is done, the lock is gone with .work: a rerun with --resume says it is complete
    again = _run(cmd + ["--resume"])
    assert again.returncode == 0, again.stderr
    assert "already complete" in again.stderr
