"""Loading a model folder never runs code from it.

A shared model folder can carry Python (``auto_map`` in config.json points at a module in the folder,
run only with ``trust_remote_code=True``) and pickles (``pytorch_model.bin``, which ``torch.load`` can
be made to execute). The engine never sets ``trust_remote_code`` and loads safetensors where the
folder has them: here a folder holds both, and the test checks that the model loads and neither the
module nor the pickle ran. Tiny BERT built in the test (no hub)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from tiny_mlm import build_bert

pytestmark = pytest.mark.models

TEXTS = ["我的银行卡丢了请帮我挂失", "how do I reset my password", "信用卡额度可以提高吗", "chest pain since morning"]


class _Bomb:
    """Unpickling this creates a file (what a malicious pytorch_model.bin would do instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _booby_trapped(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = build_bert(tmp_path / "mlm", TEXTS, vocab_size=300)
    code_marker, pickle_marker = tmp_path / "code-ran", tmp_path / "pickle-ran"
    (folder / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(code_marker)!r}).touch()\n"
        "from transformers import BertConfig, BertForMaskedLM\n"
        "class EvilConfig(BertConfig):\n    pass\n"
        "class EvilModel(BertForMaskedLM):\n    config_class = EvilConfig\n",
        encoding="utf-8",
    )
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {
        "AutoConfig": "evil.EvilConfig",
        "AutoModel": "evil.EvilModel",
        "AutoModelForMaskedLM": "evil.EvilModel",
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with (folder / "pytorch_model.bin").open("wb") as fh:
        pickle.dump({"bomb": _Bomb(pickle_marker)}, fh)
    assert (folder / "model.safetensors").exists()
    return folder, code_marker, pickle_marker


def test_masked_lm_loader_runs_no_code_from_the_folder(tmp_path):
    from augment.methods.contextual import _load

    folder, code_marker, pickle_marker = _booby_trapped(tmp_path)
    tokenizer, model = _load(str(folder))
    assert type(model).__name__ == "BertForMaskedLM" and len(tokenizer) > 10
    assert not code_marker.exists(), "the folder's Python module was imported"
    assert not pickle_marker.exists(), "pytorch_model.bin was unpickled although model.safetensors exists"


def test_embedder_loader_runs_no_code_from_the_folder(tmp_path):
    from augment.embedders import load_embedder

    folder, code_marker, pickle_marker = _booby_trapped(tmp_path)
    emb = load_embedder(str(folder))
    assert emb.encode(["我的银行卡丢了"]).shape[0] == 1
    assert not code_marker.exists(), "the folder's Python module was imported"
    assert not pickle_marker.exists(), "pytorch_model.bin was unpickled although model.safetensors exists"


def test_the_engine_never_asks_for_remote_code():
    """No loader in the engine passes trust_remote_code (a grep, so a new loader cannot slip one in)."""
    root = Path(__file__).resolve().parents[1]
    offenders = [
        str(p.relative_to(root))
        for pkg in ("augment", "finetune", "cli")
        for p in (root / pkg).rglob("*.py")
        if "trust_remote_code=True" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
