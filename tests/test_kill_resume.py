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
    assert sorted(p.name for p in out.iterdir()) == [
        "augmented.jsonl", "manifest.json", "rejected.jsonl", "report.html", "report_points.json"
    ]


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


# -- a kill inside an LLM batch ---------------------------------------------------------------------
class _SlowOpenAI:
    """A local OpenAI-compatible server whose answers are a pure function of the request (so any two
    runs get the same completions), and which can hold one request open until told to answer."""

    def __init__(self, hold_at: int | None, port: int = 0) -> None:
        import http.server
        import threading

        from fakes import default_response

        self.hold_at, self.count = hold_at, 0
        self.holding, self.release = threading.Event(), threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.count += 1
                if owner.hold_at is not None and owner.count == owner.hold_at:
                    owner.holding.set()  # the client is now waiting inside its batch
                    owner.release.wait(60)
                prompt = "\n".join(m["content"] for m in body["messages"])
                text = default_response(prompt, 0, type("D", (), {"seed": body.get("seed", 0)})())
                out = {"choices": [{"message": {"content": text}}], "usage": {"prompt_tokens": 7, "completion_tokens": 5}}
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps(out).encode())
                except OSError:
                    pass  # the client was killed while this request was held

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.port = self.srv.server_port

    def close(self) -> None:
        self.release.set()
        self.srv.shutdown()
        self.srv.server_close()


def _llm_cmd(seeds: Path, out: Path, port: int, *extra: str) -> list[str]:
    return [
        str(AUGMENT), "expand", str(seeds), "-o", str(out), "--methods", "self_instruct", "--n-per-seed", "2",
        "--batch-size", "2", "--recipe", "off", "--embedder", "hashing", "--filters", "quality,script", "--backend", "openai",
        "--model", "fake-model", "--base-url", f"http://127.0.0.1:{port}/v1", *extra,
    ]  # fmt: skip


def test_sigkill_inside_an_llm_batch_then_resume_matches(inputs, tmp_path):
    """SIGKILL while the LLM method waits on a request of its second batch; the resumed run (with a
    fresh response cache, so nothing is served from the dead run's cache) equals an unbroken run."""
    seeds = write_jsonl(tmp_path / "seeds.jsonl", read_jsonl(inputs[0])[:6])
    env = {**os.environ, "AUGMENT_CACHE_DIR": str(tmp_path / "cache-ref")}
    ref_srv = _SlowOpenAI(None)
    try:
        ref = subprocess.run(_llm_cmd(seeds, tmp_path / "ref", ref_srv.port), env=env, capture_output=True, text=True, timeout=600)
    finally:
        ref_srv.close()
    assert ref.returncode == 0, ref.stderr
    assert len(read_jsonl(tmp_path / "ref" / "augmented.jsonl")) > len(read_jsonl(seeds))  # LLM rows were kept

    out = tmp_path / "out"
    srv = _SlowOpenAI(hold_at=3)  # batch 1 = 2 anchors = 2 requests; the 3rd is inside batch 2
    try:
        env = {**os.environ, "AUGMENT_CACHE_DIR": str(tmp_path / "cache-killed")}
        proc = subprocess.Popen(_llm_cmd(seeds, out, srv.port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert srv.holding.wait(300), "the run never reached its second LLM batch"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        reusable = _checkpointed_seeds(out)
        assert reusable == 2  # the first batch was checkpointed; the one in flight was not
    finally:
        srv.close()
    srv = _SlowOpenAI(None, port=srv.port)  # the same URL: it is part of the run's settings
    try:
        env = {**os.environ, "AUGMENT_CACHE_DIR": str(tmp_path / "cache-resumed")}
        resumed = subprocess.run(_llm_cmd(seeds, out, srv.port, "--resume"), env=env, capture_output=True, text=True, timeout=600)
    finally:
        srv.close()
    assert resumed.returncode == 0, resumed.stderr
    for name in ("augmented.jsonl", "rejected.jsonl"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert m["resume"]["seeds_reused"] == 2 and m["generation"]["self_instruct"]["calls"] == 4
