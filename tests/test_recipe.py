"""The recipe: which pool fraction and which methods' rows a proxy learner's dev / CV score supports.

Model-free: vectors are made up so that the right answer is known (two well-separated classes in a
few dimensions; a method whose rows carry the wrong label; pool rows whose confidence tracks how
close they are to their class)."""

from __future__ import annotations

import numpy as np
import pytest

from augment.errors import ConfigError
from augment.recipe import FRACTIONS, choose, top_fraction, usable
from augment.record import CLASSIFICATION, PSEUDO_LABELLED, Lineage, Record, seed_record


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


class Space:
    """text -> vector, registered as rows are made."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.vec: dict[str, np.ndarray] = {}

    def point(self, text: str, label: str, noise: float) -> str:
        centre = np.array([1.0, 0, 0, 0, 0, 0]) if label == "pos" else np.array([0, 1.0, 0, 0, 0, 0])
        self.vec[text] = _unit(centre + noise * self.rng.normal(size=6)).astype(np.float32)
        return text

    def embed(self, texts):
        return np.stack([self.vec[t] for t in texts])


def _seeds(space: Space, n: int = 6, noise: float = 0.9) -> list[Record]:
    return [
        seed_record(CLASSIFICATION, {"text": space.point(f"seed {lbl} {i}", lbl, noise)}, lbl)
        for lbl in ("pos", "neg")
        for i in range(n)
    ]


def _candidate(parent: Record, text: str, label: str, method: str, origin: str, conf: float | None = None) -> Record:
    rec = parent.derive(
        "text", text, method=method, lineage=Lineage(field="text"), index=0, origin=origin, label=label
    )
    return rec.with_scores(confidence=conf) if conf is not None else rec


def _dev(space: Space, n: int = 20) -> list[Record]:
    return [
        seed_record(CLASSIFICATION, {"text": space.point(f"dev {lbl} {i}", lbl, 0.9)}, lbl)
        for lbl in ("pos", "neg")
        for i in range(n)
    ]


def test_top_fraction_takes_the_most_confident_share_of_each_predicted_class():
    labels = ["a", "a", "a", "a", "b", "b"]
    conf = np.array([0.9, 0.5, 0.8, 0.7, 0.6, 0.99])
    assert top_fraction(labels, conf, 0.5).tolist() == [0, 2, 5]
    assert top_fraction(labels, conf, 0.0).tolist() == []
    assert top_fraction(labels, conf, 1.0).tolist() == [0, 1, 2, 3, 4, 5]
    assert top_fraction(labels, conf, 0.01).tolist() == [0, 5]  # at least one row per class


def test_usable_modes_and_reasons():
    space = Space()
    seeds = _seeds(space, n=3)
    assert usable("auto", seeds, True, 5)[0] == "dev"
    assert usable("auto", seeds, False, 5) == ("cv", "3-fold cross-validation on the seeds (no --dev file)")
    assert usable("off", seeds, True, 5)[0] == "off"
    mode, why = usable("dev", seeds, False, 5)
    assert mode == "off" and "no dev file" in why
    one = seeds[:1] + seeds[3:]
    assert usable("auto", one, False, 5)[0] == "off"


@pytest.mark.parametrize("use_dev", [True, False])
def test_wrong_label_method_is_dropped_and_good_pool_rows_are_kept(use_dev):
    space = Space(1)
    seeds = _seeds(space, n=6, noise=1.2)
    kept = []
    # a method whose rows carry the opposite label, many per seed: it can only hurt
    for i, s in enumerate(seeds):
        wrong = "neg" if s.label == "pos" else "pos"
        for j in range(8):
            text = space.point(f"flip {i} {j}", s.label, 0.3)
            kept.append(_candidate(s, text, wrong, "flipper", "augmented"))
    # pool rows: correct labels, confident near the class centre
    for i in range(40):
        lbl = "pos" if i % 2 else "neg"
        text = space.point(f"pool {i}", lbl, 0.6)
        pool_row = seed_record(CLASSIFICATION, {"text": text}, None, origin="pool")
        kept.append(_candidate(pool_row, text, lbl, "pseudo_label", PSEUDO_LABELLED, conf=0.6 + 0.005 * i))
    dev = _dev(space) if use_dev else []

    def relabel(train_x, train_y, pool_x):  # a labeller that knows the geometry (as a strong one would)
        labels = ["pos" if v[0] > v[1] else "neg" for v in pool_x]
        return labels, np.abs(pool_x[:, 0] - pool_x[:, 1])

    res = choose(
        seeds, kept, space.embed, field_name="text", mode="dev" if use_dev else "cv", dev=dev, seed=0,
        relabel=relabel,
    )
    info = res.info
    assert info["mode"] == ("dev" if use_dev else "cv")
    assert info["methods"]["flipper"]["kept"] is False
    assert info["chosen"]["pseudo_label_fraction"] > 0
    assert info["chosen"]["pseudo_label_fraction"] in FRACTIONS
    kept_methods = {r.method for r in res.kept}
    assert "flipper" not in kept_methods and "pseudo_label" in kept_methods
    # nothing lost: every input row is either kept or rejected with a recipe reason and numbers
    assert len(res.kept) + len(res.rejected) == len(kept)
    reasons = {(r.rejection.stage, r.rejection.code) for r in res.rejected}
    assert ("recipe", "lowers_score") in reasons
    flip = next(r for r in res.rejected if r.method == "flipper")
    assert "with" in flip.rejection.detail and "without" in flip.rejection.detail


def test_useless_pool_is_not_kept_and_the_reason_says_so():
    space = Space(2)
    seeds = _seeds(space, n=6, noise=0.3)
    kept = []
    for i in range(60):  # pool rows labelled at random: they add noise only
        lbl = "pos" if i % 2 else "neg"
        text = space.point(f"pool {i}", "neg" if lbl == "pos" else "pos", 0.3)
        pool_row = seed_record(CLASSIFICATION, {"text": text}, None, origin="pool")
        kept.append(_candidate(pool_row, text, lbl, "pseudo_label", PSEUDO_LABELLED, conf=0.9))
    res = choose(seeds, kept, space.embed, field_name="text", mode="dev", dev=_dev(space), seed=0)
    assert res.info["chosen"]["pseudo_label_fraction"] == 0.0
    assert res.kept == []
    assert all(r.rejection.code == "below_fraction" for r in res.rejected)
    assert "top 0" in res.rejected[0].rejection.detail


def test_recipe_config_is_validated():
    from augment.config import ExpandConfig

    with pytest.raises(ConfigError, match=r"recipe.mode must be one of auto, dev, cv, off, got 'devv' \(did you mean 'dev'\?\)"):
        ExpandConfig.from_dict({"recipe": {"mode": "devv"}})
    with pytest.raises(ConfigError, match="recipe.folds must be >= 2"):
        ExpandConfig.from_dict({"recipe": {"folds": 1}})


def test_a_method_that_does_no_harm_is_kept_when_the_seeds_alone_score_perfectly():
    space = Space(3)
    seeds = _seeds(space, n=4, noise=0.2)  # separable: cross-validation is already at 1.0
    kept = [_candidate(s, space.point(f"para {i}", s.label, 0.2), s.label, "para", "augmented") for i, s in enumerate(seeds)]
    res = choose(seeds, kept, space.embed, field_name="text", mode="cv", seed=0)
    assert res.info["seed_only"]["accuracy"] == 1.0
    assert res.info["methods"]["para"]["kept"] is True and len(res.kept) == len(kept) and not res.rejected


def test_a_large_pool_is_scored_on_a_sample_and_kept_whole(monkeypatch):
    """Above PROXY_MAX_ROWS the proxy learner trains on an even sample of a fraction's rows (bounded
    cost on a 100,000-row pool); the final selection still keeps every row of the chosen fraction."""
    import augment.recipe as recipe

    space = Space(3)
    seeds = _seeds(space, n=6, noise=0.6)
    kept = []
    for i in range(60):  # correct, confident pool rows
        lbl = "pos" if i % 2 else "neg"
        text = space.point(f"pool {i}", lbl, 0.4)
        pool_row = seed_record(CLASSIFICATION, {"text": text}, None, origin="pool")
        kept.append(_candidate(pool_row, text, lbl, "pseudo_label", PSEUDO_LABELLED, conf=0.5 + 0.005 * i))
    sizes: list[int] = []
    fit = recipe._fit_lr
    monkeypatch.setattr(recipe, "_fit_lr", lambda x, y, c, w, s: sizes.append(len(y)) or fit(x, y, c, w, s))
    monkeypatch.setattr(recipe, "PROXY_MAX_ROWS", 4)
    res = choose(seeds, kept, space.embed, field_name="text", mode="dev", dev=_dev(space), seed=0)
    assert res.info["proxy_max_pool_rows"] == 4
    assert max(sizes) <= len(seeds) + 4  # the seeds plus at most 4 pool rows per fit
    q = res.info["chosen"]["pseudo_label_fraction"]
    top = top_fraction([r.label for r in kept], np.array([r.scores["confidence"] for r in kept]), q)
    assert len(top) > 4  # the chosen fraction has more rows than the cap, and is kept whole
    assert len(res.kept) == len(top)
