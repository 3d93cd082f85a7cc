"""Tokens per second for the same prompts through llama.cpp and transformers, on the packaged
SmolLM2-135M-Instruct GGUF (llama.cpp runs the Q4_1 file; transformers dequantises it to fp32, cached).

One run measures, on the same chat prompts, greedy, no stop strings, a fixed number of new tokens:
llama.cpp one prompt at a time (``parallel=1``: ``create_chat_completion`` per prompt), llama.cpp with
several sequences per decode (``parallel=P``), transformers one prompt at a time and batched; and prints
each one's speed-up over transformers one prompt at a time (the issue-15 target: llama.cpp batched at
least 4x). Tokens are those actually generated (a sequence that ends at EOS counts what it produced).
Each backend is warmed up (model and contexts loaded) before it is timed.

    python benchmarks/llm_speed.py --prompts 16 --new-tokens 64 --parallel 8
    python benchmarks/llm_speed.py --prompts 16 --new-tokens 64 --parallel 4,8,16 --skip-transformers
"""

from __future__ import annotations

import argparse
import os
import time

PROMPTS = [
    "Write a short triage note for a patient with chest pain.",
    "List three symptoms of asthma.",
    "Explain what a credit card annual fee is.",
    "Describe a lost bank card in one sentence.",
    "Give two examples of skin rash descriptions.",
    "What should a patient with a sprained ankle do?",
    "Write a customer message about a failed transfer.",
    "Summarise the causes of food poisoning.",
    "Write a short note about a child with a high fever.",
    "Explain how to report a stolen phone to a bank.",
    "Describe the symptoms of a migraine.",
    "Write a complaint about a delayed refund.",
    "List three questions a nurse asks about a rash.",
    "Explain what an overdraft is.",
    "Describe a patient who fainted at work.",
    "Write a message asking to raise a card limit.",
]


def _timed(gen, prompts, decoding) -> tuple[int, float, list[str]]:
    t = time.perf_counter()
    out = gen.generate(prompts, 1, decoding)
    dt = time.perf_counter() - t
    errors = [s[0].error for s in out if s[0].error]
    if errors:
        raise SystemExit(f"generation failed: {errors[0]}")
    return sum(s[0].completion_tokens for s in out), dt, [s[0].text for s in out]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--parallel", default="8", help="llama.cpp sequences per decode; a comma list to compare")
    ap.add_argument("--threads", type=int, default=None, help="threads of both backends (default: all cores)")
    ap.add_argument("--skip-transformers", action="store_true", help="llama.cpp rows only (no speed-up)")
    args = ap.parse_args()
    from augment.generators import Decoding, LlamaCppGenerator, TransformersGenerator, smollm2_gguf

    prompts = [[{"role": "user", "content": p}] for p in (PROMPTS * 8)[: args.prompts]]
    # fixed output length: greedy, no stop strings, a long enough answer for every prompt
    d = Decoding(max_new_tokens=args.new_tokens, temperature=0.0)
    warm = Decoding(max_new_tokens=2, temperature=0.0)
    # a warm-up prompt outside the set: llama-cpp-python reuses the KV cache of the previous prompt, and
    # a prompt it has just seen would be re-evaluated from its last token alone (other rounding)
    warm_up = [[{"role": "user", "content": "Say hello."}]]
    path = smollm2_gguf()
    threads = args.threads or os.cpu_count()
    rows: list[tuple[str, int, float]] = []
    llama = LlamaCppGenerator(str(path), chat=True, n_threads=threads, parallel=1)
    llama.generate(warm_up, 1, warm)
    tokens, secs, single = _timed(llama, prompts, d)
    rows.append((f"llama.cpp (Q4_1, {threads} threads, one prompt at a time)", tokens, secs))
    agreement = []
    for p in [int(x) for x in args.parallel.split(",")]:
        llama.parallel = p  # a context for this many sequences is made on the next call
        llama.generate(warm_up, 1, warm)
        tokens, secs, texts = _timed(llama, prompts, d)
        rows.append((f"llama.cpp (Q4_1, {threads} threads, {p} sequences per decode)", tokens, secs))
        agreement.append((p, sum(a == b for a, b in zip(single, texts, strict=True))))
    if not args.skip_transformers:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        tf = TransformersGenerator(str(path.parent), gguf_file=path.name, batch_size=1)
        tf.generate(warm_up, 1, warm)
        for bs in (1, len(prompts)):
            tf.batch_size = bs
            tokens, secs, _ = _timed(tf, prompts, d)
            rows.append((f"transformers (fp32, batch {bs})", tokens, secs))
    base = rows[-2][1] / rows[-2][2] if not args.skip_transformers else None
    print(f"{len(prompts)} prompts, greedy, {args.new_tokens} new tokens at most")
    print("| backend | tokens | seconds | tokens/s | speed-up over transformers batch 1 |")
    print("|---|---|---|---|---|")
    for name, tokens, secs in rows:
        rate = tokens / secs
        up = f"{rate / base:.1f}x" if base else "-"
        print(f"| {name} | {tokens} | {secs:.1f} | {rate:.1f} | {up} |")
    for p, same in agreement:
        print(f"greedy texts equal to one prompt at a time, {p} sequences per decode: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
