"""The on-disk embedding cache: each text is embedded once per model configuration, across runs."""

from __future__ import annotations

import hashlib

import numpy as np

from augment.embedcache import PersistentEmbedder, model_key, persistent


class Counting:
    """A hashing embedder that counts the texts it was asked to embed."""

    def __init__(self, model_id: str = "fake/model", prompt_name: str | None = None) -> None:
        self.model_id = model_id
        self.revision = None
        self.prompt_name = prompt_name
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen.extend(texts)
        out = []
        for t in texts:
            h = hashlib.sha256(t.encode()).digest()
            v = np.frombuffer(h, dtype=np.uint8)[:8].astype(np.float32) + 1
            out.append(v / np.linalg.norm(v))
        return np.stack(out) if out else np.zeros((0, 8), np.float32)


def test_vectors_come_back_from_disk_in_a_new_process_object(tmp_path):
    first = Counting()
    emb = persistent(first, tmp_path)
    assert isinstance(emb, PersistentEmbedder) and emb.model_id == "fake/model"
    texts = ["我喜欢这家店", "the pool row", "我喜欢这家店", ""]
    a = emb.encode(texts)
    assert sorted(first.seen) == sorted(set(texts))  # each distinct text embedded once
    second = Counting()
    b = persistent(second, tmp_path).encode(list(reversed(texts)))
    assert second.seen == []  # all from disk
    assert np.array_equal(a[::-1], b) and b.dtype == np.float32
    persistent(second, tmp_path).encode(["new text", "the pool row"])
    assert second.seen == ["new text"]


def test_another_model_or_prompt_gets_its_own_store(tmp_path):
    assert model_key(Counting("a")) != model_key(Counting("b"))
    assert model_key(Counting("a")) != model_key(Counting("a", prompt_name="STS"))
    persistent(Counting("a"), tmp_path).encode(["x"])
    other = Counting("b")
    persistent(other, tmp_path).encode(["x"])
    assert other.seen == ["x"]
    assert len(list((tmp_path / "embeddings").glob("*.sqlite"))) == 2


def test_turned_off_by_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGMENT_EMBED_CACHE", "0")
    inner = Counting()
    assert persistent(inner, tmp_path) is inner
    assert not (tmp_path / "embeddings").exists()


def test_empty_input_keeps_the_inner_shape(tmp_path):
    assert persistent(Counting(), tmp_path).encode([]).shape == (0, 8)
