"""Tiny masked language models of real architectures, with vocabularies trained on the fly, saved with
``save_pretrained`` so tests load them by path through AutoTokenizer / AutoModelForMaskedLM, as users'
models are. A BERT with a WordPiece vocabulary (Han characters split one per token, "##" marks a
word's continuation) and a RoBERTa with a byte-level BPE vocabulary ("Ġ" marks a word's start).
Weights are random but seeded, so predictions are deterministic."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def build_bert(path: Path, texts: Sequence[str], *, vocab_size: int = 1200, layers: int = 2) -> Path:
    """A BertForMaskedLM (hidden 32, 2 heads) with a ``BertTokenizer`` whose vocabulary is trained on
    ``texts`` (lower-cased, CJK characters split), saved to ``path``."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    wp = BertWordPieceTokenizer(lowercase=True, handle_chinese_chars=True)
    wp.train_from_iterator(
        list(texts),
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    )
    wp.save_model(str(path))  # vocab.txt
    tokenizer = BertTokenizer.from_pretrained(str(path), do_lower_case=True)  # reads vocab.txt
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_roberta(path: Path, texts: Sequence[str], *, vocab_size: int = 1000) -> Path:
    """A RobertaForMaskedLM (hidden 32, 1 layer, 2 heads) with a byte-level BPE ``RobertaTokenizer``
    trained on ``texts``, saved to ``path``."""
    import torch
    from tokenizers import AddedToken, ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(texts),
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.save_model(str(path))  # vocab.json, merges.txt
    # "<mask>" swallows the space before it, as in the released RoBERTa checkpoints
    mask = AddedToken("<mask>", lstrip=True, rstrip=False, special=True)
    tokenizer = RobertaTokenizer.from_pretrained(str(path), mask_token=mask)  # reads vocab.json, merges.txt
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    RobertaForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
