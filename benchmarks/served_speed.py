"""Prompts and tokens per second through the OpenAI-compatible backend at different concurrency, on
llama-cpp-python's own server (``python -m llama_cpp.server``) with the packaged SmolLM2-135M-Instruct
GGUF, started on a free loopback port. The same prompts (greedy, a fixed token limit) at each level;
the server is warmed up first, so model loading is not timed.

    python benchmarks/served_speed.py --prompts 16 --new-tokens 48 --concurrency 1 8

What concurrency buys depends on the server. llama-cpp-python's server (0.3.x) runs one request at
a time: every request takes a global lock on its one model (``get_llama_proxy`` in
``llama_cpp/server/app.py``), and its settings have no ``n_parallel``; several models in a config
file are swapped in and out, not run side by side. ``--n_threads`` only sets the threads of that one
request. So there the client's concurrency can only overlap HTTP, JSON and queueing with generation:
expect a speed-up near 1x. Servers that batch concurrent requests (llama.cpp's ``llama-server
--parallel N``, vLLM, SGLang, TGI, hosted APIs) are where it pays; point the benchmark at one with
``--base-url URL --model NAME`` (nothing is started then):

    python benchmarks/served_speed.py --base-url http://127.0.0.1:8080/v1 --model any --concurrency 1 4 8 16
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

TOPICS = [
    "chest pain after climbing stairs", "a lost bank card", "a rash on both arms", "a failed transfer",
    "a sprained ankle", "an annual card fee", "food poisoning", "a locked online account",
    "asthma at night", "a refund that never came", "a migraine with aura", "a wrong ATM withdrawal",
    "a fever in a toddler", "a blocked credit card", "back pain at work", "a double charge",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def llama_cpp_server(n_threads: int | None) -> Iterator[str]:
    """``python -m llama_cpp.server`` on the packaged SmolLM2, ready to answer; yields its base URL."""
    from augment.generators import smollm2_gguf

    port = _free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2",
    ]  # fmt: skip
    if n_threads:
        cmd += ["--n_threads", str(n_threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    json.load(r)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit("llama_cpp.server did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run(url: str, model: str, prompts: list, new_tokens: int, concurrency: int) -> dict:
    from augment.generators import Decoding, OpenAIGenerator

    gen = OpenAIGenerator(model, url, concurrency=concurrency, timeout=600)
    greedy = Decoding(max_new_tokens=new_tokens, temperature=0.0, seed=0)
    t = time.perf_counter()
    out = gen.generate(prompts, 1, greedy)
    secs = time.perf_counter() - t
    gen.close()
    failed = [s[0].error for s in out if s[0].text is None]
    if failed:
        raise SystemExit(f"{len(failed)} request(s) failed at concurrency {concurrency}: {failed[0]}")
    return {
        "concurrency": concurrency,
        "texts": [s[0].text for s in out],
        "tokens": sum(s[0].completion_tokens for s in out),
        "secs": secs,
        "stats": gen.stats,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--base-url", help="an already running OpenAI-compatible server (nothing is started)")
    ap.add_argument("--model", default="smollm2", help="the served model's name")
    ap.add_argument("--n-threads", type=int, help="llama_cpp.server --n_threads (default: its own)")
    args = ap.parse_args()

    ask = "Write three short sentences a customer or patient might say about {}."
    topics = (TOPICS * (args.prompts // len(TOPICS) + 1))[: args.prompts]
    prompts = [[{"role": "user", "content": ask.format(t)}] for t in topics]
    with llama_cpp_server(args.n_threads) if args.base_url is None else _given(args.base_url) as url:
        run(url, args.model, prompts[:1], 8, 1)  # warm-up: model loaded, first-request costs paid
        rows = [run(url, args.model, prompts, args.new_tokens, c) for c in args.concurrency]
    base = rows[0]["tokens"] / rows[0]["secs"]
    where = args.base_url or "llama_cpp.server (SmolLM2-135M-Instruct Q4_1)"
    print(f"{args.prompts} prompts, greedy, at most {args.new_tokens} new tokens; {where}\n")
    print("| concurrency | peak in flight | tokens | seconds | prompts/s | tokens/s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        tps = r["tokens"] / r["secs"]
        print(
            f"| {r['concurrency']} | {r['stats'].peak_in_flight} | {r['tokens']} | {r['secs']:.1f} "
            f"| {len(prompts) / r['secs']:.2f} | {tps:.1f} | {tps / base:.2f}x |"
        )
    same = all(r["texts"] == rows[0]["texts"] for r in rows)
    print(f"\nsame greedy texts at every concurrency: {'yes' if same else 'no'}")


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
