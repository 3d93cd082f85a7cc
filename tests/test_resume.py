"""Crash and resume (augment.pipeline.expand): checkpoints in OUT/.work, reuse of finished batches,
refusal of a resume with other settings, and torn checkpoint lines."""

from __future__ import annotations

import json

import pytest
from conftest import error_lines, invoke, read_jsonl

from augment.config import ExpandConfig
from augment.errors import ConfigError
from augment.methods.lexical import LexicalMethod
from augment.pipeline import expand

OUTPUTS = ("augmented.jsonl", "rejected.jsonl", "manifest.json")
# 12 Chinese seeds, batches of 2: 6 batches per method; the model-free embedder (resume is plumbing)
SETTINGS = {"batch_size": 2, "embedder": "hashing", "methods": {"names": ["swap", "delete"], "n_per_seed": 1}}


def _config(**changes) -> ExpandConfig:
    data = json.loads(json.dumps(SETTINGS))
    for key, value in changes.items():
        data[key] = value
    return ExpandConfig.from_dict(data)


class Boom(RuntimeError):
    pass


def _crash_after(monkeypatch, batches: int) -> dict:
    """Make generation raise once ``batches`` batches have been generated (across methods)."""
    real = LexicalMethod.generate
    calls = {"n": 0}

    def generate(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > batches:
            raise Boom(f"killed after {batches} batches")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LexicalMethod, "generate", generate)
    return calls


def _rows(out):
    return [
        (r["id"], r["text"], r["origin"], r["method"], tuple(r["parent_ids"]))
        for r in read_jsonl(out / "augmented.jsonl")
    ]


@pytest.fixture(scope="module")
def uninterrupted(zh_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "full"
    result = expand(zh_subset, out, _config())
    assert result.manifest["resume"] == {"resumed": False, "seeds_reused": 0}
    return out


def _crashed_run(zh_subset, out, monkeypatch, batches=2, config=None):
    _crash_after(monkeypatch, batches)
    with pytest.raises(Boom):
        expand(zh_subset, out, config or _config())
    monkeypatch.undo()


def _checkpoint(out, step="swap-text"):
    return out / ".work" / f"gen-{step}.jsonl"


def test_crash_leaves_checkpoints_and_no_outputs(zh_subset, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _crashed_run(zh_subset, out, monkeypatch)
    assert (out / ".work" / "state.json").is_file()
    lines = _checkpoint(out).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    entries = [json.loads(line) for line in lines]
    first_four = [json.loads(line)["id"] for line in open(zh_subset, encoding="utf-8")][:4]
    assert [len(e["seed_ids"]) for e in entries] == [2, 2]
    parents = [r["parent_ids"][0] for e in entries for r in e["records"]]
    assert parents == [sid for e in entries for sid in e["seed_ids"]]
    assert len(set(parents)) == 4 and len(first_four) == 4
    assert all(len(e["records"]) == 2 for e in entries)  # 2 seeds x 1 candidate
    assert all(r["method"] == "swap" for e in entries for r in e["records"])
    for name in OUTPUTS:
        assert not (out / name).exists()


def test_resume_reuses_finished_batches_and_matches_an_uninterrupted_run(
    zh_subset, tmp_path, monkeypatch, uninterrupted
):
    out = tmp_path / "out"
    _crashed_run(zh_subset, out, monkeypatch)
    calls = _crash_after(monkeypatch, 10**6)  # count generate calls, never raise
    result = expand(zh_subset, out, _config(), resume=True)
    assert result.manifest["resume"]["resumed"] is True
    assert result.manifest["resume"]["seeds_reused"] == 4  # 2 finished batches of 2 seeds
    assert calls["n"] == 12 - 2  # only the unfinished batches were generated again
    assert _rows(out) == _rows(uninterrupted)
    assert read_jsonl(out / "rejected.jsonl") == read_jsonl(uninterrupted / "rejected.jsonl")
    assert not (out / ".work").exists()


def test_resume_with_other_settings_is_refused(zh_subset, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _crashed_run(zh_subset, out, monkeypatch)
    before = _checkpoint(out).read_bytes()
    for other in (_config(seed=14), _config(methods={"names": ["swap", "delete"], "n_per_seed": 2})):
        with pytest.raises(ConfigError, match="other inputs or settings"):
            expand(zh_subset, out, other, resume=True)
    assert _checkpoint(out).read_bytes() == before  # the refused resume did not touch the work
    for name in OUTPUTS:
        assert not (out / name).exists()


def test_resume_with_other_seeds_file_is_refused(zh_subset, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _crashed_run(zh_subset, out, monkeypatch)
    edited = tmp_path / "seeds.jsonl"
    rows = read_jsonl(zh_subset)
    rows[0]["text"] += "吗"
    edited.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ConfigError, match="other inputs or settings"):
        expand(edited, out, _config(), resume=True)


def test_torn_last_checkpoint_line_is_ignored(zh_subset, tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "out"
    _crashed_run(zh_subset, out, monkeypatch)
    path = _checkpoint(out)
    first, second = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(first + second[: len(second) // 2])  # killed in the middle of the second write
    result = expand(zh_subset, out, _config(), resume=True)
    assert result.manifest["resume"]["seeds_reused"] == 2
    assert _rows(out) == _rows(uninterrupted)


def test_resume_on_a_finished_run_says_it_is_done(zh_subset, uninterrupted, tmp_path, caplog):
    import logging
    import shutil

    out = tmp_path / "done"
    shutil.copytree(uninterrupted, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with caplog.at_level(logging.INFO, logger="augment.pipeline"):
        result = expand(zh_subset, out, _config(), resume=True)
    assert "already complete" in caplog.text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing rewritten
    assert len(result.seeds) + len(result.kept) == len(_rows(out))
    with pytest.raises(ConfigError, match="holds a finished run with other inputs or settings"):
        expand(zh_subset, out, _config(seed=99), resume=True)


def test_resume_through_the_cli(zh_subset, tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "out"
    _crashed_run(zh_subset, out, monkeypatch)
    args = [
        "expand",
        zh_subset,
        "-o",
        out,
        "--batch-size",
        "2",
        "--methods",
        "swap,delete",
        "--n-per-seed",
        "1",
        "--embedder",
        "hashing",
    ]
    refused = invoke(args)  # a plain rerun does not silently discard the unfinished run
    assert refused.exit_code != 0 and len(error_lines(refused)) == 1
    assert _checkpoint(out).exists()
    resumed = invoke([*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert _rows(out) == _rows(uninterrupted)


def test_resume_with_another_batch_size_is_correct(zh_subset, tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "out"
    _crashed_run(zh_subset, out, monkeypatch)
    result = expand(zh_subset, out, _config(batch_size=4), resume=True)
    assert result.manifest["resume"]["seeds_reused"] == 4
    assert _rows(out) == _rows(uninterrupted)


def test_checkpoint_written_after_a_torn_line_is_readable(zh_subset, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _crashed_run(zh_subset, out, monkeypatch)
    path = _checkpoint(out)
    first, second = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(first + second[: len(second) // 2])
    _crash_after(monkeypatch, 1)  # the resumed run redoes batch 1, then dies in batch 2
    with pytest.raises(Boom):
        expand(zh_subset, out, _config(), resume=True)
    monkeypatch.undo()
    batches = []
    for line in path.read_text(encoding="utf-8").splitlines():
        batches.append(len(json.loads(line)["seed_ids"]))
    assert batches == [2, 2]  # the torn line was cut, the redone batch is a whole line
    result = expand(zh_subset, out, _config(), resume=True)
    assert result.manifest["resume"]["seeds_reused"] == 4


def test_resume_into_a_missing_folder_starts_the_run(zh_subset, tmp_path):
    out = tmp_path / "never-ran"
    result = invoke(
        ["expand", zh_subset, "-o", out, "--methods", "swap", "--embedder", "hashing", "--resume"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "augmented.jsonl").is_file() and not (out / ".work").exists()
