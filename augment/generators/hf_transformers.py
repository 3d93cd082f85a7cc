"""transformers backend: any causal LM by hub id or local path (a GGUF too, via ``gguf_file``, which
is dequantised once into the cache), batched over length-sorted prompts with left padding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import BackendError
from .base import Completion, Decoding, Decodings, Prompt, per_prompt


class TransformersGenerator:
    backend = "transformers"

    def __init__(
        self,
        model: str,
        *,
        gguf_file: str | None = None,
        chat: bool | None = None,
        device: str | None = None,
        batch_size: int = 8,
    ) -> None:
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            source, kwargs = model, ({"gguf_file": gguf_file} if gguf_file else {})
            if gguf_file and (Path(model) / gguf_file).exists():
                # a local GGUF is dequantised once into a normal checkpoint (later loads take ~1 s)
                from ..packaged_gguf import dequantised

                source, kwargs = str(dequantised(Path(model) / gguf_file)), {}
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            self.model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except Exception as exc:
            raise BackendError(f"transformers could not load {model!r}: {exc}") from exc
        from ..devices import pick_device

        self.device = pick_device(device)
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.chat = bool(self.tokenizer.chat_template) if chat is None else chat
        self.model_id = model + (f"#{gguf_file}" if gguf_file else "")
        self.revision = getattr(self.model.config, "_commit_hash", None)
        self.batch_size = batch_size

    def _text(self, prompt: Prompt) -> str:
        if self.chat:
            return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return prompt

    def generate(self, prompts: Sequence[Prompt], n: int, decoding: Decodings) -> list[list[Completion]]:
        """``n`` completions per prompt; ``decoding`` is shared or one per prompt. Prompts that share a
        decoding are generated together (sampling is seeded once per batch); greedy decodings that
        differ only in their seed count as one."""
        texts = [self._text(p) for p in prompts]
        groups: dict[Decoding, tuple[Decoding, list[int]]] = {}
        for i, d in enumerate(per_prompt(decoding, len(prompts))):
            key = d if d.temperature > 0 else replace(d, seed=0)
            groups.setdefault(key, (d, []))[1].append(i)
        results: dict[int, list[Completion]] = {}
        for d, members in groups.values():
            self._generate(texts, members, n, d, results)
        return [results[i] for i in range(len(texts))]

    def _generate(
        self,
        texts: list[str],
        members: list[int],
        n: int,
        decoding: Decoding,
        results: dict[int, list[Completion]],
    ) -> None:
        """The prompts ``members`` (indices into ``texts``), all with ``decoding``, into ``results``."""
        import torch

        order = sorted(members, key=lambda i: -len(texts[i]))  # length-sorted batches
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=not self.chat
            ).to(self.device)
            torch.manual_seed(decoding.seed)
            sample = decoding.temperature > 0
            try:
                with torch.no_grad():
                    gen = self.model.generate(
                        **enc,
                        max_new_tokens=decoding.max_new_tokens,
                        do_sample=sample,
                        temperature=decoding.temperature if sample else None,
                        top_p=decoding.top_p if sample else None,
                        num_return_sequences=n,
                        pad_token_id=self.tokenizer.pad_token_id,
                        stop_strings=list(decoding.stop) or None,
                        tokenizer=self.tokenizer,
                    )
            except Exception as exc:
                for i in idx:
                    results[i] = [Completion(None, f"transformers: {exc}") for _ in range(n)]
                continue
            prompt_len = enc["input_ids"].shape[1]
            new = gen[:, prompt_len:]
            for k, i in enumerate(idx):
                samples = []
                for j in range(n):
                    ids = new[k * n + j]
                    ids = ids[ids != self.tokenizer.pad_token_id]
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    for s in decoding.stop:  # generate() stops at a stop string but keeps it
                        text = text.split(s)[0]
                    samples.append(Completion(text, None, int(enc["attention_mask"][k].sum()), len(ids)))
                results[i] = samples

    def score(self, prompt: Prompt, options: Sequence[str]) -> list[float]:
        """Sum of the log-probabilities of each option's tokens after ``prompt``: one batched forward
        pass over prompt + option for all options (right padding; each option's own positions read)."""
        import torch

        text = self._text(prompt)
        p_ids = self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"]
        seqs, spans = [], []
        for option in options:
            o_ids = self.tokenizer(option, add_special_tokens=False)["input_ids"]
            seqs.append(p_ids + o_ids)
            spans.append((len(p_ids), len(p_ids) + len(o_ids)))
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=self.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=self.device)
        try:
            with torch.no_grad():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
        except Exception as exc:
            raise BackendError(f"transformers could not score: {exc}") from exc
        logp = torch.log_softmax(logits, dim=-1)
        out = []
        for k, (a, b) in enumerate(spans):
            if a == b:
                out.append(float("-inf"))
                continue
            pos = torch.arange(a - 1, b - 1, device=self.device)  # the logits at t-1 predict token t
            out.append(float(logp[k, pos, ids[k, a:b]].sum()))
        return out
