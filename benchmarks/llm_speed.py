"""Tokens per second for the same prompts through transformers and through llama.cpp, on the packaged
SmolLM2-135M-Instruct GGUF (transformers dequantises it to fp32). Greedy decoding, a fixed number of
new tokens per prompt, one prompt at a time and (transformers) batched.

    python benchmarks/llm_speed.py --prompts 8 --new-tokens 64
"""

from __future__ import annotations

import argparse
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
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    from augment.generators import Decoding, LlamaCppGenerator, TransformersGenerator, smollm2_gguf

    prompts = [[{"role": "user", "content": p}] for p in (PROMPTS * 4)[: args.prompts]]
    # fixed output length: greedy, no stop strings, and a long enough answer for every prompt
    d = Decoding(max_new_tokens=args.new_tokens, temperature=0.0)
    path = smollm2_gguf()
    rows = []
    llama = LlamaCppGenerator(str(path), chat=True)
    t = time.perf_counter()
    out = llama.generate(prompts, 1, d)
    dt = time.perf_counter() - t
    rows.append(("llama.cpp (Q4_1, 2 threads)", sum(s[0].completion_tokens for s in out), dt))
    tf = TransformersGenerator(str(path.parent), gguf_file=path.name, batch_size=1)
    for bs in (1, len(prompts)):
        tf.batch_size = bs
        t = time.perf_counter()
        out = tf.generate(prompts, 1, d)
        dt = time.perf_counter() - t
        rows.append((f"transformers (fp32, batch {bs})", sum(s[0].completion_tokens for s in out), dt))
    base = rows[0][1] / rows[0][2]
    print("| backend | tokens | seconds | tokens/s | llama.cpp speed-up |")
    print("|---|---|---|---|---|")
    for name, tokens, secs in rows:
        print(f"| {name} | {tokens} | {secs:.1f} | {tokens / secs:.1f} | {base / (tokens / secs):.1f}x |")


if __name__ == "__main__":
    main()
