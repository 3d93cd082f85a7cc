"""Back-translation (en -> de -> en) speed: nlpaug's BackTranslationAug against this project's seq2seq engines
(transformers fp32 and CTranslate2 int8), on the same inputs through the same model.

The model is a full-size Marian with the configuration of Helsinki-NLP/opus-mt-en-de (74M parameters, 58,101
tokens) and random weights (the hub is unreachable here), with a real MarianTokenizer whose SentencePiece
model is trained on English text on the fly. The same folder serves both directions; each engine still loads
two models, as it would for a real en-de / de-en pair. Outputs are random tokens, so every hop is forced to
exactly ``--new-tokens`` new tokens (min = max length) and every engine does the same decoding work; the
table prints the measured token counts. Each engine runs in its own process (peak RSS per engine), after a
warm-up round trip; CTranslate2's conversion runs once, in a process of its own, and is timed apart.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python benchmarks/backtranslation_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "en_clinic_triage"
SHARED = ROOT.parent / "shared" / "data"
ENGINES = ("nlpaug", "transformers", "ctranslate2")
LABELS = {
    "nlpaug": "(a) nlpaug BackTranslationAug (transformers fp32)",
    "transformers": "(b) augment TransformersSeq2Seq (fp32)",
    "ctranslate2": "(c) augment CTranslate2Seq2Seq (int8)",
}

# Helsinki-NLP/opus-mt-en-de's config.json (the values that shape the network and its decoding).
VOCAB_SIZE = 58101
PAD_ID = 58100
OPUS_MT_EN_DE = {
    "vocab_size": VOCAB_SIZE,
    "decoder_vocab_size": VOCAB_SIZE,
    "d_model": 512,
    "encoder_layers": 6,
    "decoder_layers": 6,
    "encoder_attention_heads": 8,
    "decoder_attention_heads": 8,
    "encoder_ffn_dim": 2048,
    "decoder_ffn_dim": 2048,
    "max_position_embeddings": 512,
    "activation_function": "swish",
    "scale_embedding": True,
    "normalize_before": False,
    "normalize_embedding": False,
    "static_position_embeddings": True,
    "share_encoder_decoder_embeddings": True,
    "dropout": 0.1,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "init_std": 0.02,
    "pad_token_id": PAD_ID,
    "decoder_start_token_id": PAD_ID,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "forced_eos_token_id": 0,
}
# ... and its generation_config.json
OPUS_MT_GENERATION = {
    "bad_words_ids": [[PAD_ID]],
    "bos_token_id": 0,
    "decoder_start_token_id": PAD_ID,
    "eos_token_id": 0,
    "forced_eos_token_id": 0,
    "max_length": 512,
    "num_beams": 4,
    "pad_token_id": PAD_ID,
    "renormalize_logits": True,
}
SPM_PIECES = 8000  # requested SentencePiece vocabulary; the rest of the 58,101 ids are filler tokens


# -- inputs and model ------------------------------------------------------------------------------
def _texts(files: list[Path]) -> list[str]:
    out = []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip() and (t := json.loads(line).get("text")):
                out.append(t)
    return out


def sample_sentences(n: int, warmup: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` timed and ``warmup`` warm-up sentences (disjoint) from the English clinic-triage sample."""
    texts = sorted(set(_texts(sorted(SAMPLES.glob("*.jsonl")))))
    if n + warmup > len(texts):
        raise SystemExit(f"only {len(texts)} sample sentences; ask for fewer")
    picked = random.Random(seed).sample(texts, n + warmup)
    return picked[warmup:], picked[:warmup]


def tokenizer_corpus() -> list[str]:
    """English text for the SentencePiece model: the clinic sample plus the English benchmark pools."""
    files = sorted(SAMPLES.glob("*.jsonl"))
    for name in ("sst2", "trec", "snips"):
        if (SHARED / name / "train_full.jsonl").is_file():
            files.append(SHARED / name / "train_full.jsonl")
    return _texts(files)


def build_model(path: Path) -> dict:
    """Full-size random opus-mt-en-de (torch.manual_seed(0)) + a MarianTokenizer laid out like the real one:
    vocab.json = {"</s>": 0, "<unk>": 1, <SentencePiece pieces>, <filler tokens>, "<pad>": 58100}."""
    import io

    import sentencepiece as spm
    import torch
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

    t0 = time.perf_counter()
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    corpus = tokenizer_corpus()
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=buf,
        model_type="unigram",
        vocab_size=SPM_PIECES,
        hard_vocab_limit=False,
        character_coverage=1.0,
        unk_id=0,
        bos_id=-1,
        eos_id=1,
        pad_id=-1,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    vocab = {"</s>": 0, "<unk>": 1}
    for i in range(sp.get_piece_size()):
        if not (sp.is_control(i) or sp.is_unknown(i)):
            vocab.setdefault(sp.id_to_piece(i), len(vocab))
    pieces = len(vocab)
    while len(vocab) < PAD_ID:
        vocab[f"<filler_{len(vocab)}>"] = len(vocab)
    vocab["<pad>"] = PAD_ID
    for name in ("source.spm", "target.spm"):
        (tmp / name).write_bytes(buf.getvalue())
    (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tok = MarianTokenizer(
        source_spm=str(tmp / "source.spm"), target_spm=str(tmp / "target.spm"), vocab=str(tmp / "vocab.json")
    )
    assert len(tok) == VOCAB_SIZE and tok.pad_token_id == PAD_ID and tok.eos_token_id == 0, (len(tok),)
    assert tok.unk_token_id == 1
    torch.manual_seed(0)
    model = MarianMTModel(MarianConfig(**OPUS_MT_EN_DE))
    model.generation_config = GenerationConfig(**OPUS_MT_GENERATION)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    info = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "spm_pieces": pieces - 2,
        "tokenizer_sentences": len(corpus),
        "build_s": time.perf_counter() - t0,
    }
    (tmp / "benchmark_model.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return info


def nlpaug_view(model_dir: Path, new_tokens: int, beams: int) -> Path:
    """nlpaug calls ``generate(input_ids, attention_mask, max_length=...)`` and nothing else, so its length
    and beams come from the model's generation_config: a folder of links to the model with its own
    generation_config.json (min = max = ``new_tokens`` new tokens, ``beams`` beams)."""
    view = model_dir.parent / f"{model_dir.name}-nlpaug-L{new_tokens}-b{beams}"
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir()
    for f in model_dir.iterdir():
        if f.is_file() and f.name != "generation_config.json":
            (view / f.name).symlink_to(f.resolve())
    gen = dict(OPUS_MT_GENERATION, num_beams=beams, min_new_tokens=new_tokens, max_new_tokens=new_tokens)
    (view / "generation_config.json").write_text(json.dumps(gen, indent=1), encoding="utf-8")
    return view


# -- measurement (in a child process per engine) ------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Counter:
    """Tokens in (source) and out (generated, per returned sequence) of every generate call of one hop."""

    def __init__(self) -> None:
        self.hops: list[dict[str, int]] = []
        self.on = False

    def add(self, hop: int, src: int, out: int, seqs: int, outputs: int) -> None:
        if not self.on:
            return
        while len(self.hops) <= hop:
            self.hops.append({"src_tokens": 0, "inputs": 0, "new_tokens": 0, "outputs": 0})
        h = self.hops[hop]
        h["src_tokens"] += src
        h["inputs"] += seqs
        h["new_tokens"] += out
        h["outputs"] += outputs


def _wrap_torch(model, counter: Counter, hop: int) -> None:
    """Count around ``model.generate`` (an instance attribute, so nlpaug's own call goes through it)."""
    inner = model.generate

    def generate(*args, **kwargs):
        ids = inner(*args, **kwargs)
        mask = kwargs.get("attention_mask")
        src = int(mask.sum()) if mask is not None else int(kwargs["input_ids"].numel())
        # position 0 is the decoder start (<pad>); <pad> is a bad word, so any later <pad> is padding
        new = int((ids[:, 1:] != PAD_ID).sum())
        counter.add(hop, src, new, int(kwargs["input_ids"].shape[0]), int(ids.shape[0]))
        return ids

    model.generate = generate


class _CountingTranslator:
    def __init__(self, translator, counter: Counter, hop: int) -> None:
        self.translator, self.counter, self.hop = translator, counter, hop

    def translate_batch(self, sources, **kwargs):
        results = self.translator.translate_batch(sources, **kwargs)
        hyps = [h for r in results for h in r.hypotheses]
        self.counter.add(self.hop, sum(map(len, sources)), sum(map(len, hyps)), len(sources), len(hyps))
        return results


def run_engine(args: argparse.Namespace) -> dict:
    import warnings

    import torch
    import transformers
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: F401  (in the RSS baseline)

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()  # "max_new_tokens and max_length both set" on every call
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
    sentences, warm = sample_sentences(args.sentences, args.warmup)
    counter = Counter()
    engine = args.child
    if engine == "nlpaug":
        import nlpaug.augmenter.word as naw

        base = _rss_mb()
        t0 = time.perf_counter()
        view = str(args.nlpaug_view)
        # generate's max_length counts the decoder start token, so new_tokens + 1 means new_tokens new tokens
        aug = naw.BackTranslationAug(
            from_model_name=view,
            to_model_name=view,
            device="cpu",
            batch_size=args.batch_size,
            max_length=args.new_tokens + 1,
        )
        load_s = time.perf_counter() - t0
        _wrap_torch(aug.model.src_model, counter, 0)
        _wrap_torch(aug.model.tgt_model, counter, 1)
        two_models = aug.model.src_model is not aug.model.tgt_model

        def round_trip(texts: list[str]) -> list[str]:
            return aug.augment(texts)

    else:
        from augment.seq2seq import CTranslate2Seq2Seq, Seq2SeqDecoding, TransformersSeq2Seq

        if engine == "ctranslate2":
            import ctranslate2  # noqa: F401  (in the RSS baseline, like torch)
        dec = Seq2SeqDecoding(
            num_beams=args.beams, min_new_tokens=args.new_tokens, max_new_tokens=args.new_tokens
        )
        base = _rss_mb()
        t0 = time.perf_counter()
        if engine == "transformers":
            fwd, bwd = (
                TransformersSeq2Seq(str(args.model_dir), device="cpu", batch_size=args.batch_size)
                for _ in range(2)
            )
            _wrap_torch(fwd.model, counter, 0)
            _wrap_torch(bwd.model, counter, 1)
        else:
            fwd, bwd = (
                CTranslate2Seq2Seq(str(args.model_dir), compute_type="int8", batch_size=args.batch_size)
                for _ in range(2)
            )
            fwd.translator = _CountingTranslator(fwd.translator, counter, 0)
            bwd.translator = _CountingTranslator(bwd.translator, counter, 1)
        load_s = time.perf_counter() - t0
        two_models = fwd is not bwd

        def round_trip(texts: list[str]) -> list[str]:
            de = [o[0] for o in fwd.generate(texts, 1, dec)]
            return [o[0] for o in bwd.generate(de, 1, dec)]

    for _ in range(args.warmup_rounds):
        round_trip(warm)
    counter.on = True
    t0 = time.perf_counter()
    outs = []
    for _ in range(args.repeats):
        outs = round_trip(sentences)
    seconds = time.perf_counter() - t0
    assert len(outs) == len(sentences), (len(outs), len(sentences))
    return {
        "engine": engine,
        "load_s": load_s,
        "seconds": seconds,
        "round_trips": len(sentences) * args.repeats,
        "sentences_per_s": len(sentences) * args.repeats / seconds,
        "rss_before_load_mb": base,
        "peak_rss_mb": _peak_mb(),
        "two_models_loaded": two_models,
        "hops": counter.hops,
        "example": [sentences[0], outs[0]],
        "torch_threads": torch.get_num_threads(),
    }


def run_convert(args: argparse.Namespace) -> dict:
    from augment.seq2seq import ctranslate2_folder

    t0 = time.perf_counter()
    folder = ctranslate2_folder(str(args.model_dir), "int8")
    return {"convert_s": time.perf_counter() - t0, "peak_rss_mb": _peak_mb(), "folder": str(folder)}


def _busy_s() -> float:
    """CPU seconds the whole machine has been busy (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def child(args: argparse.Namespace, engine: str, env: dict[str, str], out: Path) -> dict:
    """Run one engine in a fresh process; also note how much CPU other processes took meanwhile."""
    cmd = [sys.executable, __file__, "--child", engine, "--child-out", str(out)] + args.passthrough
    print(f"# {engine} ...", file=sys.stderr, flush=True)
    busy, own, t0 = _busy_s(), _children_cpu_s(), time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    result = json.loads(out.read_text(encoding="utf-8"))
    result["wall_s"] = time.perf_counter() - t0
    result["cpu_s"] = _children_cpu_s() - own
    result["other_cpu_s"] = max(0.0, _busy_s() - busy - result["cpu_s"])
    return result


# -- report ------------------------------------------------------------------------------------------
def table(results: dict, conv: dict) -> str:
    base = results["nlpaug"]["sentences_per_s"] if "nlpaug" in results else None
    lines = [
        "| engine | load s | conversion s | round trips | seconds | sentences/s | new tokens per hop "
        "(en→de / de→en) | source tokens per hop | peak RSS MB (model increment) | speed-up vs (a) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ENGINES:
        r = results.get(name)
        if r is None:
            continue
        hops = r["hops"]
        new = " / ".join(f"{h['new_tokens'] / h['outputs']:.1f}" for h in hops)
        src = " / ".join(f"{h['src_tokens'] / h['inputs']:.1f}" for h in hops)
        conv_s = f"{conv['convert_s']:.1f}" if name == "ctranslate2" and conv else "–"
        peak = r["peak_rss_mb"]
        speed = f"{r['sentences_per_s'] / base:.1f}x" if base else "–"
        lines.append(
            f"| {LABELS[name]} | {r['load_s']:.1f} | {conv_s} | {r['round_trips']} | {r['seconds']:.1f} "
            f"| {r['sentences_per_s']:.2f} | {new} | {src} | {peak:.0f} (+{peak - r['rss_before_load_mb']:.0f}) "
            f"| {speed} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=32, help="new tokens per hop, every engine")
    ap.add_argument("--beams", type=int, default=OPUS_MT_GENERATION["num_beams"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="torch threads")
    ap.add_argument("--warmup", type=int, default=4, help="warm-up sentences (one round trip)")
    ap.add_argument("--warmup-rounds", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="timed passes over the sentences")
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    ap.add_argument(
        "--model-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "augment-bench-opus-mt-en-de-random",
        help="the random full-size Marian; built there once and reused",
    )
    ap.add_argument("--cache-dir", type=Path, help="AUGMENT_CACHE_DIR (default: a fresh temporary folder)")
    ap.add_argument("--json", type=Path, help="write the raw numbers here")
    ap.add_argument("--child", choices=(*ENGINES, "convert"), help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--nlpaug-view", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        result = run_convert(args) if args.child == "convert" else run_engine(args)
        args.child_out.write_text(json.dumps(result, indent=1), encoding="utf-8")
        return

    model_dir = args.model_dir.resolve()
    info_file = model_dir / "benchmark_model.json"
    if info_file.is_file():
        info = json.loads(info_file.read_text(encoding="utf-8"))
        print(f"# reusing {model_dir}", file=sys.stderr)
    else:
        print(f"# building the random opus-mt-en-de into {model_dir} ...", file=sys.stderr, flush=True)
        info = build_model(model_dir)
    view = nlpaug_view(model_dir, args.new_tokens, args.beams)
    own_cache = args.cache_dir is None
    cache = Path(tempfile.mkdtemp(prefix="augment-bench-cache-")) if own_cache else args.cache_dir
    env = dict(os.environ, AUGMENT_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    args.passthrough = [
        *("--sentences", str(args.sentences), "--batch-size", str(args.batch_size)),
        *("--new-tokens", str(args.new_tokens), "--beams", str(args.beams)),
        *("--threads", str(args.threads), "--warmup", str(args.warmup)),
        *("--warmup-rounds", str(args.warmup_rounds), "--repeats", str(args.repeats)),
        *("--model-dir", str(model_dir), "--nlpaug-view", str(view)),
    ]
    results: dict = {}
    conv: dict = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "ctranslate2" in args.engines:
                conv = child(args, "convert", env, Path(tmp) / "convert.json")
            for engine in args.engines:
                results[engine] = child(args, engine, env, Path(tmp) / f"{engine}.json")
    finally:
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(view, ignore_errors=True)

    print(
        f"{args.sentences} sentences, batch {args.batch_size}, {args.beams} beams, {args.new_tokens} new "
        f"tokens per hop, torch threads {args.threads}, CTranslate2 augment's CPU default (cpu_threads()); model "
        f"{info['parameters'] / 1e6:.1f}M parameters (random), {info['spm_pieces']} SentencePiece pieces"
    )
    print()
    print(table(results, conv))
    print()
    if conv:
        print(
            f"conversion (once, not in throughput): {conv['convert_s']:.1f} s, "
            f"peak RSS {conv['peak_rss_mb']:.0f} MB"
        )
    cpu = ", ".join(
        f"{name} {r['cpu_s']:.0f} s CPU in {r['wall_s']:.0f} s, other processes {r['other_cpu_s']:.1f} s"
        for name, r in results.items()
    )
    print(f"engine processes (load, warm-up and timed run): {cpu}")
    if args.json:
        raw = {"args": {k: str(v) for k, v in vars(args).items()}, "model": info, "conversion": conv}
        args.json.write_text(json.dumps(dict(raw, results=results), indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
