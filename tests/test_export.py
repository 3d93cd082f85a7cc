"""`augment export OUT --format alpaca|sharegpt|messages|setfit|hf -o PATH`, read back the way the
training tools read it: `datasets.load_dataset("json")` / `load_from_disk`, and LLaMA-Factory's
alpaca / sharegpt conversion (re-implemented below from its data/README and converter). The OUT
folders are made model-free (`--embedder hashing`)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import ZH_BANK, ZH_INSTRUCTIONS, error_lines, invoke, read_jsonl


# -- the expand outputs ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cls_out(tmp_path_factory, zh_subset):
    """Classification: 12 seeds, swap and delete rewrites, and pseudo-labelled pool rows."""
    out = tmp_path_factory.mktemp("cls") / "out"
    args = [
        "expand", zh_subset, "--unlabeled", ZH_BANK / "unlabeled.jsonl", "--embedder", "hashing",
        "-m", "swap,delete,pseudo_label", "--recipe", "off", "-o", out,
        "-P", "pseudo_label.threshold=0.3", "-P", "pseudo_label.agree=1",
    ]  # fmt: skip
    result = invoke(args)
    assert result.exit_code == 0, (result.output, result.exception)
    rows = read_jsonl(out / "augmented.jsonl")
    assert {"seed", "augmented", "pseudo-labelled"} <= {r["origin"] for r in rows}
    return out


@pytest.fixture(scope="module")
def ins_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("ins") / "out"
    args = [
        "expand",
        ZH_INSTRUCTIONS / "seeds.jsonl",
        "--embedder",
        "hashing",
        "-m",
        "swap,delete",
        "-o",
        out,
    ]
    result = invoke(args)
    assert result.exit_code == 0, (result.output, result.exception)
    return out


def _export(out, fmt, path, *extra):
    result = invoke(["export", out, "--format", fmt, "-o", path, *extra])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def _load_json(path):
    import datasets

    return datasets.load_dataset("json", data_files=str(path), split="train")


# -- LLaMA-Factory's readers, re-implemented (src/llamafactory/data/converter.py) ----------------
def llama_factory_convert(entry: dict, example: dict) -> tuple[list[dict], list[dict]]:
    """(prompt, response) as LLaMA-Factory's AlpacaDatasetConverter / SharegptDatasetConverter
    build them from a dataset_info.json entry: alpaca joins prompt and query with a new line;
    sharegpt checks that turns alternate user/assistant, starting with the user."""
    cols = entry.get("columns", {})
    if entry.get("formatting", "alpaca") == "alpaca":
        query = [example[cols.get("prompt", "instruction")]]
        if cols.get("query", "input") and example.get(cols.get("query", "input")):
            query.append(example[cols.get("query", "input")])
        prompt = [{"role": "user", "content": "\n".join(query)}]
        response = [{"role": "assistant", "content": example[cols.get("response", "output")]}]
        return prompt, response
    tags = {
        "role_tag": "from",
        "content_tag": "value",
        "user_tag": "human",
        "assistant_tag": "gpt",
        **entry.get("tags", {}),
    }
    messages = example[cols.get("messages", "conversations")]
    accept = ((tags["user_tag"],), (tags["assistant_tag"],))
    if len(messages) % 2:
        raise ValueError("invalid message count")
    aligned = []
    for i, m in enumerate(messages):
        if m[tags["role_tag"]] not in accept[i % 2]:
            raise ValueError(f"invalid role tag in {messages}")
        role = "user" if i % 2 == 0 else "assistant"
        aligned.append({"role": role, "content": m[tags["content_tag"]]})
    return aligned[:-1], aligned[-1:]


# -- instruction data ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt", "messages"])
def test_instruction_exports_load_and_convert_as_llama_factory_reads_them(ins_out, tmp_path, fmt):
    source = read_jsonl(ins_out / "augmented.jsonl")
    path = tmp_path / f"{fmt}.jsonl"
    result = _export(ins_out, fmt, path)
    assert f"{len(source)} rows" in result.output and "LLaMA-Factory: dataset" in result.output
    ds = _load_json(path)
    assert ds.num_rows == len(source)
    expected_columns = {
        "alpaca": ["instruction", "input", "output"],
        "sharegpt": ["conversations"],
        "messages": ["messages"],
    }
    assert ds.column_names == expected_columns[fmt]
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    entry = info[fmt]
    assert entry["file_name"] == path.name
    assert entry["formatting"] == ("alpaca" if fmt == "alpaca" else "sharegpt")
    for example, src in zip(ds, source, strict=True):
        prompt, response = llama_factory_convert(entry, example)
        want = src["instruction"] + ("\n" + src["input"] if src.get("input") else "")
        assert prompt == [{"role": "user", "content": want}]
        assert response == [{"role": "assistant", "content": src["output"]}]


def test_sharegpt_and_messages_have_the_roles_their_readers_expect(ins_out, tmp_path):
    _export(ins_out, "sharegpt", tmp_path / "s.jsonl")
    _export(ins_out, "messages", tmp_path / "m.jsonl")
    s = read_jsonl(tmp_path / "s.jsonl")[0]["conversations"]
    m = read_jsonl(tmp_path / "m.jsonl")[0]["messages"]
    assert [t["from"] for t in s] == ["human", "gpt"] and [t["role"] for t in m] == ["user", "assistant"]
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {"s", "m"}  # a second export adds its entry, the first one stays
    assert info["s"]["tags"] == {
        "role_tag": "from",
        "content_tag": "value",
        "user_tag": "human",
        "assistant_tag": "gpt",
    }
    assert info["m"]["columns"] == {"messages": "messages"} and info["m"]["tags"]["role_tag"] == "role"


def test_instruction_hf_folder(ins_out, tmp_path):
    import datasets

    _export(ins_out, "hf", tmp_path / "ds")
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert ds.column_names == ["instruction", "input", "output"]
    assert ds.num_rows == len(read_jsonl(ins_out / "augmented.jsonl"))


# -- classification data ------------------------------------------------------------------------
def test_setfit_jsonl(cls_out, tmp_path):
    source = read_jsonl(cls_out / "augmented.jsonl")
    result = _export(cls_out, "setfit", tmp_path / "train.jsonl")
    ds = _load_json(tmp_path / "train.jsonl")
    labels = sorted({r["label"] for r in source})
    assert ds.num_rows == len(source) and ds.column_names == ["text", "label", "label_text"]
    assert [labels[i] for i in ds["label"]] == ds["label_text"] == [r["label"] for r in source]
    assert ds["text"] == [r["text"] for r in source]
    assert "labels (index order): " + ", ".join(labels) in result.output
    assert not (tmp_path / "dataset_info.json").exists()  # LLaMA-Factory's file is for instruction data


def test_hf_folder_has_a_class_label_feature_and_optional_lineage(cls_out, tmp_path):
    import datasets

    source = read_jsonl(cls_out / "augmented.jsonl")
    _export(cls_out, "hf", tmp_path / "ds", "--with-lineage")
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert isinstance(ds.features["label"], datasets.ClassLabel)
    assert ds.features["label"].names == sorted({r["label"] for r in source})
    assert ds.num_rows == len(source) and ds.column_names == ["text", "label", "lineage"]
    assert [ds.features["label"].int2str(i) for i in ds["label"]] == [r["label"] for r in source]
    lineage = [json.loads(x) for x in ds["lineage"]]
    assert [(x["id"], x["origin"], x.get("method")) for x in lineage] == [
        (r["id"], r["origin"], r.get("method")) for r in source
    ]
    assert "text" not in lineage[0] and "label" not in lineage[0]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_origins_and_methods_select_rows(cls_out, tmp_path):
    source = read_jsonl(cls_out / "augmented.jsonl")
    by_origin = Counter(r["origin"] for r in source)
    _export(cls_out, "setfit", tmp_path / "a.jsonl", "--origins", "seed,pseudo-labelled", "--with-lineage")
    ds = _load_json(tmp_path / "a.jsonl")
    assert ds.num_rows == by_origin["seed"] + by_origin["pseudo-labelled"]
    assert {json.loads(x)["origin"] for x in ds["lineage"]} == {"seed", "pseudo-labelled"}
    _export(cls_out, "setfit", tmp_path / "b.jsonl", "--methods", "swap")
    swaps = sum(r.get("method") == "swap" for r in source if r["origin"] != "seed")
    assert _load_json(tmp_path / "b.jsonl").num_rows == by_origin["seed"] + swaps


def test_json_lineage_column_keeps_one_type_across_methods(cls_out, tmp_path):
    _export(cls_out, "setfit", tmp_path / "l.jsonl", "--with-lineage")
    ds = _load_json(tmp_path / "l.jsonl")  # Arrow infers one schema for every row
    assert ds.features["lineage"].dtype == "string"
    assert {json.loads(x)["origin"] for x in ds["lineage"]} == {"seed", "augmented", "pseudo-labelled"}


# -- refusals, one line each ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "which, fmt, message",
    [
        ("cls", "alpaca", "Error: --format alpaca is for instruction data; {out} holds classification rows: use setfit or hf"),
        ("ins", "setfit", "Error: --format setfit is for classification data; {out} holds instruction rows: use alpaca or sharegpt or messages or hf"),
    ],
)  # fmt: skip
def test_wrong_format_for_the_task_is_one_line(cls_out, ins_out, tmp_path, which, fmt, message):
    out = cls_out if which == "cls" else ins_out
    result = invoke(["export", out, "--format", fmt, "-o", tmp_path / "x.jsonl"])
    assert result.exit_code == 1
    assert error_lines(result) == [message.format(out=out)]
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--origins", "seeds"], "Error: --origins: unknown origin seeds; known: seed, augmented, pseudo-labelled"),
        (["--methods", "paraphrase"], "Error: --methods: no rows made by paraphrase; methods in this output: delete, pseudo_label, swap"),
    ],
)  # fmt: skip
def test_unknown_origins_and_methods_are_refused(cls_out, tmp_path, args, message):
    result = invoke(["export", cls_out, "--format", "setfit", "-o", tmp_path / "x.jsonl", *args])
    assert result.exit_code == 1 and error_lines(result) == [message]


def test_existing_output_needs_overwrite(cls_out, tmp_path):
    path = tmp_path / "t.jsonl"
    _export(cls_out, "setfit", path, "--origins", "seed")
    result = invoke(["export", cls_out, "--format", "setfit", "-o", path])
    assert result.exit_code == 1 and error_lines(result) == [
        f"Error: {path}: already exists (pass --overwrite to replace it)"
    ]
    _export(cls_out, "setfit", path, "--overwrite")
    assert len(read_jsonl(path)) == len(read_jsonl(cls_out / "augmented.jsonl"))
    _export(cls_out, "hf", tmp_path / "ds", "--origins", "seed")
    _export(cls_out, "hf", tmp_path / "ds", "--overwrite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "t.jsonl"]


def test_push_to_hub_offline_is_one_clear_line(cls_out, tmp_path):
    result = invoke(["export", cls_out, "--format", "hf", "--push-to-hub", "someone/bank-intents"])
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("Error: --push-to-hub someone/bank-intents: "), (
        result.output
    )
    assert "not uploaded" in lines[0]
