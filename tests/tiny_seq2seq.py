"""Tiny seq2seq models of real architectures (Marian, M2M-100, NLLB, T5), built on the fly for tests.

No translation or paraphrase weights can be installed offline, so the code that loads such models (through
`AutoTokenizer` / `AutoModelForSeq2SeqLM` and through CTranslate2's converter) is tested on tiny, randomly
initialised models of the same architectures instead. Each builder trains a tokenizer of the model's REAL
tokenizer class on the given texts (SentencePiece, or a `tokenizers` BPE for NLLB), lays out the vocabulary
the way the published checkpoints do (special-token ids, language tokens, Marian's trailing <pad>, T5's
sentinels), saves model and tokenizer with `save_pretrained` into a folder and returns that folder, so tests
load it by path exactly as they would a downloaded checkpoint. The outputs are random tokens; only the
plumbing (special tokens, language tokens, beam search, sampling, conversion, detokenisation) is meaningful.
Each build takes well under two seconds on a CPU.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

# The published checkpoints use NFKC normalisation; "identity" keeps the round trip exact (full-width
# Chinese punctuation survives), which makes assertions on decoded text simpler.
_SPM_OPTIONS = {
    "character_coverage": 1.0,  # every Han character in the training text gets a piece
    "normalization_rule_name": "identity",
    "hard_vocab_limit": False,  # a small corpus may not fill the requested vocabulary
    "num_threads": 1,
    "minloglevel": 2,
}


def sample_texts() -> list[str]:
    """The "text" fields of the Chinese bank-intent and English clinic-triage samples (training text)."""
    samples = Path(__file__).resolve().parents[1] / "samples"
    texts = []
    for folder in ("zh_bank_intents", "en_clinic_triage"):
        for file in sorted((samples / folder).glob("*.jsonl")):
            for line in file.read_text(encoding="utf-8").splitlines():
                if line.strip() and (text := json.loads(line).get("text")):
                    texts.append(text)
    return texts


def _vocab_size(texts: Sequence[str], extra: int = 256) -> int:
    """With character_coverage=1.0 every distinct character needs a piece; leave room for some merges."""
    return len(set("".join(texts))) + extra


def _train_spm(texts: Sequence[str], model_type: str, **ids: int) -> bytes:
    """A serialised SentencePiece model trained on `texts`; `ids` sets unk_id/bos_id/eos_id/pad_id."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_writer=buffer,
        model_type=model_type,
        vocab_size=_vocab_size(texts),
        **_SPM_OPTIONS,
        **ids,
    )
    return buffer.getvalue()


def _load_spm(proto: bytes):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=proto)


def _save(model, tokenizer, path: Path) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_marian(path: Path, texts: Sequence[str]) -> Path:
    """MarianMTModel + MarianTokenizer, laid out like an opus-mt checkpoint.

    vocab.json is {"</s>": 0, "<unk>": 1, <pieces>..., "<pad>": last}; source.spm and target.spm are the same
    unigram model. pad is the decoder start token (the decoder starts from pad's embedding, which CTranslate2
    replaces by a zero vector, dropping <pad> from the vocabulary).
    """
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    proto = _train_spm(texts, "unigram", unk_id=0, bos_id=-1, eos_id=1, pad_id=-1)
    sp = _load_spm(proto)
    pieces = [
        sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))
    ]
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    vocab["<pad>"] = len(vocab)
    for name in ("source.spm", "target.spm"):
        (path / name).write_bytes(proto)
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = MarianTokenizer(
        source_spm=str(path / "source.spm"),
        target_spm=str(path / "target.spm"),
        vocab=str(path / "vocab.json"),
    )
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    config = MarianConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        pad_token_id=pad,
        eos_token_id=eos,
        forced_eos_token_id=eos,
        decoder_start_token_id=pad,
        decoder_vocab_size=len(tokenizer),
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
    )
    torch.manual_seed(0)
    model = MarianMTModel(config)
    # as in the opus-mt generation configs: never generate <pad> (it is only the decoder start token)
    model.generation_config.bad_words_ids = [[pad]]
    model.generation_config.max_length = 64
    return _save(model, tokenizer, path)


def _tiny_m2m_config(tokenizer, vocab_size: int, **extra):
    """A 1+1-layer M2M-100 configuration (NLLB shares the architecture); the decoder starts from </s>."""
    from transformers import M2M100Config

    return M2M100Config(
        vocab_size=vocab_size,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        scale_embedding=True,
        **extra,
    )


def build_m2m100(
    path: Path, texts: Sequence[str], langs: Sequence[str] = ("en", "zh", "de", "es", "fr")
) -> Path:
    """M2M100ForConditionalGeneration + M2M100Tokenizer, laid out like facebook/m2m100_418M.

    vocab.json is {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, <pieces>...}; the tokenizer puts the 100
    language tokens (`__en__`, ...) right after it and the model's vocabulary also holds the 8 "madeupword"
    slots, as the real checkpoints do. `langs` must be M2M-100 language codes (they all are tokens).
    """
    import torch
    from transformers import M2M100ForConditionalGeneration, M2M100Tokenizer
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

    unknown = [lang for lang in langs if lang not in FAIRSEQ_LANGUAGE_CODES["m2m100"]]
    if unknown:
        raise ValueError(f"not M2M-100 language codes: {unknown}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    proto = _train_spm(texts, "bpe", unk_id=3, bos_id=0, eos_id=2, pad_id=1)
    sp = _load_spm(proto)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for i in range(sp.get_piece_size()):
        vocab.setdefault(sp.id_to_piece(i), len(vocab))
    (path / "sentencepiece.bpe.model").write_bytes(proto)
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # The published checkpoints list the language tokens as additional special tokens in their tokenizer
    # files. Without that list, M2M100Tokenizer (transformers 5) registers none of them (a chained `not in`
    # in its __init__ is always false): they still encode, but `skip_special_tokens` keeps them and
    # `get_vocab()` lacks them, so CTranslate2's converter finds 100 tokens fewer than the embedding has.
    lang_tokens = [f"__{code}__" for code in FAIRSEQ_LANGUAGE_CODES["m2m100"]]
    tokenizer = M2M100Tokenizer(
        vocab_file=str(path / "vocab.json"),
        spm_file=str(path / "sentencepiece.bpe.model"),
        src_lang=langs[0],
        additional_special_tokens=lang_tokens,
    )
    vocab_size = len(tokenizer) + tokenizer.num_madeup_words  # vocab.json + language tokens + madeupwords
    config = _tiny_m2m_config(tokenizer, vocab_size)
    torch.manual_seed(0)
    model = M2M100ForConditionalGeneration(config)
    model.generation_config.max_length = 64
    return _save(model, tokenizer, path)


def build_nllb(path: Path, texts: Sequence[str]) -> Path:
    """M2M100ForConditionalGeneration + NllbTokenizer, laid out like facebook/nllb-200-distilled-600M.

    A `tokenizers` BPE (Metaspace pre-tokenisation, as NllbTokenizer sets) with <s>=0, <pad>=1, </s>=2,
    <unk>=3; the tokenizer appends the 202 FLORES-200 codes (`eng_Latn`, `zho_Hans`, ...) and <mask> as
    special tokens, and the model's vocabulary covers them all.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import M2M100ForConditionalGeneration, NllbTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=_vocab_size(texts), special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False
    )
    bpe.train_from_iterator(list(texts), trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = NllbTokenizer(vocab=state["vocab"], merges=merges, src_lang="eng_Latn")
    config = _tiny_m2m_config(tokenizer, len(tokenizer), tokenizer_class="NllbTokenizer")
    torch.manual_seed(0)
    model = M2M100ForConditionalGeneration(config)
    model.generation_config.max_length = 64
    return _save(model, tokenizer, path)


def build_t5(path: Path, texts: Sequence[str], extra_ids: int = 10) -> Path:
    """T5ForConditionalGeneration + T5Tokenizer (unigram), laid out like t5-small with `extra_ids` sentinels.

    <pad>=0 (also the decoder start token), </s>=1, <unk>=2, then the SentencePiece pieces, then the
    `<extra_id_N>` sentinels.
    """
    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    proto = _train_spm(texts, "unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    sp = _load_spm(proto)
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=extra_ids)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="relu",
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    model.generation_config.max_length = 64
    return _save(model, tokenizer, path)
