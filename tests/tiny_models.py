"""Tiny models of real architectures, built from a config with a tokenizer trained on the fly (the
`tokenizers` library) and saved to a folder, so tests load them by path through the code users run."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import EN_CLINIC, ZH_BANK, ZH_INSTRUCTIONS, read_jsonl

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def corpus() -> list[str]:
    texts = [r["text"] for f in (EN_CLINIC, ZH_BANK) for r in read_jsonl(f / "seeds.jsonl")]
    for r in read_jsonl(ZH_INSTRUCTIONS / "seeds.jsonl"):
        texts += [r["instruction"], r["input"], r["output"]]
    return texts


def build_bert(folder: Path) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece vocabulary trained on the sample texts."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)  # splits Han characters too
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=800, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def build_llama(folder: Path) -> Path:
    """A 2-layer Llama (hidden 32) causal LM with a byte-level BPE tokenizer and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus(),
        trainers.BpeTrainer(
            vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="<|end|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def expand_like(path: Path, seeds: list[dict], children: dict[str, list[str]]) -> Path:
    """An augmented.jsonl as `augment expand` writes it: seeds, then rows with parent_ids."""
    rows = []
    for s in seeds:
        rows.append(
            {"id": s["id"], "text": s["text"], "label": s["label"], "task": "classification",
             "origin": "seed", "method": None, "parent_ids": []}
        )  # fmt: skip
    for s in seeds:
        for j, text in enumerate(children.get(s["id"], [])):
            rows.append(
                {"id": f"a-{s['id']}-{j}", "text": text, "label": s["label"], "task": "classification",
                 "origin": "augmented", "method": "swap" if j % 2 == 0 else "delete", "parent_ids": [s["id"]]}
            )  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
