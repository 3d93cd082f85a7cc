"""`augment finetune DATA -o M` with the defaults reports a score: without --dev/--test it holds out
part of the seeds with their descendants (lineage-aware) and scores the model on them. Model-free
(the fake embedder of test_finetune_heads)."""

from __future__ import annotations

import json

import pytest
from conftest import invoke, write_jsonl
from test_finetune_heads import expand_data, fake_embedder  # noqa: F401  (fixture)

pytestmark = pytest.mark.filterwarnings("ignore")


def test_default_finetune_reports_a_lineage_aware_dev_score(tmp_path, fake_embedder):  # noqa: F811
    data = expand_data(tmp_path, per_label=5, children=2)  # 3 labels x 5 seeds, 2 children each
    out = tmp_path / "m"
    result = invoke(["finetune", data, "-o", out, "--method", "embedding", "--model", "minilm"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dev"]["n"] == 3  # one seed of each label (20% of 5)
    assert "  dev: accuracy" in result.output
    m = json.loads((out / "manifest.json").read_text())
    split = m["dev_split"]
    assert split["default"] is True and split["fraction"] == 0.2 and split["refit_on_all_rows"] is True
    assert split["excluded"] == {"held_out_seed": 3, "derived_from_held_out": 6, "same_text": 0}
    # the score comes from a fit without the held-out seeds; the saved model loses none of them
    assert m["data"]["train"]["rows"] == 45
    # the held-out rows score only: the head's C is still chosen by cross-validation on training rows
    assert m["embedding"]["c_selection"]["by"] != "dev"


def test_a_dev_or_test_file_turns_the_default_holdout_off(tmp_path, fake_embedder):  # noqa: F811
    from finetune.config import TrainConfig
    from finetune.train import finetune

    data = expand_data(tmp_path, per_label=5, children=2)
    test = write_jsonl(
        tmp_path / "test.jsonl", [{"text": f"held {i} topic{i % 3}", "label": f"L{i % 3}"} for i in range(6)]
    )
    result = finetune(data, tmp_path / "m", TrainConfig(method="embedding", model="minilm"), test=test)
    assert result.manifest["dev_split"] is None and "dev" not in result.metrics
    assert result.metrics["test"]["n"] == 6 and result.manifest["data"]["train"]["rows"] == 45


def test_too_few_seeds_train_on_everything(tmp_path, fake_embedder):  # noqa: F811
    from finetune.config import TrainConfig
    from finetune.train import finetune

    data = expand_data(tmp_path, per_label=1, children=2)  # a label with one seed cannot hold one out
    result = finetune(data, tmp_path / "m", TrainConfig(method="embedding", model="minilm"))
    assert result.manifest["dev_split"] is None and result.metrics == {}
    assert result.manifest["data"]["train"]["rows"] == 9


def test_dev_fraction_zero_turns_the_default_holdout_off(tmp_path, fake_embedder):  # noqa: F811
    data = expand_data(tmp_path, per_label=5, children=2)
    out = tmp_path / "m"
    result = invoke(["finetune", data, "-o", out, "--method", "embedding", "--model", "minilm", "--dev-fraction", "0"])
    assert result.exit_code == 0, result.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["dev_split"] is None and m["data"]["train"]["rows"] == 45
