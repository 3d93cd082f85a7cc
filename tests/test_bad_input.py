"""Bad and odd input through the CLI, as a new user would give it (issue 12).

Refused input: a non-zero exit, no traceback, exactly one line (the exact message is asserted) and
no output folder. Accepted oddities: exit 0, no valid row lost, and the oddity recorded in the
manifest's ``data_notes`` (what the loader noticed) or in ``rejected.jsonl``.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from conftest import ZH_BANK, error_lines, invoke, read_jsonl, write_jsonl

# two labels, three seeds each: enough for the label filter; the recipe is off and the embedder the
# model-free hashing one (what these tests check does not depend on it) to keep runs short
BASE = [r for r in read_jsonl(ZH_BANK / "seeds.jsonl") if r["label"] == "card_lost"][:3] + [
    r for r in read_jsonl(ZH_BANK / "seeds.jsonl") if r["label"] == "balance_inquiry"
][:3]
FAST = ["--methods", "swap,delete", "--n-per-seed", "1", "--recipe", "off", "--embedder", "hashing"]


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _file(tmp_path, name: str, data: bytes | str):
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def refused(tmp_path, *args, command: str = "expand", out=None) -> str:
    """Run the CLI expecting a refusal; return its one line (without click's 'Error: ')."""
    out = out or tmp_path / "out"
    existed = out.exists()
    result = invoke([command, *args, "-o", out])
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "Traceback" not in result.output
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: "), lines
    if not existed:
        assert not out.exists(), sorted(p.name for p in out.rglob("*"))  # nothing left behind
    return lines[0][len("Error: ") :]


class Accepted:
    def __init__(self, result, out):
        self.result = result
        self.out = out
        self.augmented = read_jsonl(out / "augmented.jsonl")
        self.rejected = read_jsonl(out / "rejected.jsonl")
        self.manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        self.seeds = [r for r in self.augmented if r["origin"] == "seed"]

    def note(self, code: str) -> dict:
        found = [n for n in self.manifest["data_notes"] if n["code"] == code]
        assert len(found) == 1, (code, self.manifest["data_notes"])
        return found[0]


def accepted(tmp_path, seeds, *args) -> Accepted:
    out = tmp_path / "out"
    result = invoke(["expand", seeds, *FAST, *args, "-o", out])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert not (out / ".work").exists()
    return Accepted(result, out)


# -- refused: malformed files ---------------------------------------------------------------------
def test_malformed_json_line(tmp_path):
    seeds = _file(tmp_path, "seeds.jsonl", _jsonl(BASE[:2]) + '{"text": "密码忘了", "label": }\n'.encode())
    assert refused(tmp_path, seeds) == f"{seeds}:3: malformed JSON (Expecting value at column 27)"


def test_trailing_comma_is_named(tmp_path):
    seeds = _file(
        tmp_path, "seeds.jsonl", _jsonl(BASE[:2]) + '{"text": "密码忘了", "label": "x",}\n'.encode()
    )
    assert refused(tmp_path, seeds) == f"{seeds}:3: malformed JSON (trailing comma before '}}' at column 30)"


def test_trailing_comma_in_a_json_array(tmp_path):
    seeds = _file(tmp_path, "seeds.json", json.dumps(BASE[:2], ensure_ascii=False, indent=1)[:-2] + ",\n]")
    assert refused(tmp_path, seeds) == f"{seeds}:11: malformed JSON (trailing comma before ']' at column 3)"


def test_gbk_encoded_chinese_csv_is_named(tmp_path):
    rows = "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in BASE)
    seeds = _file(tmp_path, "seeds.csv", rows.encode("gb18030"))
    assert refused(tmp_path, seeds) == (
        f"{seeds}:2: file is not UTF-8 (looks like GBK/GB18030); "
        "re-encode with `iconv -f gb18030 -t utf-8` or pass --encoding gb18030"
    )


def test_utf16_file_is_named(tmp_path):
    seeds = _file(tmp_path, "seeds.jsonl", _jsonl(BASE).decode().encode("utf-16"))
    assert refused(tmp_path, seeds) == (
        f"{seeds}: file is not UTF-8 (looks like UTF-16); "
        "re-encode with `iconv -f utf-16 -t utf-8` or pass --encoding utf-16"
    )


def test_nul_byte(tmp_path):
    seeds = _file(tmp_path, "seeds.jsonl", _jsonl(BASE[:2]) + b'{"text": "ab\x00c", "label": "x"}\n')
    assert refused(tmp_path, seeds) == (
        f"{seeds}:3: NUL byte at column 13 (a binary file? a text file holds no NUL bytes)"
    )


def test_unknown_encoding(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    assert (
        refused(tmp_path, seeds, "--encoding", "gb-18030x") == "data.encoding: unknown encoding 'gb-18030x'"
    )


def test_empty_file(tmp_path):
    seeds = _file(tmp_path, "seeds.jsonl", b"")
    assert refused(tmp_path, seeds) == f"{seeds}: the file has no rows"


def test_empty_csv(tmp_path):
    seeds = _file(tmp_path, "seeds.csv", b"")
    assert refused(tmp_path, seeds) == f"{seeds}: the file is empty (expected a header row)"


def test_header_only(tmp_path):
    seeds = _file(tmp_path, "seeds.csv", "text,label\n")
    assert refused(tmp_path, seeds) == f"{seeds}: the file has no rows"


# -- refused: columns and values --------------------------------------------------------------------
def test_misnamed_text_column_hint_names_the_longest_column(tmp_path):
    # 'text_id' is the closest name to 'text', but 'content' holds the texts
    rows = [{"text_id": f"t{i}", "content": r["text"], "intent": r["label"]} for i, r in enumerate(BASE)]
    seeds = write_jsonl(tmp_path / "seeds.jsonl", rows)
    assert refused(tmp_path, seeds) == (
        f"{seeds}: missing text column 'text' (columns: text_id, content, intent); "
        "the likely text column is 'content' (the longest values): pass --text-column content"
    )


def test_misspelled_text_column(tmp_path):
    rows = [{"label": r["label"], "txt": r["text"]} for r in BASE]
    seeds = write_jsonl(tmp_path / "seeds.jsonl", rows)
    assert refused(tmp_path, seeds) == (
        f"{seeds}: missing text column 'text' (columns: label, txt); did you mean 'txt'? (pass --text-column txt)"
    )


def test_missing_label_column_hint(tmp_path):
    rows = [{"id": r["id"], "text": r["text"], "intent": r["label"]} for r in BASE]
    seeds = write_jsonl(tmp_path / "seeds.jsonl", rows)
    assert refused(tmp_path, seeds) == (
        f"{seeds}: missing label column 'label' (columns: id, text, intent); "
        "the likely label column is 'intent' (few distinct values): pass --label-column intent"
    )


@pytest.mark.parametrize("text", ["", "   \t "], ids=["empty", "whitespace"])
def test_empty_and_whitespace_texts(tmp_path, text):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [*BASE[:2], {"text": text, "label": "card_lost"}])
    assert refused(tmp_path, seeds) == f"{seeds}:3: empty text in column 'text'"


def test_null_label(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [*BASE[:2], {"text": "卡被吞了", "label": None}])
    assert refused(tmp_path, seeds) == f"{seeds}:3: missing label in column 'label'"


def test_text_that_is_a_list(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [*BASE[:2], {"text": ["卡", "丢了"], "label": "card_lost"}])
    assert refused(tmp_path, seeds) == f"{seeds}:3: column 'text' holds a list, not a text"


def test_parquet_with_a_null_text(tmp_path):
    import pandas as pd

    seeds = tmp_path / "seeds.parquet"
    pd.DataFrame([*BASE[:2], {"id": "n", "text": None, "label": "card_lost"}]).to_parquet(seeds, index=False)
    assert refused(tmp_path, seeds) == f"{seeds}:row 3: empty text in column 'text'"


# -- refused: paths ---------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    assert refused(tmp_path, tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: no such file or folder"


def test_folder_where_a_file_is_expected(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    write_jsonl(folder / "part-0.jsonl", BASE)
    assert refused(tmp_path, folder) == (
        f"{folder}: is a folder, not a data file (give a .jsonl, .json, .csv, .tsv or .parquet file, "
        "or a folder written by datasets' save_to_disk)"
    )


def test_output_path_that_is_a_file(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    out = _file(tmp_path, "out.jsonl", "")
    assert refused(tmp_path, seeds, out=out) == f"{out}: exists and is not a folder"


def test_output_folder_inside_a_file(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    out = tmp_path / "seeds.jsonl" / "out"
    assert refused(tmp_path, seeds, out=out) == (
        f"{out}: cannot create the output folder ({seeds}: Not a directory)"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0555 folder; see the /proc and /sys cases")
def test_read_only_output_folder(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert refused(tmp_path, seeds, out=ro / "out") == (
            f"{ro / 'out'}: cannot create the output folder ({ro}: Permission denied)"
        )
        assert refused(tmp_path, seeds, out=ro) == f"{ro}: the output folder is not writable"
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and /sys are Linux's")
@pytest.mark.parametrize(
    "place, why", [("/proc", "No such file or directory"), ("/sys", "Operation not permitted")]
)
def test_output_folder_where_nobody_can_write(tmp_path, place, why):
    """Even root cannot create a folder in /proc or /sys: refused before any model loads."""
    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    out = f"{place}/augment-test-out"
    result = invoke(["expand", seeds, "-o", out])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert error_lines(result) == [f"Error: {out}: cannot create the output folder ({place}: {why})"]
    assert "loading embedder" not in result.output


# -- refused: settings ------------------------------------------------------------------------------
def test_misspelled_config_key(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    cfg = _file(tmp_path, "cfg.yaml", "filters:\n  min_similarty: 0.5\n")
    assert refused(tmp_path, seeds, "-c", cfg) == (
        "unknown config key 'filters.min_similarty' (did you mean filters.min_similarity?)"
    )


def test_unknown_method(tmp_path):
    from augment.methods import available_methods

    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    assert refused(tmp_path, seeds, "--methods", "swap,delet") == (
        f"unknown method 'delet' (did you mean 'delete'?); available: {', '.join(available_methods())}"
    )


@pytest.mark.parametrize(
    "flag, message",
    [
        (["-P", "swap.aug_p=2"], "methods.params.swap.aug_p must be in (0, 1], got 2.0"),
        (["--aug-p", "2"], "methods.defaults.aug_p must be in (0, 1], got 2.0"),
        (
            ["-P", "delete.aug_min=0"],
            "methods.params.delete.aug_min/aug_max must satisfy 1 <= aug_min <= aug_max, got 0/6",
        ),
        (["-P", "swap.aug_max=two"], "methods.params.swap.aug_max must be an integer, got 'two'"),
    ],
    ids=["param_aug_p", "flag_aug_p", "param_aug_min", "param_not_a_number"],
)
def test_out_of_range_method_parameters(tmp_path, flag, message):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    assert refused(tmp_path, seeds, "--methods", "swap,delete", *flag) == message


@pytest.mark.models  # sentence-transformers tries to load it
def test_unknown_embedder_without_network(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    msg = refused(tmp_path, seeds, *FAST, "--embedder", "no-such-org/no-such-model")
    assert msg.startswith("embedder 'no-such-org/no-such-model' could not be loaded: "), msg
    # (the rest is the library's reason, which varies by version; it is one line, and no folder is left)


# -- accepted oddities, recorded ----------------------------------------------------------------------
def test_utf8_bom_is_accepted_and_noted(tmp_path):
    seeds = _file(tmp_path, "seeds.jsonl", b"\xef\xbb\xbf" + _jsonl(BASE))
    run = accepted(tmp_path, seeds)
    assert [r["text"] for r in run.seeds] == [r["text"] for r in BASE]
    assert run.note("utf8_bom")["message"] == "the file starts with a UTF-8 byte-order mark (ignored)"


def test_bom_csv_header_is_not_part_of_the_first_column(tmp_path):
    rows = "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in BASE)
    run = accepted(tmp_path, _file(tmp_path, "seeds.csv", b"\xef\xbb\xbf" + rows.encode()))
    assert len(run.seeds) == len(BASE) and run.note("utf8_bom")


def test_crlf_line_ends(tmp_path):
    rows = "text,label\r\n" + "".join(f"{r['text']},{r['label']}\r\n" for r in BASE)
    run = accepted(tmp_path, _file(tmp_path, "seeds.csv", rows))
    assert [r["text"] for r in run.seeds] == [r["text"] for r in BASE]  # no stray \r
    assert run.note("crlf")["message"] == "Windows (CRLF) line ends, read as plain line ends"


def test_gbk_csv_with_explicit_encoding(tmp_path):
    rows = "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in BASE)
    run = accepted(tmp_path, _file(tmp_path, "seeds.csv", rows.encode("gb18030")), "--encoding", "gb18030")
    assert [r["text"] for r in run.seeds] == [r["text"] for r in BASE]
    assert run.note("encoding")["message"] == "read as gb18030 (--encoding), not UTF-8"
    assert run.manifest["config"]["data"]["encoding"] == "gb18030"


def test_quoted_newlines_in_csv(tmp_path):
    rows = 'text,label\n"银行卡丢了，\n怎么挂失",card_lost\n' + "".join(
        f"{r['text']},{r['label']}\n" for r in BASE
    )
    run = accepted(tmp_path, _file(tmp_path, "seeds.csv", rows))
    assert run.seeds[0]["text"] == "银行卡丢了，\n怎么挂失" and len(run.seeds) == len(BASE) + 1
    assert run.note("multiline_texts")["rows"] == ["row 1"]


def test_tsv(tmp_path):
    rows = "text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in BASE)
    run = accepted(tmp_path, _file(tmp_path, "seeds.tsv", rows))
    assert [r["text"] for r in run.seeds] == [r["text"] for r in BASE]
    assert run.manifest["data_notes"] == []


def test_tab_separated_file_named_csv(tmp_path):
    rows = "text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in BASE)
    run = accepted(tmp_path, _file(tmp_path, "seeds.csv", rows))
    assert len(run.seeds) == len(BASE)
    assert run.note("tab_separated")["message"] == "a .csv file with tab-separated columns, read as TSV"


def test_one_megabyte_text(tmp_path):
    big = ("我的银行卡丢了，请帮我挂失。" * 30_000)[: 1_000_000 // 3]  # 1 MB of UTF-8
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [*BASE, {"text": big, "label": "card_lost"}])
    run = accepted(tmp_path, seeds, "--methods", "delete")
    assert [r["text"] for r in run.seeds][-1] == big  # kept whole, not cut
    note = run.note("long_texts")
    assert note["rows"] == ["line 7"]
    assert note["message"] == (
        "texts longer than 2000 characters: kept whole, but the embedder reads only their first 2000 "
        "characters (most embedders read only 256-512 tokens)"
    )


def test_labels_mixed_number_and_string(tmp_path):
    rows = [{"text": r["text"], "label": 1 if r["label"] == "card_lost" else 2} for r in BASE]
    rows[0]["label"] = "1"
    run = accepted(tmp_path, write_jsonl(tmp_path / "seeds.jsonl", rows))
    assert {r["label"] for r in run.augmented} == {"1", "2"}
    assert run.note("labels_as_strings")["message"] == (
        "labels written as numbers or booleans are read as strings: 1, 2; "
        "1 and '1' both appear and count as one label '1'"
    )


def test_numeric_texts(tmp_path):
    rows = [*BASE, {"text": 95588, "label": "balance_inquiry"}, {"text": 3.5, "label": "card_lost"}]
    run = accepted(tmp_path, write_jsonl(tmp_path / "seeds.jsonl", rows))
    assert [r["text"] for r in run.seeds][-2:] == ["95588", "3.5"]
    assert run.note("numeric_texts")["rows"] == ["line 7", "line 8"]


def test_numeric_looking_texts_in_csv_stay_as_written(tmp_path):
    rows = (
        "text,label\n"
        + "".join(f"{r['text']},{r['label']}\n" for r in BASE)
        + "007,card_lost\n1.50,card_lost\n"
    )
    run = accepted(tmp_path, _file(tmp_path, "seeds.csv", rows))
    assert [r["text"] for r in run.seeds][-2:] == ["007", "1.50"]  # not 7 and 1.5


def test_label_with_one_seed(tmp_path):
    rows = [*BASE, {"text": "我想申请一笔房贷", "label": "loan_application"}]
    run = accepted(tmp_path, write_jsonl(tmp_path / "seeds.jsonl", rows))
    assert any(r["label"] == "loan_application" for r in run.seeds)
    assert run.note("labels_with_one_seed")["message"] == (
        "1 label(s) with a single seed: 'loan_application' (cross-validation needs two seeds of every label)"
    )


def test_a_single_label(tmp_path):
    rows = [r for r in BASE if r["label"] == "card_lost"]
    run = accepted(tmp_path, write_jsonl(tmp_path / "seeds.jsonl", rows))
    assert len(run.seeds) == 3 and run.manifest["counts"]["candidates"] == 6
    assert run.note("single_label")["message"].startswith("every seed has the label 'card_lost'")


def test_duplicate_rows_are_recorded(tmp_path):
    rows = [*BASE, {**BASE[0], "id": "copy-1"}, BASE[1]]
    run = accepted(tmp_path, write_jsonl(tmp_path / "seeds.jsonl", rows))
    assert len(run.seeds) == len(BASE)
    note = run.note("duplicates_dropped")
    assert note["count"] == 2 and note["rows"] == ["line 7 (= line 1)", "line 8 (= line 2)"]
    assert note["message"] == (
        "2 exact duplicate row(s) dropped, each kept once: line 7 (= line 1), line 8 (= line 2)"
    )


def test_duplicate_ids_are_recorded(tmp_path):
    rows = [dict(r) for r in BASE]
    rows[3]["id"] = rows[0]["id"]
    run = accepted(tmp_path, write_jsonl(tmp_path / "seeds.jsonl", rows))
    assert len(run.seeds) == len(BASE)  # other content: both rows are seeds
    assert run.note("duplicate_ids")["rows"] == ["line 1", "line 4"]


def test_pool_identical_to_the_seeds(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"]} for r in BASE])
    run = accepted(tmp_path, seeds, "--unlabeled", pool, "--methods", "swap,pseudo_label")
    note = run.note("pool_overlaps_seeds")
    assert note["input"] == "pool" and note["count"] == len(BASE)
    pseudo = [r for r in run.augmented if r["method"] == "pseudo_label"]
    assert pseudo == []  # nothing new from a pool of seeds
    assert sum(r["method"] == "pseudo_label" for r in run.rejected) == len(BASE)  # each with a reason


def test_pool_rows_that_carry_labels(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", BASE)
    pool_rows = [
        {"text": r["text"], "label": "card_lost"} for r in read_jsonl(ZH_BANK / "unlabeled.jsonl")[:6]
    ]
    pool = write_jsonl(tmp_path / "pool.jsonl", pool_rows)
    run = accepted(tmp_path, seeds, "--unlabeled", pool, "--methods", "swap,pseudo_label")
    note = run.note("pool_labels_ignored")
    assert note["input"] == "pool" and note["count"] == 6
    assert run.manifest["counts"]["pool"] == 6


def test_emoji_zwj_and_rtl_texts(tmp_path):
    rows = [
        *BASE,
        {"text": "👨‍👩‍👧 家庭卡丢了一张，怎么补办", "label": "card_lost"},
        {"text": "أريد أن أعرف رصيد حسابي", "label": "balance_inquiry"},
        {"text": "\u200fאני רוצה לבדוק את היתרה", "label": "balance_inquiry"},
    ]
    run = accepted(tmp_path, write_jsonl(tmp_path / "seeds.jsonl", rows))
    assert [r["text"] for r in run.seeds] == [r["text"] for r in rows]  # byte for byte
    assert run.note("format_characters")["rows"] == ["line 7", "line 9"]


def test_punctuation_only_texts(tmp_path):
    rows = [*BASE, {"text": "？？？！！", "label": "card_lost"}]
    run = accepted(tmp_path, write_jsonl(tmp_path / "seeds.jsonl", rows))
    assert run.seeds[-1]["text"] == "？？？！！"
    assert run.note("no_word_texts")["rows"] == ["line 7"]
    parent = run.seeds[-1]["id"]
    made = [r for r in run.rejected if r["parent_ids"] == [parent]]
    assert made and all(r["rejected_by"] == "generate" for r in made)  # recorded, not lost
