"""The in-context-learning baseline (finetune/icl.py, `augment icl`, `augment evaluate --baseline icl`):
model-free with the fake generator and the hashing embedder, plus one run of the real packaged LLM."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import ZH_BANK, read_jsonl, write_jsonl

from finetune.icl import DemoPicker, Row, build_prompt, classify, icl, label_table, parse_answer

EN_TRAIN = [
    Row("t1", "the food was great and tasty", "pos"),
    Row("t2", "lovely service, great staff", "pos"),
    Row("t3", "awful food, cold and late", "neg"),
    Row("t4", "terrible staff and awful wait", "neg"),
    Row("t5", "great value, would return", "pos"),
    Row("t6", "late delivery and cold soup", "neg"),
]
EN_TEST = [Row("q1", "great tasty food", "pos"), Row("q2", "cold soup, awful", "neg")]
NAMES = {"pos": "positive", "neg": "negative"}


def keyword_scorer(text: str, option: str) -> float:
    """Likes 'positive' when the row to classify says great, else 'negative' (reads the last Text:)."""
    row = [ln for ln in text.splitlines() if ln.startswith(("Text:", "文本："))][-1]
    good = "great" in row or "好" in row
    return 0.0 if (option.strip() == "positive") == good else -2.0


# -- the answer is constrained to the label set ---------------------------------------------------------
def test_scored_answers_are_always_labels(fake_generator, hashing_embedder):
    fake_generator.script_scores(keyword_scorer)
    r = classify(
        fake_generator,
        EN_TRAIN,
        EN_TEST,
        language="en",
        shots=2,
        embedder=hashing_embedder,
        label_names=NAMES,
    )
    assert r["answer"] == "score" and r["unparseable"] == 0
    assert [p["prediction"] for p in r["predictions"]] == ["pos", "neg"]
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0
    # every label's name was scored, after a prompt that lists them all
    for text, options in fake_generator.scored:
        assert options == ["positive", "negative"] and "positive, negative" in text
    assert fake_generator.calls == 0  # nothing generated


def test_label_set_comes_from_training_rows_not_test():
    gen_labels = label_table(["a", "b"], None)
    assert gen_labels == {"a": "a", "b": "b"}
    assert label_table(["pos", "neg"], ["neg", "pos", "neutral"]) == {
        "neg": "neg",
        "pos": "pos",
        "neutral": "neutral",
    }
    with pytest.raises(Exception, match="not for"):
        label_table(["pos", "neg"], {"pos": "positive"})


# -- parsed answers, unparseable ones counted ---------------------------------------------------------
def test_parse_answer():
    t = {"pos": "positive", "neg": "negative"}
    assert parse_answer("positive", t) == "pos"
    assert parse_answer(" Negative.", t) == "neg"
    assert parse_answer("neg", t) == "neg"  # the label itself
    assert parse_answer("I think it is negative, not positive", t) == "neg"  # the earliest named
    assert parse_answer("「positive」\nbecause ...", t) == "pos"
    assert (
        parse_answer("no idea", t) is None and parse_answer("", t) is None and parse_answer(None, t) is None
    )
    zh = {"negative": "差评", "positive": "好评"}
    assert parse_answer("类别：好评", zh) == "positive"


def test_unparseable_answers_are_counted_and_scored_wrong():
    from fakes import FakeGenerator

    gen = FakeGenerator(scores=False, script=["positive", "no idea", None, "Negative."])
    tests = EN_TEST + [Row("q3", "fine", "pos"), Row("q4", "bad", "neg")]
    r = classify(gen, EN_TRAIN, tests, language="en", shots=0, label_names=NAMES)
    assert r["answer"] == "generate" and r["unparseable"] == 2
    assert [p["prediction"] for p in r["predictions"]] == ["pos", "<unparseable>", "<unparseable>", "neg"]
    assert r["predictions"][2]["answer"].startswith("error:")
    assert r["accuracy"] == 0.5
    assert gen.decodings[0].temperature == 0.0  # greedy
    with pytest.raises(Exception, match="log-probabilities"):
        classify(gen, EN_TRAIN, tests, language="en", shots=0, answer="score")


# -- demonstrations: similar vs random --------------------------------------------------------------------
def test_similar_demos_are_the_nearest_with_the_nearest_last(hashing_embedder):
    picker = DemoPicker(EN_TRAIN, "similar", embedder=hashing_embedder)
    [demos] = picker.pick([Row("q", "late delivery and cold soup again", "neg")], 3)
    assert demos[-1].id == "t6"  # the nearest, next to the question
    assert len(demos) == 3 and len({d.id for d in demos}) == 3
    # a training copy of the test row is never its own demonstration
    [demos] = picker.pick([Row("q", EN_TRAIN[0].text, "pos")], 5)
    assert "t1" not in {d.id for d in demos}


def test_random_demos_are_one_seeded_draw():
    a = DemoPicker(EN_TRAIN, "random", seed=0).pick(EN_TEST, 3)
    b = DemoPicker(EN_TRAIN, "random", seed=0).pick(EN_TEST, 3)
    c = DemoPicker(EN_TRAIN, "random", seed=1).pick(EN_TEST, 3)
    ids = lambda picks: [[d.id for d in p] for p in picks]  # noqa: E731
    assert ids(a) == ids(b) and ids(a)[0] == ids(a)[1]  # the same draw for every row
    assert ids(a) != ids(c)
    assert DemoPicker(EN_TRAIN, "random").pick(EN_TEST, 20)[0].__len__() == len(EN_TRAIN)


def test_similar_and_random_settings_differ(fake_generator, hashing_embedder):
    sim = classify(
        fake_generator, EN_TRAIN, EN_TEST, language="en", shots=2, demos="similar", embedder=hashing_embedder
    )
    rnd = classify(fake_generator, EN_TRAIN, EN_TEST, language="en", shots=2, demos="random", seed=3)
    assert sim["setting"] == "2-shot similar" and rnd["setting"] == "2-shot random"
    assert [p["demos"] for p in sim["predictions"]] != [p["demos"] for p in rnd["predictions"]]


# -- prompts, Chinese and English ---------------------------------------------------------------------------
def test_prompts_in_english_and_chinese():
    demos = [Row("d1", "great staff", "pos")]
    en = build_prompt("cold soup", demos, NAMES, language="en", chat=True)
    assert en[0]["role"] == "user"
    body = en[0]["content"]
    assert "positive" in body and "Text: great staff\nLabel: positive" in body and body.endswith("Label:")
    zh_names = {"neg": "差评", "pos": "好评"}
    zh = build_prompt("汤是凉的", [Row("d1", "服务很好", "pos")], zh_names, language="zh", chat=True)[0][
        "content"
    ]
    assert "差评、好评" in zh and "文本：服务很好\n类别：好评" in zh and zh.endswith("类别：")
    base = build_prompt("cold soup", [], NAMES, language="en", chat=False)
    assert isinstance(base, str) and base.endswith("Text: cold soup\nLabel:")
    assert build_prompt("汤是凉的", [], zh_names, language="zh", chat=False).endswith("类别：")
    long = build_prompt("x" * 1000, [], NAMES, language="en", chat=False)
    assert len(long) < 500  # texts are cut


def test_completion_models_score_english_labels_with_a_leading_space():
    from fakes import FakeGenerator

    gen = FakeGenerator(chat=False)
    classify(gen, EN_TRAIN, EN_TEST[:1], language="en", shots=0, label_names=NAMES)
    classify(gen, EN_TRAIN, EN_TEST[:1], language="zh", shots=0, label_names=NAMES)
    assert gen.scored[0][1] == [" positive", " negative"] and gen.scored[1][1] == ["positive", "negative"]


# -- the command ----------------------------------------------------------------------------------------------
def _files(tmp_path):
    train = write_jsonl(
        tmp_path / "train.jsonl", [{"id": r.id, "text": r.text, "label": r.label} for r in EN_TRAIN]
    )
    test = write_jsonl(
        tmp_path / "test.jsonl", [{"id": r.id, "text": r.text, "label": r.label} for r in EN_TEST]
    )
    names = tmp_path / "labels.json"
    names.write_text(json.dumps(NAMES))
    return train, test, names


def test_cli_icl(tmp_path, fake_generator):
    from cli.main import cli

    fake_generator.script_scores(keyword_scorer)
    train, test, names = _files(tmp_path)
    out = tmp_path / "preds.jsonl"
    res = CliRunner().invoke(cli, ["icl", str(train), "--test", str(test), "--shots", "2", "--embedder", "hashing",
                                   "--label-names", str(names), "-o", str(out), "--report", str(tmp_path / "r.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "zero-shot" in res.output and "2-shot similar" in res.output and "0 of 2" in res.output
    rows = read_jsonl(out)
    assert len(rows) == 4 and {r["setting"] for r in rows} == {"zero-shot", "2-shot similar"}
    assert all(r["prediction"] in ("pos", "neg") for r in rows)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["language"] == "en" and [s["accuracy"] for s in report["settings"]] == [1.0, 1.0]
    # the backend options reach the generator config
    res = CliRunner().invoke(cli, ["icl", str(train), "--test", str(test), "--shots", "0", "--backend", "openai",
                                   "--model", "served", "--base-url", "http://127.0.0.1:9/v1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    cfg, lang = fake_generator.loads[-1]
    assert (cfg.backend, cfg.model, cfg.base_url, lang) == ("openai", "served", "http://127.0.0.1:9/v1", "en")


def test_cli_icl_generate_counts_unparseable(tmp_path, fake_generator):
    from cli.main import cli

    fake_generator.script(["positive", "hmm"])
    train, test, names = _files(tmp_path)
    res = CliRunner().invoke(cli, ["icl", str(train), "--test", str(test), "--shots", "0", "--answer", "generate",
                                   "--label-names", str(names)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "1 of 2" in res.output and "generate" in res.output


def test_chinese_data_gets_the_chinese_prompt(tmp_path, fake_generator, hashing_embedder):
    rows = read_jsonl(ZH_BANK / "seeds.jsonl")
    train, test = write_jsonl(tmp_path / "tr.jsonl", rows[6:]), write_jsonl(tmp_path / "te.jsonl", rows[:3])
    r = icl(train, test, shots=2, embedder="hashing")
    assert r["language"] == "zh" and len(r["settings"]) == 2
    assert all("类别：" in text for text, _ in fake_generator.scored)


def test_evaluate_with_the_icl_baseline(tmp_path, fake_generator, monkeypatch, hashing_embedder):
    from tiny_models import expand_like

    import finetune.embedding as emb
    from finetune.config import TrainConfig
    from finetune.evaluate import evaluate, table

    monkeypatch.setattr(emb, "encode", lambda spec, texts: hashing_embedder.encode(list(texts)))
    monkeypatch.setattr(emb, "embedder_id", lambda spec: f"fake:{spec}")
    seeds = [{"id": f"s-{lab}{i}", "text": f"note {i} on topic{lab} case", "label": f"L{lab}"}
             for lab in range(3) for i in range(4)]  # fmt: skip
    data = expand_like(tmp_path / "augmented.jsonl", seeds, {s["id"]: [s["text"] + " again"] for s in seeds})
    report = evaluate(data, TrainConfig(method="embedding", model="minilm"), repeats=1, language="en",
                      baseline="icl", icl_options={"embedder": "hashing", "shots": 2})  # fmt: skip
    run = report["runs"][0]["variants"]
    assert {"seed-only", "seed+augmented", "icl zero-shot", "icl 2-shot similar"} <= set(run)
    assert run["icl 2-shot similar"]["train_rows"] == 9 and run["icl zero-shot"]["unparseable"] == 0
    assert "paired_delta" in report["summary"]["icl 2-shot similar"]
    assert "icl zero-shot" in table(report)
    # the same test rows: one score() call per test row and setting
    assert len(fake_generator.scored) == 2 * report["runs"][0]["test_rows"]


# -- the real packaged LLM --------------------------------------------------------------------------------------
@pytest.mark.models
def test_real_llm_classifies_five_rows(tmp_path):
    rows = read_jsonl(ZH_BANK / "seeds.jsonl")
    by_label: dict[str, list] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    test_rows = [v[0] for v in by_label.values()][:5]
    train_rows = [r for r in rows if r not in test_rows]
    train, test = (
        write_jsonl(tmp_path / "tr.jsonl", train_rows),
        write_jsonl(tmp_path / "te.jsonl", test_rows),
    )
    r = icl(train, test, shots=2, embedder="hashing")
    assert r["backend"] == "llama.cpp" and r["test_rows"] == 5
    labels = {x["label"] for x in train_rows}
    for s in r["settings"]:
        assert s["unparseable"] == 0 and all(p["prediction"] in labels for p in s["predictions"])
        assert 0.0 <= s["accuracy"] <= 1.0
    assert r["settings"][1]["accuracy"] >= 0.4  # 2-shot similar on six intents: well above chance (1/6)


@pytest.mark.models
def test_transformers_score_is_the_sum_of_option_token_logprobs(tmp_path):
    import torch
    from tiny_models import build_llama

    from augment.generators import TransformersGenerator

    gen = TransformersGenerator(str(build_llama(tmp_path / "llama")), chat=False, device="cpu")
    prompt, options = "the note says", [" topic one", " case", " a much longer option here"]
    got = gen.score(prompt, options)
    for option, value in zip(options, got, strict=True):  # one unbatched forward pass per option
        p = gen.tokenizer(prompt)["input_ids"]
        o = gen.tokenizer(option, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(gen.model(torch.tensor([p + o])).logits[0].float(), -1)
        expected = sum(float(logp[len(p) - 1 + j, t]) for j, t in enumerate(o))
        assert value == pytest.approx(expected, abs=1e-4)


def test_cli_help_lists_the_command_and_the_baseline():
    from cli.main import cli

    assert "icl" in CliRunner().invoke(cli, ["--help"]).output
    res = CliRunner().invoke(cli, ["evaluate", "--help"])
    assert "--baseline [icl]" in res.output
    res = CliRunner().invoke(cli, ["icl", "--help"])
    assert res.exit_code == 0 and "--demos [similar|random]" in res.output and "--base-url" in res.output
