"""augment/methods through build_method: counts, lineage, determinism, what each edit may change, and
Chinese (jieba words joined back without spaces) as well as English."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from augment.context import RunContext
from augment.errors import ConfigError
from augment.language import normalise, tokenizer_for
from augment.methods import available_methods, build_method
from augment.methods.lexical import default_methods
from augment.record import CLASSIFICATION, seed_record

ZH_METHODS = ["swap", "delete", "insert", "spelling", "keyboard"]
PINYIN = {"spelling", "keyboard"}  # Chinese typing noise is the engine's own, not nlpaug's
EN_METHODS = ["swap", "delete", "insert", "synonym", "spelling", "keyboard"]
N = 2
RUN_SEED = 13
_PUNCT = re.compile(r"^[^\w\s]+$")
_cache: dict[tuple, object] = {}


def method(name: str, language: str, seeds, **params):
    key = (name, language, tuple(sorted(params.items())))
    if key not in _cache:
        m = build_method(name, dict(params))
        m.setup(RunContext(seeds=seeds, language=language))
        _cache[key] = m
    return _cache[key]


@pytest.fixture(scope="module")
def zh_batch(zh_seeds):
    return zh_seeds[:10]


@pytest.fixture(scope="module")
def en_batch(en_seeds):
    return en_seeds[:10]


def _backend_prefix(name: str, language: str) -> str:
    return "augment-engine pinyin" if language == "zh" and name in PINYIN else "nlpaug"


def _check_contract(out, batch, name, n=N, language="en"):
    assert len(out) == len(batch) * n
    for i, seed in enumerate(batch):
        for k in range(n):
            cand = out[i * n + k]
            assert cand.parent_ids == (seed.id,)
            assert cand.method == name
            assert cand.origin == "augmented"
            assert cand.label == seed.label and cand.task == seed.task
            assert cand.lineage.backend.startswith(_backend_prefix(name, language))
            assert isinstance(cand.lineage.random_seed, int)
            assert cand.lineage.field == "text" and "field" not in cand.lineage.params
            original, text = seed.fields["text"], cand.fields["text"]
            # never the input again without saying so
            if cand.rejection is None:
                assert text.strip() and normalise(text) != normalise(original), (original, text)
            else:
                assert cand.rejection.stage == "generate"
                assert cand.rejection.code in ("unchanged", "empty")
    assert len({c.id for c in out}) == len(out)


def _is_subsequence(small, big) -> bool:
    it = iter(big)
    return all(x in it for x in small)


def _punct_chars(text: str) -> list[str]:
    return [ch for ch in text if not ch.isalnum() and not ch.isspace()]


# -- Chinese -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZH_METHODS)
def test_chinese_contract_and_no_spaces(name, zh_seeds, zh_batch):
    out = method(name, "zh", zh_seeds).generate(zh_batch, "text", N, RUN_SEED)
    _check_contract(out, zh_batch, name, language="zh")
    accepted = [c for c in out if c.rejection is None]
    assert len(accepted) >= 0.8 * len(out)  # it really edits Chinese text
    for cand in out:
        assert " " not in cand.fields["text"]  # seeds have no spaces; words are joined with ""
    assert out[0].lineage.params["tokenizer"] == "jieba"


def _parent(cand, seeds):
    return next(s for s in seeds if s.id == cand.parent_ids[0]).fields["text"]


def _permutation_keeping_punctuation(tokens: list[str], text: str) -> bool:
    """Can ``text`` be cut into a permutation of ``tokens`` in which every punctuation token stays at
    its index? (A backtracking parse: the output is re-read with the input's own words.)"""
    words = Counter(t for t in tokens if not _PUNCT.match(t))

    def parse(pos: int, i: int) -> bool:
        if i == len(tokens):
            return pos == len(text)
        if _PUNCT.match(tokens[i]):
            return text.startswith(tokens[i], pos) and parse(pos + len(tokens[i]), i + 1)
        for word in [w for w, n in words.items() if n > 0 and text.startswith(w, pos)]:
            words[word] -= 1
            if parse(pos + len(word), i + 1):
                return True
            words[word] += 1
        return False

    return parse(0, 0)


def test_chinese_swap_only_reorders_words_and_never_moves_punctuation(zh_seeds):
    out = method("swap", "zh", zh_seeds).generate(zh_seeds, "text", N, RUN_SEED)
    tok = tokenizer_for("zh")
    for cand in out:
        before, after = _parent(cand, zh_seeds), cand.fields["text"]
        assert Counter(after) == Counter(before)
        assert _punct_chars(after) == _punct_chars(before)
        if cand.rejection is None:
            assert _permutation_keeping_punctuation(tok(before), after), (before, after)


def test_chinese_delete_removes_words_only(zh_seeds, zh_batch):
    out = method("delete", "zh", zh_seeds).generate(zh_batch, "text", N, RUN_SEED)
    for cand in out:
        before, after = _parent(cand, zh_batch), cand.fields["text"]
        assert len(after) < len(before)
        assert _is_subsequence(after, before)
        assert _punct_chars(after) == _punct_chars(before)  # punctuation is never deleted


def test_chinese_insert_adds_words_from_the_same_label(zh_seeds, zh_batch):
    out = method("insert", "zh", zh_seeds).generate(zh_batch, "text", N, RUN_SEED)
    assert out[0].lineage.params["donor"] == "label-vocabulary"
    for cand in out:
        before, after = _parent(cand, zh_batch), cand.fields["text"]
        assert len(after) > len(before)
        assert _is_subsequence(before, after)
        added = Counter(after) - Counter(before)
        vocabulary = Counter("".join(s.fields["text"] for s in zh_seeds if s.label == cand.label))
        assert all(ch in vocabulary for ch in added), (before, after)


def _readings(ch: str) -> set[str]:
    from pypinyin import Style, pinyin

    return set(pinyin(ch, style=Style.NORMAL, heteronym=True)[0])


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


@pytest.mark.parametrize("name", sorted(PINYIN))
def test_chinese_typos_replace_han_characters_by_sound(name, zh_seeds, zh_batch):
    from augment.language import is_cjk

    batch = [
        *zh_batch,
        seed_record(CLASSIFICATION, {"text": "我的Token丢了，怎么重新申请Token"}, "card_lost"),
    ]
    m = method(name, "zh", zh_seeds)
    assert m.params()["typo_model"] == {"spelling": "homophone", "keyboard": "near"}[name]
    out = m.generate(batch, "text", 3, RUN_SEED)
    _check_contract(out, batch, name, n=3, language="zh")
    for cand in out:
        before, after = _parent(cand, batch), cand.fields["text"]
        assert cand.rejection is None
        assert len(after) == len(before)  # one character for another: an input-method slip
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert 1 <= len(changed) <= m.aug_max
        for a, b in changed:
            assert is_cjk(a) and is_cjk(b), (before, after)  # Latin letters, digits, punctuation stay
            if name == "spelling":  # a homophone: the same toneless syllable
                assert _readings(a) & _readings(b), (a, b)
            else:  # a near sound: one fuzzy-pinyin step or one neighbouring key away
                assert any(_edit_distance(x, y) == 1 for x in _readings(a) for y in _readings(b)), (a, b)
        if "Token" in before:
            assert after.count("Token") == 2


def test_keyboard_on_english_letters_is_nlpaug(en_seeds):
    m = method("keyboard", "en", en_seeds)
    assert m.backend.startswith("nlpaug") and "typo_model" not in m.params()


# -- English -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", EN_METHODS)
def test_english_contract(name, en_seeds, en_batch):
    out = method(name, "en", en_seeds).generate(en_batch, "text", N, RUN_SEED)
    _check_contract(out, en_batch, name, language="en")
    assert sum(c.rejection is None for c in out) >= 0.8 * len(out)
    assert out[0].lineage.params["tokenizer"] == "words+punctuation"


def _tokens(text):
    return tokenizer_for("en")(text)


def test_english_swap_keeps_punctuation_in_place(en_seeds, en_batch):
    out = method("swap", "en", en_seeds).generate(en_batch, "text", N, RUN_SEED)
    for cand in out:
        before, after = _tokens(_parent(cand, en_batch)), _tokens(cand.fields["text"])
        assert Counter(t.lower() for t in after) == Counter(t.lower() for t in before)
        assert [(i, t) for i, t in enumerate(after) if _PUNCT.match(t)] == [
            (i, t) for i, t in enumerate(before) if _PUNCT.match(t)
        ], (cand.fields["text"], _parent(cand, en_batch))


def test_english_delete_and_insert_keep_the_rest_in_order(en_seeds, en_batch):
    for name in ("delete", "insert"):
        out = method(name, "en", en_seeds).generate(en_batch, "text", N, RUN_SEED)
        for cand in out:
            before = [t.lower() for t in _tokens(_parent(cand, en_batch))]
            after = [t.lower() for t in _tokens(cand.fields["text"])]
            small, big = (after, before) if name == "delete" else (before, after)
            assert len(small) < len(big)
            assert _is_subsequence(small, big), (name, before, after)
            assert [t for t in before if _PUNCT.match(t)] == [t for t in after if _PUNCT.match(t)]


def test_english_insert_and_synonym_use_wordnet(en_seeds, en_batch):
    from nltk.corpus import wordnet

    for name in ("insert", "synonym"):
        m = method(name, "en", en_seeds)
        assert m.model == "WordNet 3.0"
    out = method("synonym", "en", en_seeds).generate(en_batch, "text", N, RUN_SEED)
    for cand in out:
        before = {t.lower() for t in _tokens(_parent(cand, en_batch))}
        new_words = [t for t in _tokens(cand.fields["text"]) if t.lower() not in before and t.isalpha()]
        assert new_words, cand.fields["text"]
        # every new word is part of a WordNet lemma (synonyms may have several words)
        for w in new_words:
            assert wordnet.synsets(w) or any(w in lemma.split("_") for lemma in wordnet.all_lemma_names()), w


def test_english_keyboard_makes_one_letter_typos(en_seeds, en_batch):
    out = method("keyboard", "en", en_seeds).generate(en_batch, "text", N, RUN_SEED)
    for cand in out:
        before, after = _tokens(_parent(cand, en_batch)), _tokens(cand.fields["text"])
        assert len(after) == len(before)
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert changed
        for a, b in changed:
            diffs = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
            assert len(diffs) == 1 and diffs[0][0].isalpha() and diffs[0][1].isalpha(), (a, b)


# -- reproducibility -------------------------------------------------------------------------
@pytest.mark.parametrize("language, name", [("zh", n) for n in ZH_METHODS] + [("en", n) for n in EN_METHODS])
def test_generation_is_deterministic_per_run_seed(language, name, zh_seeds, en_seeds):
    seeds = zh_seeds if language == "zh" else en_seeds
    batch = seeds[:6]
    m = method(name, language, seeds)
    first = m.generate(batch, "text", N, RUN_SEED)
    again = m.generate(batch, "text", N, RUN_SEED)
    fresh = build_method(name, {})
    fresh.setup(RunContext(seeds=seeds, language=language))
    from_fresh = fresh.generate(batch, "text", N, RUN_SEED)
    key = lambda out: [(c.id, c.fields["text"], c.lineage.random_seed) for c in out]  # noqa: E731
    assert key(first) == key(again) == key(from_fresh)
    other = m.generate(batch, "text", N, RUN_SEED + 1)
    differing = sum(a.fields["text"] != b.fields["text"] for a, b in zip(first, other, strict=True))
    assert differing >= len(first) // 2
    assert {c.lineage.random_seed for c in first}.isdisjoint({c.lineage.random_seed for c in other})


@pytest.mark.parametrize("language", ["zh", "en"])
def test_candidates_do_not_depend_on_the_batch(language, zh_seeds, en_seeds):
    seeds = zh_seeds if language == "zh" else en_seeds
    m = method("delete", language, seeds)
    together = m.generate(seeds[:4], "text", N, RUN_SEED)
    alone = m.generate(seeds[3:4], "text", N, RUN_SEED)
    assert [c.fields["text"] for c in together[-N:]] == [c.fields["text"] for c in alone]
    assert [c.id for c in together[-N:]] == [c.id for c in alone]


def test_aug_p_is_applied(zh_seeds):
    light = method("delete", "zh", zh_seeds, aug_p=0.1, aug_max=10)
    heavy = method("delete", "zh", zh_seeds, aug_p=0.6, aug_max=10)
    lo = light.generate(zh_seeds[:20], "text", N, RUN_SEED)
    hi = heavy.generate(zh_seeds[:20], "text", N, RUN_SEED)
    assert sum(len(c.fields["text"]) for c in hi) < sum(len(c.fields["text"]) for c in lo)
    assert hi[0].lineage.params["aug_p"] == 0.6 and lo[0].lineage.params["aug_p"] == 0.1


# -- nothing to edit -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "language, name, text",
    [
        ("zh", "swap", "好"),
        ("zh", "delete", "好"),
        ("zh", "spelling", "ATM"),  # no Han character to mistype
        ("zh", "keyboard", "ATM"),
        ("en", "swap", "ok"),
        ("en", "delete", "ok"),
        ("en", "keyboard", "ok"),
    ],
)
def test_one_word_seed_is_rejected_as_unchanged(language, name, text, zh_seeds, en_seeds):
    seeds = zh_seeds if language == "zh" else en_seeds
    one = seed_record(CLASSIFICATION, {"text": text}, seeds[0].label)
    out = method(name, language, seeds).generate([one], "text", 3, RUN_SEED)
    assert len(out) == 3
    for cand in out:
        assert cand.fields["text"] == text
        assert cand.rejection is not None
        assert (cand.rejection.stage, cand.rejection.code) == ("generate", "unchanged")
        assert cand.parent_ids == (one.id,)


# -- configuration errors ------------------------------------------------------------------------
@pytest.mark.parametrize("language", ["zh", "zh-TW"])
def test_synonym_refuses_chinese(language, zh_seeds):
    m = build_method("synonym", {})
    with pytest.raises(ConfigError, match=rf"method 'synonym'.*'{language}'"):
        m.setup(RunContext(seeds=zh_seeds, language=language))


@pytest.mark.parametrize("name, hint", [("swapp", "swap"), ("synonyms", "synonym"), ("delet", "delete")])
def test_unknown_method_name_has_a_hint(name, hint):
    with pytest.raises(ConfigError) as exc:
        build_method(name, {})
    msg = str(exc.value)
    assert f"unknown method {name!r}" in msg and f"did you mean {hint!r}?" in msg
    for known in EN_METHODS:
        assert known in msg


@pytest.mark.parametrize(
    "methods, fragments",
    [
        ("swap,synonym", ["method 'synonym'", "'zh'"]),
        ("swap,delet", ["unknown method 'delet'", "did you mean 'delete'?"]),
    ],
)
def test_cli_method_errors_come_before_any_output(methods, fragments, zh_subset, tmp_path):
    from conftest import error_lines, invoke

    out = tmp_path / "out"
    result = invoke(["expand", zh_subset, "--methods", methods, "-o", out])
    assert result.exit_code != 0
    lines = error_lines(result)
    assert len(lines) == 1 and all(f in lines[0] for f in fragments), lines
    assert not out.exists()


def test_unknown_method_params_are_refused():
    with pytest.raises(ConfigError, match=r"methods\.params\.swap.*aug_q"):
        build_method("swap", {"aug_q": 0.3})


def test_registry_and_defaults():
    assert set(EN_METHODS) <= set(available_methods())
    assert default_methods("zh") == ["swap", "delete", "insert", "spelling"]
    assert default_methods("en") == ["swap", "delete", "insert", "synonym", "spelling"]


def test_generate_before_setup_is_an_error(zh_seeds):
    with pytest.raises(RuntimeError, match="setup"):
        build_method("swap", {}).generate(zh_seeds[:1], "text", 1, RUN_SEED)
