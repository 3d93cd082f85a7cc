"""`augment expand --executor ray` (augment/executors/raydata.py): the same bytes as the local
executor, resume after a failed worker, and the one-line errors.

One local Ray cluster (2 CPUs) serves the module. Its workers import this file
(``worker_process_setup_hook``, with ``tests/`` on their ``PYTHONPATH``) to plug the
:class:`fakes.FakeGenerator` in wherever the engine loads a generator, as the ``fake_generator``
fixture does in the driver, so self_instruct runs model-free on both sides; embeddings use the
model-free ``hashing`` embedder, except in the one test marked ``models``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EN_CLINIC, ZH_BANK, error_lines, invoke, read_jsonl, write_jsonl

pytestmark = pytest.mark.ray  # a local Ray cluster: out of `make test-fast`, in `make test` (CI)

TESTS = Path(__file__).resolve().parent
REVISION = "ray-executor-test"  # the fake's revision on both sides: the response cache is shared
FAIL_ENV = "AUGMENT_RAY_TEST_FAIL"  # a file: while it exists, a prompt holding its text fails
OUTPUTS = ("augmented.jsonl", "rejected.jsonl")


# -- what the workers run ------------------------------------------------------------------------
def _fake():
    from fakes import FakeGenerator

    class FailingFake(FakeGenerator):
        """Raises (a worker's crash, not a failed sample) on a prompt that holds the marker's text."""

        def generate(self, prompts, n, decoding):
            marker = Path(os.environ.get(FAIL_ENV, "/nonexistent"))
            if marker.exists():
                text = marker.read_text(encoding="utf-8").strip()
                if any(text in json.dumps(p, ensure_ascii=False) for p in prompts):
                    raise RuntimeError(f"scripted crash on {text!r}")
            return super().generate(prompts, n, decoding)

    return FailingFake(revision=REVISION)


def _worker_setup() -> None:
    """Ray's worker_process_setup_hook: the fake generator in every worker of the module's cluster."""
    from conftest import plug_generator

    plug_generator(pytest.MonkeyPatch(), _fake())


# -- the cluster and the inputs -----------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster(offline_env, tmp_path_factory):
    ray = pytest.importorskip("ray")
    marker = tmp_path_factory.mktemp("ray-fail") / "fail.txt"
    os.environ[FAIL_ENV] = str(marker)  # before init: workers inherit the driver's environment
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.ERROR,
        runtime_env={
            "env_vars": {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])},
            "worker_process_setup_hook": f"{Path(__file__).stem}._worker_setup",
        },
    )
    yield marker
    ray.shutdown()
    os.environ.pop(FAIL_ENV, None)


@pytest.fixture
def fake_llm(monkeypatch):
    from conftest import plug_generator

    fake = _fake()
    plug_generator(monkeypatch, fake)
    return fake


def _inputs(tmp: Path, sample: Path, per_label: int = 3, pool: int = 30) -> tuple[Path, Path]:
    rows = read_jsonl(sample / "seeds.jsonl")
    seeds: list[dict] = []
    for label in sorted({r["label"] for r in rows}):  # a few of each label: the recipe cross-validates
        seeds += [r for r in rows if r["label"] == label][:per_label]
    return (
        write_jsonl(tmp / "seeds.jsonl", seeds),
        write_jsonl(tmp / "pool.jsonl", read_jsonl(sample / "unlabeled.jsonl")[:pool]),
    )


METHODS = {"zh": "swap,delete,self_instruct,pseudo_label", "en": "swap,spelling,self_instruct,pseudo_label"}


def _config(lang: str, executor: str, **more):
    from augment.config import ExpandConfig

    data = {
        "embedder": "hashing",
        "batch_size": 4,
        "executor": executor,
        "methods": {"names": METHODS[lang].split(","), "n_per_seed": 2},
        **more,
    }
    return ExpandConfig.from_dict(data)


def _same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory, offline_env):
    """The local executor's outputs per language (made once, with the fake LLM in this process)."""
    from augment.pipeline import expand

    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        from conftest import plug_generator

        plug_generator(mp, _fake())
        for lang, sample in (("zh", ZH_BANK), ("en", EN_CLINIC)):
            tmp = tmp_path_factory.mktemp(f"local-{lang}")
            seeds, pool = _inputs(tmp, sample)
            result = expand(seeds, tmp / "out", _config(lang, "local"), pool_path=pool)
            assert result.manifest["executor"] == {"kind": "local"}
            runs[lang] = (seeds, pool, tmp / "out")
    return runs


# -- the same bytes ------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_ray_gives_the_local_bytes(lang, local_runs, ray_cluster, tmp_path, caplog):
    from augment.pipeline import expand

    seeds, pool, local = local_runs[lang]
    caplog.set_level(logging.INFO)
    result = expand(seeds, tmp_path / "ray", _config(lang, "ray"), pool_path=pool)
    _same_outputs(local, tmp_path / "ray")
    rows = [*read_jsonl(tmp_path / "ray" / "augmented.jsonl"), *read_jsonl(tmp_path / "ray" / "rejected.jsonl")]
    assert set(METHODS[lang].split(",")) <= {r["method"] for r in rows}  # a real run, not an empty one
    m = result.manifest
    assert m["executor"]["kind"] == "ray" and m["executor"]["cpus"] == 2
    assert not m["executor"]["started_here"]  # the test's Ray: used, not shut down
    assert m["executor"]["actors"]["methods"] == 2
    si = m["generation"]["self_instruct"]
    assert si["model"] == "fake-llm"
    assert si["cache_hits"] > 0  # the local run's responses, from the shared response cache
    assert [entry["name"] for entry in m["methods"]] == METHODS[lang].split(",")
    local_manifest = json.loads((local / "manifest.json").read_text(encoding="utf-8"))
    for a, b in zip(local_manifest["methods"], m["methods"], strict=True):
        assert a == b  # the driver names the backend and model the actors ran
    stages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stage ")]
    for stage in ("load", "setup", "embedder", "embed", "filter", "recipe", "write"):
        assert f"stage {stage}" in stages
    assert any(s.startswith("stage generate:") and "self_instruct" in s for s in stages)
    import ray

    assert ray.is_initialized()


def test_resume_after_a_failed_worker_gives_the_same_bytes(local_runs, ray_cluster, tmp_path):
    from augment.errors import AugmentError
    from augment.pipeline import expand

    seeds, pool, local = local_runs["zh"]
    last = read_jsonl(seeds)[-1]["text"]  # in the last batch (and in prompts that show it as a demo)
    ray_cluster.write_text(last, encoding="utf-8")
    out = tmp_path / "ray"
    config = _config("zh", "ray", generator={"cache": False})  # the fake must be asked, not the cache
    try:
        with pytest.raises(AugmentError, match="scripted crash"):
            expand(seeds, out, config, pool_path=pool)
    finally:
        ray_cluster.unlink()
    assert not (out / "augmented.jsonl").exists()
    checkpoints = {p.name for p in (out / ".work").glob("gen-*.jsonl")}
    assert "gen-swap-text.jsonl" in checkpoints  # batches that came back before the crash are kept
    result = expand(seeds, out, config, pool_path=pool, resume=True)
    _same_outputs(local, out)
    assert result.manifest["resume"]["resumed"] and result.manifest["resume"]["seeds_reused"] > 0
    assert not (out / ".work").exists()


def test_a_local_run_resumed_on_ray_is_the_same_run(local_runs, ray_cluster, tmp_path, fake_llm, monkeypatch):
    """The executor is not part of the run's fingerprint: a local run's checkpoints are reused."""
    from augment.methods.lexical import LexicalMethod
    from augment.pipeline import expand

    seeds, pool, local = local_runs["en"]
    out = tmp_path / "mixed"
    real, calls = LexicalMethod.generate, []

    def generate(self, *args, **kwargs):  # the local run dies in its third batch
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(LexicalMethod, "generate", generate)
        with pytest.raises(KeyboardInterrupt):
            expand(seeds, out, _config("en", "local"), pool_path=pool)
    result = expand(seeds, out, _config("en", "ray"), pool_path=pool, resume=True)
    assert result.manifest["resume"]["seeds_reused"] == 2 * 4  # two batches of four seeds
    _same_outputs(local, out)


# -- errors --------------------------------------------------------------------------------------
def test_without_ray_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    from augment.errors import ConfigError
    from augment.pipeline import expand

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install augment-engine\[ray\]"):
        expand(ZH_BANK / "seeds.jsonl", tmp_path / "out", _config("zh", "ray"))
    result = invoke(["expand", ZH_BANK / "seeds.jsonl", "-o", tmp_path / "cli", "--executor", "ray"])
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "pip install augment-engine[ray]" in lines[0], result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "cli").exists()


@pytest.mark.parametrize(
    "address, says",
    [("127.0.0.1:1", "no Ray cluster answers there"), ("nonsense", "expected auto, HOST:PORT")],
)
def test_a_bad_ray_address_is_one_line_and_leaves_no_folder(tmp_path, address, says):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    args = [str(ZH_BANK / "seeds.jsonl"), "-o", str(out), "--methods", "swap", "--embedder", "hashing"]
    proc = subprocess.run(  # a fresh process: this one's Ray (the module's cluster) would be used
        [sys.executable, "-m", "cli", "expand", *args, "--executor", "ray", "--ray-address", address],
        capture_output=True, text=True, timeout=120, env={**os.environ, "RAY_ADDRESS": ""},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and says in errors[0] and address in errors[0], proc.stderr
    assert not out.exists()


# -- a real embedder -----------------------------------------------------------------------------
@pytest.mark.models
def test_ray_with_the_default_english_embedder(ray_cluster, tmp_path):
    """MiniLM (``--embedder fast`` for English) loads offline in the embedding actors; the outputs
    equal the local run's."""
    from augment.config import ExpandConfig
    from augment.pipeline import expand

    seeds, pool = _inputs(tmp_path, EN_CLINIC, per_label=2, pool=20)
    data = {"embedder": "fast", "batch_size": 8, "methods": {"names": ["swap", "pseudo_label"], "n_per_seed": 1}}
    ray_run = expand(seeds, tmp_path / "ray", ExpandConfig.from_dict({**data, "executor": "ray"}), pool_path=pool)
    expand(seeds, tmp_path / "local", ExpandConfig.from_dict(data), pool_path=pool)
    _same_outputs(tmp_path / "local", tmp_path / "ray")
    assert "MiniLM" in ray_run.manifest["embedder"]["model"]
    assert ray_run.manifest["executor"]["actors"]["embed"] >= 1
