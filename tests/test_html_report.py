"""OUT/report.html: rendered after `augment expand` / `augment filter`, re-rendered by `augment report`,
and opened in headless Chromium (Debian's `chromium`, installed by scripts/setup.sh). Model-free:
`--embedder hashing`, lexical methods."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, ZH_BANK, invoke

from augment import html_report

SCREENSHOT = ROOT / "docs" / "report.png"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "zh_bank_intents"
    result = invoke(
        [
            "expand",
            ZH_BANK / "seeds.jsonl",
            "--unlabeled",
            ZH_BANK / "unlabeled.jsonl",
            "--embedder",
            "hashing",
            "--methods",
            "swap,delete",
            "-o",
            out,
        ]  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    return out


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _body_attrs(page: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", page)
    assert body, "no <body> tag"
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1)))


def _figures(page: str) -> dict:
    m = re.search(r"var FIGS = (.*?);\n", page)
    assert m, "no figures in the page"
    return json.loads(m.group(1).replace("<\\/", "</"))


# -- the page, model-free ---------------------------------------------------------------------------
def test_expand_writes_a_self_contained_report(run_dir):
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in page
    assert '"Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC"' in page
    # offline: nothing is fetched, plotly.js is inlined exactly once
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert page.count("plotly.js v") <= 2 and "Plotly.newPlot" in page
    assert page.count("<script>") == 3


def test_counts_on_the_page_match_the_manifest(run_dir):
    counts = _manifest(run_dir)["counts"]
    attrs = _body_attrs((run_dir / "report.html").read_text(encoding="utf-8"))
    for key in ("seeds", "candidates", "kept", "rejected"):
        assert int(attrs[key]) == counts[key], key
    assert int(attrs["output-rows"]) == counts["output_rows"] == 72 + counts["kept"]
    assert counts["rejected"] > 0 and counts["kept"] > 0


def test_sections_funnel_scores_map_balance_recipe_rows(run_dir):
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    figs = _figures(page)
    assert {"fig-funnel", "fig-methods", "fig-labels", "fig-map", "fig-balance", "fig-recipe"} <= set(figs)
    # a histogram per filter score, with the run's thresholds drawn
    sim = figs["fig-score-similarity"]["layout"]["shapes"]
    thresholds = _manifest(run_dir)["filters"]["thresholds"]
    assert sorted(s["x0"] for s in sim) == sorted(
        [thresholds["min_similarity"], thresholds["max_similarity"]]
    )
    # the funnel ends with each method's kept count
    per_method = _manifest(run_dir)["counts"]["per_method"]
    for trace in figs["fig-funnel"]["data"]:
        assert trace["x"][0] == per_method[trace["name"]]["generated"]
        assert trace["x"][-1] == per_method[trace["name"]]["kept"]
    # the map: seeds, kept and rejected rows, with their text on hover
    points = json.loads((run_dir / "report_points.json").read_text(encoding="utf-8"))
    kinds = {p["kind"] for p in points["points"]}
    assert kinds == {"seed", "kept", "rejected"}
    hover = " ".join(t for tr in figs["fig-map"]["data"] for t in tr["text"])
    seed_text = json.loads((ZH_BANK / "seeds.jsonl").read_text(encoding="utf-8").splitlines()[0])["text"]
    assert seed_text in hover
    # label balance: before = seeds, after = seeds + kept
    bal = figs["fig-balance"]["data"]
    assert sum(bal[0]["y"]) == 72 and sum(bal[1]["y"]) == 72 + _manifest(run_dir)["counts"]["kept"]
    # the recipe's evidence and the searchable rows with lineage and reasons
    assert "seed-only" in page and "recipe (" in page
    assert 'id="q"' in page and "filterRows()" in page
    assert "recipe:lowers_score" in page and "similarity:below_min" in page
    rej = [json.loads(x) for x in (run_dir / "rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rej[0]["id"] in page and rej[0]["text"] in page


def test_pca_is_deterministic_and_two_dimensional():
    import numpy as np

    x = np.random.default_rng(0).normal(size=(30, 16))
    a, ev = html_report.pca_2d(x)
    b, _ = html_report.pca_2d(x.copy())
    assert a.shape == (30, 2) and np.allclose(a, b)
    assert 0 < ev[1] <= ev[0] <= 1
    assert html_report.pca_2d(np.zeros((0, 4)))[0].shape == (0, 2)


def test_report_command_rerenders_from_stored_points(run_dir, tmp_path):
    target = tmp_path / "again.html"
    result = invoke(["report", run_dir, "-o", target])
    assert result.exit_code == 0, result.output
    assert (
        _figures(target.read_text(encoding="utf-8"))["fig-map"]
        == _figures((run_dir / "report.html").read_text(encoding="utf-8"))["fig-map"]
    )


def test_report_command_embeds_again_without_points(run_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(run_dir, out)
    (out / "report_points.json").unlink()
    (out / "report.html").unlink()
    assert invoke(["report", out, "--no-embed"]).exit_code == 0
    assert "fig-map" not in _figures((out / "report.html").read_text(encoding="utf-8"))
    assert "No map" in (out / "report.html").read_text(encoding="utf-8")
    # with the embedder the manifest records (hashing): the same map as at expand time
    assert invoke(["report", out]).exit_code == 0
    again = json.loads((out / "report_points.json").read_text(encoding="utf-8"))
    first = json.loads((run_dir / "report_points.json").read_text(encoding="utf-8"))
    assert again == first


def test_report_command_refuses_a_folder_that_is_not_an_output(tmp_path):
    result = invoke(["report", tmp_path])
    assert result.exit_code != 0 and "not an augment output folder" in result.output


def test_a_report_that_fails_does_not_fail_the_run(run_dir, tmp_path, monkeypatch, caplog):
    out = tmp_path / "copy"
    shutil.copytree(run_dir, out)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(html_report, "render", broken)
    with caplog.at_level(logging.WARNING, logger="augment.html_report"):
        assert html_report.write_after_run(out) is None
    assert not (out / "report.html").exists()  # no stale page from an earlier run
    assert "could not write" in caplog.text and "boom" in caplog.text


def test_filter_writes_a_report_too(run_dir, tmp_path):
    out = tmp_path / "filtered"
    result = invoke(
        [
            "filter",
            run_dir / "rejected.jsonl",
            "--reference",
            ZH_BANK / "seeds.jsonl",
            "--embedder",
            "hashing",
            "-o",
            out,
        ]  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text(encoding="utf-8")
    attrs = _body_attrs(page)
    assert int(attrs["candidates"]) == _manifest(out)["counts"]["candidates"] > 0
    assert "No recipe in this run" in page


# -- in a real browser ------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=8000",
]  # fmt: skip


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh installs it as root)"
)
def test_report_in_headless_chromium(run_dir, tmp_path):
    url = (run_dir / "report.html").as_uri()
    dom = subprocess.run(
        [CHROMIUM, *BROWSER, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, "console messages:\n" + "\n".join(console)
    attrs = _body_attrs(dom.stdout)
    assert "js-errors" not in attrs
    counts = _manifest(run_dir)["counts"]
    for key in ("seeds", "candidates", "kept", "rejected"):
        assert int(attrs[key]) == counts[key], key
    # every chart was drawn by plotly.js (the page sets data-charts-drawn as each one finishes)
    assert int(attrs["charts"]) >= 10 and attrs.get("charts-drawn") == attrs["charts"]
    assert dom.stdout.count('class="main-svg"') >= int(attrs["charts"])
    assert "老" in dom.stdout or "卡" in dom.stdout  # Chinese rows in the DOM, as UTF-8

    # the screenshot (docs/report.png in the README): AUGMENT_UPDATE_SCREENSHOT=1 writes it there
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    assert fonts.strip(), "no CJK font: Chinese would render as boxes (apt-get install fonts-noto-cjk)"
    shot = SCREENSHOT if os.environ.get("AUGMENT_UPDATE_SCREENSHOT") == "1" else tmp_path / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    taken = subprocess.run(
        [CHROMIUM, *BROWSER, f"--screenshot={shot}", "--window-size=1280,1600", url],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
