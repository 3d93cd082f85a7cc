"""``OUT/report.html``: one self-contained page that shows what a run made, kept and dropped, and why.

Rendered from the output folder alone (``manifest.json``, ``augmented.jsonl``, ``rejected.jsonl``)
after every `augment expand` and `augment filter`, and again by `augment report OUT`. The page works
offline: the charts are Plotly figures, and plotly.js (from the ``plotly`` Python package) is inlined
once; the rest is plain HTML, CSS and a few lines of JavaScript (the row search).

The 2-D map projects the run's embeddings with PCA (numpy SVD). Its coordinates are computed when the
run writes its outputs, where the run's embedder is already loaded in the process and its vectors sit
in the on-disk embedding cache, and are stored in ``OUT/report_points.json`` (a few hundred kB at
most). So `augment report OUT` re-renders without loading a model, gives the same picture every time,
and still works when the embedder has since been removed or `auto` would now pick another one. When
that file is missing or no longer matches the rows, `augment report` embeds again with the embedder
the manifest records (and leaves the map out, saying why, when that embedder cannot be had).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .io import write_atomic
from .report import SUMMARY_HEADER, drop_reasons, recipe_lines, summary_rows

logger = logging.getLogger(__name__)

REPORT = "report.html"
POINTS = "report_points.json"
MAX_POINTS = 4000  # the map samples this many rows at most (all seeds first)
MAX_TABLE_ROWS = 300  # kept and rejected rows each, in the searchable table
HOVER_CHARS = 120
CJK_FONTS = '"Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", sans-serif'

# filter -> the config thresholds drawn on its score histogram
THRESHOLDS = {
    "quality": ("min_length_ratio", "max_length_ratio"),
    "similarity": ("min_similarity", "max_similarity"),
    "dedup": ("near_duplicate",),
    "label": ("label_margin",),
    "novelty": ("min_novelty",),
}
# drop reasons: warm and grey tones, never the green of "kept"
REASON_COLOURS = [
    "#ef6c00",
    "#c62828",
    "#8e24aa",
    "#6d4c41",
    "#fbc02d",
    "#546e7a",
    "#d81b60",
    "#5e35b1",
    "#ff8a65",
    "#9e9e9e",
]
KIND_COLOURS = {"seed": "circle", "kept": "diamond", "rejected": "x"}


# -- reading the output folder ---------------------------------------------------------------------
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _rows_digest(out: Path) -> str:
    h = hashlib.sha256()
    for name in ("augmented.jsonl", "rejected.jsonl"):
        p = out / name
        h.update(p.read_bytes() if p.exists() else b"")
    return h.hexdigest()[:16]


def _field(row: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The field the row's method wrote (seeds: the run's first field)."""
    return row.get("field") or (fields[0] if fields else "text")


def _text(row: Mapping[str, Any], fields: Sequence[str]) -> str:
    return str(row.get(_field(row, fields)) or row.get("text") or row.get("instruction") or "")


def _kind(row: Mapping[str, Any]) -> str:
    if row.get("rejected_by"):
        return "rejected"
    return "seed" if row.get("origin") == "seed" else "kept"


# -- the 2-D map -----------------------------------------------------------------------------------
def _sample(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """All seeds, then kept and rejected rows evenly spread through the files, ``limit`` in all."""
    seeds = [r for r in rows if _kind(r) == "seed"]
    rest = [r for r in rows if _kind(r) != "seed"]
    room = max(0, limit - len(seeds))
    if len(rest) > room:
        step = len(rest) / room if room else 0
        rest = [rest[int(i * step)] for i in range(room)]
    return [*seeds[:limit], *rest]


def pca_2d(vectors: Any) -> tuple[Any, list[float]]:
    """The first two principal components of ``vectors`` (rows), and the share of variance each explains.
    Signs are fixed (largest loading positive) so the same vectors always give the same picture."""
    import numpy as np

    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        return np.zeros((0, 2)), [0.0, 0.0]
    x = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    comps = np.zeros((2, x.shape[1]))
    k = min(2, len(vt))
    comps[:k] = vt[:k]
    for i in range(k):
        if comps[i, np.argmax(np.abs(comps[i]))] < 0:
            comps[i] = -comps[i]
    total = float((s**2).sum()) or 1.0
    explained = [float(s[i] ** 2 / total) if i < len(s) else 0.0 for i in range(2)]
    return x @ comps.T, explained


def _run_embedder(manifest: Mapping[str, Any]) -> Any:
    """The embedder the run used, loaded as the run loaded it; None (with a warning) when it cannot be."""
    from .embedders import load_embedder, resolve_embedder_spec

    spec = (manifest.get("config") or {}).get("embedder")
    recorded = (manifest.get("embedder") or {}).get("model")
    if not spec:
        return None
    language = (manifest.get("language") or {}).get("used") or "en"
    emb = load_embedder(resolve_embedder_spec(spec, language))
    if recorded and getattr(emb, "model_id", None) != recorded:
        logger.warning(
            "report: embedder %r now resolves to %s, not the run's %s: the map is left out",
            spec,
            getattr(emb, "model_id", "?"),
            recorded,
        )
        return None
    return emb


def compute_points(out: Path, manifest: Mapping[str, Any], embedder: Any, limit: int = MAX_POINTS) -> dict:
    """The 2-D PCA map of seeds, kept and rejected rows, as written to ``OUT/report_points.json``."""
    fields = manifest.get("fields") or ["text"]
    rows = [*_read_jsonl(out / "augmented.jsonl"), *_read_jsonl(out / "rejected.jsonl")]
    sample = _sample(rows, limit)
    vecs = embedder.encode([_text(r, fields) for r in sample]) if sample else []
    xy, explained = pca_2d(vecs)
    return {
        "rows_digest": _rows_digest(out),
        "embedder": getattr(embedder, "model_id", None),
        "method": "PCA (numpy SVD) of the run's embeddings",
        "explained_variance": [round(v, 4) for v in explained],
        "points": [
            {"id": r["id"], "kind": _kind(r), "x": round(float(p[0]), 5), "y": round(float(p[1]), 5)}
            for r, p in zip(sample, xy, strict=True)
        ],
    }


def write_points(out: Path, manifest: Mapping[str, Any] | None = None, embedder: Any = None) -> dict | None:
    """Compute the map with the run's embedder and write ``OUT/report_points.json`` atomically."""
    manifest = manifest if manifest is not None else json.loads((out / "manifest.json").read_text("utf-8"))
    embedder = embedder if embedder is not None else _run_embedder(manifest)
    if embedder is None:
        return None
    points = compute_points(out, manifest, embedder)
    write_atomic(out / POINTS, json.dumps(points, ensure_ascii=False, separators=(",", ":")) + "\n")
    return points


def load_points(out: Path) -> dict | None:
    """``OUT/report_points.json`` when it still describes the folder's rows, else None."""
    p = out / POINTS
    if not p.exists():
        return None
    try:
        points = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return points if points.get("rows_digest") == _rows_digest(out) else None


# -- figures (plain dicts, drawn by plotly.js) -----------------------------------------------------
def _layout(title: str, **kw: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "font": {"family": CJK_FONTS.replace('"', "'")},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "height": 380,
        "legend": {"orientation": "h", "y": -0.2},
        **kw,
    }


def funnel_figure(manifest: Mapping[str, Any], rejected: Sequence[Mapping[str, Any]]) -> dict | None:
    """Per method: candidates, then how many survive each stage (generation, each filter, the recipe)."""
    per_method = manifest.get("counts", {}).get("per_method") or {}
    if not per_method:
        return None
    order = list((manifest.get("filters") or {}).get("order") or [])
    stages_seen = {r.get("rejected_by") for r in rejected}
    early = sorted(s for s in stages_seen if s and s not in order and s != "recipe")
    # only the stages that dropped something: a filter that passed every row adds a flat step
    stages = [s for s in [*early, *order, "recipe"] if s in stages_seen]
    traces = []
    for name, c in per_method.items():
        dropped = Counter(r.get("rejected_by") for r in rejected if (r.get("method") or "?") == name)
        left, ys, xs = c.get("generated", 0), ["candidates"], [c.get("generated", 0)]
        for s in stages:
            left -= dropped.get(s, 0)
            ys.append(f"after {s}")
            xs.append(left)
        traces.append({"type": "funnel", "name": name, "y": ys, "x": xs, "textinfo": "value"})
    return {
        "data": traces,
        "layout": _layout(
            "Funnel per method: candidates → kept", height=420, margin={"l": 120, "r": 20, "t": 50, "b": 50}
        ),
    }


def reasons_figure(
    rejected: Sequence[Mapping[str, Any]], kept: Sequence[Mapping[str, Any]], by: str
) -> dict | None:
    """Stacked bars per method (or label): kept, then one segment per drop reason."""
    if not kept and not rejected:
        return None

    def key(r: Mapping[str, Any]) -> str:
        return str((r.get(by) if by == "method" else r.get("label")) or "?")

    groups = sorted({key(r) for r in [*kept, *rejected]})
    traces = [
        {
            "type": "bar",
            "name": "kept",
            "x": groups,
            "y": [sum(1 for r in kept if key(r) == g) for g in groups],
            "marker": {"color": "#2e7d32"},
        }
    ]
    reasons = Counter(f"{r.get('rejected_by')}:{r.get('reason')}" for r in rejected)
    for i, (reason, _) in enumerate(reasons.most_common()):
        traces.append(
            {
                "marker": {"color": REASON_COLOURS[i % len(REASON_COLOURS)]},
                "type": "bar",
                "name": reason,
                "x": groups,
                "y": [
                    sum(
                        1
                        for r in rejected
                        if key(r) == g and f"{r.get('rejected_by')}:{r.get('reason')}" == reason
                    )
                    for g in groups
                ],
            }
        )
    return {"data": traces, "layout": _layout(f"Candidates per {by}: kept and drop reasons", barmode="stack")}


def score_figures(
    manifest: Mapping[str, Any], kept: Sequence[Mapping[str, Any]], rejected: Sequence[Mapping[str, Any]]
) -> list[tuple[str, dict]]:
    """One histogram per filter score: rows that passed it vs rows it dropped, thresholds as lines."""
    thresholds = (manifest.get("filters") or {}).get("thresholds") or {}
    names: list[str] = []
    for r in [*kept, *rejected]:
        for k in r.get("scores") or {}:
            if k not in names:
                names.append(k)
    order = list((manifest.get("filters") or {}).get("order") or [])
    names.sort(key=lambda n: order.index(n) if n in order else len(order))
    pl_threshold = next(
        (
            m["params"].get("threshold")
            for m in manifest.get("methods") or []
            if m.get("name") == "pseudo_label"
        ),
        None,
    )
    out = []
    for name in names:
        passed = [
            r["scores"][name]
            for r in [*kept, *rejected]
            if name in (r.get("scores") or {}) and r.get("rejected_by") != name
        ]
        failed = [
            r["scores"][name]
            for r in rejected
            if r.get("rejected_by") == name and name in (r.get("scores") or {})
        ]
        lines = {t: thresholds.get(t) for t in THRESHOLDS.get(name, ())}
        if name == "confidence" and pl_threshold is not None:
            lines["pseudo_label.threshold"] = pl_threshold
        shapes, notes = [], []
        for t, v in lines.items():
            if isinstance(v, (int, float)):
                shapes.append(
                    {
                        "type": "line",
                        "xref": "x",
                        "yref": "paper",
                        "x0": v,
                        "x1": v,
                        "y0": 0,
                        "y1": 1,
                        "line": {"color": "#c62828", "dash": "dash", "width": 2},
                    }
                )
                notes.append(
                    {
                        "x": v,
                        "y": 1,
                        "xref": "x",
                        "yref": "paper",
                        "text": f"{t} = {v:g}",
                        "showarrow": False,
                        "yanchor": "bottom",
                        "font": {"color": "#c62828"},
                    }
                )
        traces = [
            {
                "type": "histogram",
                "name": f"passed {name}",
                "x": passed,
                "opacity": 0.75,
                "nbinsx": 40,
                "marker": {"color": "#1565c0"},
            },
            {
                "type": "histogram",
                "name": f"dropped by {name}",
                "x": failed,
                "opacity": 0.75,
                "nbinsx": 40,
                "marker": {"color": "#ef6c00"},
            },
        ]
        fig = {
            "data": traces,
            "layout": _layout(
                f"{name} score",
                barmode="overlay",
                shapes=shapes,
                annotations=notes,
                height=320,
                xaxis={"title": {"text": name}},
                yaxis={"title": {"text": "rows"}},
            ),
        }
        out.append((name, fig))
    return out


def balance_figure(seeds: Sequence[Mapping[str, Any]], kept: Sequence[Mapping[str, Any]]) -> dict | None:
    before = Counter(str(r.get("label")) for r in seeds if r.get("label") is not None)
    after = before + Counter(str(r.get("label")) for r in kept if r.get("label") is not None)
    if not after:
        return None
    labels = sorted(after)
    return {
        "data": [
            {"type": "bar", "name": "seeds (before)", "x": labels, "y": [before.get(k, 0) for k in labels]},
            {
                "type": "bar",
                "name": "seeds + kept (after)",
                "x": labels,
                "y": [after.get(k, 0) for k in labels],
            },
        ],
        "layout": _layout("Label balance before and after", barmode="group"),
    }


def map_figure(
    points: Mapping[str, Any] | None, by_id: Mapping[str, Mapping[str, Any]], fields: Sequence[str]
):
    if not points or not points.get("points"):
        return None
    traces = []
    labels = sorted({str(by_id.get(p["id"], {}).get("label")) for p in points["points"]})
    palette = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
    for kind, symbol in KIND_COLOURS.items():
        for i, label in enumerate(labels):
            pts = [
                p
                for p in points["points"]
                if p["kind"] == kind and str(by_id.get(p["id"], {}).get("label")) == label
            ]
            if not pts:
                continue
            hover = []
            for p in pts:
                r = by_id.get(p["id"], {})
                t = _text(r, fields)
                t = t if len(t) <= HOVER_CHARS else t[:HOVER_CHARS] + "…"
                why = f"<br>{r.get('rejected_by')}:{r.get('reason')}" if r.get("rejected_by") else ""
                hover.append(
                    f"{html.escape(t)}<br>{kind} · {html.escape(label)} · {r.get('method') or 'seed'}{why}"
                )
            traces.append(
                {
                    "type": "scattergl" if len(points["points"]) > 1500 else "scatter",
                    "mode": "markers",
                    "name": f"{kind}: {label}",
                    "legendgroup": label,
                    "x": [p["x"] for p in pts],
                    "y": [p["y"] for p in pts],
                    "text": hover,
                    "hovertemplate": "%{text}<extra></extra>",
                    "marker": {
                        "symbol": symbol,
                        "size": 9 if kind == "seed" else 7,
                        "color": palette[i % len(palette)],
                        "opacity": 1.0 if kind == "seed" else 0.6,
                        "line": {"width": 1, "color": "#222"} if kind == "seed" else {"width": 0},
                    },
                }
            )
    ev = points.get("explained_variance") or [0, 0]
    return {
        "data": traces,
        "layout": _layout(
            f"Embedding map (PCA of {points.get('embedder')}): ● seed ◆ kept ✕ rejected, colour = label",
            height=620,
            xaxis={"title": {"text": f"PC1 ({ev[0]:.0%})"}},
            yaxis={"title": {"text": f"PC2 ({ev[1]:.0%})"}},
        ),
    }


def recipe_figure(recipe: Mapping[str, Any]) -> dict | None:
    """The proxy scores behind the recipe's choices: seed-only, each pool fraction, each method with/without."""
    if not recipe or "score" not in recipe:
        return None
    xs, ys, colours = ["seed-only"], [recipe["score"]["seed_only"]["accuracy"]], ["#757575"]
    pl = recipe.get("pseudo_label")
    if pl:
        for q, v in pl["by_fraction"].items():
            xs.append(f"pool {float(q):g}" + (" ✓" if float(q) == float(pl["fraction"]) else ""))
            ys.append(v["accuracy"])
            colours.append("#2e7d32" if float(q) == float(pl["fraction"]) else "#90caf9")
    for name, mi in (recipe.get("methods") or {}).items():
        xs += [f"{name} with", f"{name} without"]
        ys += [mi["with"]["accuracy"], mi["without"]["accuracy"]]
        colours += ["#2e7d32" if mi["kept"] else "#c62828", "#bdbdbd"]
    xs.append("chosen")
    ys.append(recipe["score"]["chosen"]["accuracy"])
    colours.append("#1b5e20")
    scale = "dev accuracy" if recipe.get("mode") == "dev" else f"{recipe.get('folds')}-fold CV accuracy"
    return {
        "data": [
            {
                "type": "bar",
                "x": xs,
                "y": ys,
                "marker": {"color": colours},
                "text": [f"{y:.3f}" for y in ys],
                "textposition": "outside",
                "name": scale,
            }
        ],
        "layout": _layout(
            f"Recipe: proxy {scale} of each choice", yaxis={"range": [0, 1.05]}, showlegend=False
        ),
    }


# -- the page --------------------------------------------------------------------------------------
CSS = """
body { font-family: FONTS; margin: 0; padding: 0 24px 40px; color: #212121; background: #fafafa; }
h1 { font-size: 24px; margin: 20px 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.meta { color: #555; font-size: 14px; } .cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 14px 0; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 10px 16px; min-width: 110px; }
.card b { display: block; font-size: 24px; } .card span { color: #666; font-size: 13px; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; } .chart { background: #fff; margin: 8px 0; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
pre { background: #fff; border: 1px solid #ddd; padding: 8px; font-size: 12px; white-space: pre-wrap; }
#rows td.text { max-width: 420px; } #rows .lineage { color: #666; font-size: 12px; max-width: 320px; }
tr.rejected td:first-child { color: #c62828; } tr.kept td:first-child { color: #2e7d32; }
.controls { margin: 8px 0; } .controls input { width: 360px; padding: 4px; font-family: inherit; }
.note { color: #777; font-style: italic; }
""".replace("FONTS", CJK_FONTS)

JS = """
window.__reportErrors = [];
window.addEventListener('error', function (e) {
  window.__reportErrors.push(String(e.message));
  document.body.setAttribute('data-js-errors', String(window.__reportErrors.length));
});
function filterRows() {
  var q = document.getElementById('q').value.toLowerCase();
  var kind = document.getElementById('kind').value;
  var shown = 0;
  document.querySelectorAll('#rows tbody tr').forEach(function (tr) {
    var ok = (!kind || tr.dataset.kind === kind) && (!q || tr.textContent.toLowerCase().indexOf(q) >= 0);
    tr.style.display = ok ? '' : 'none';
    if (ok) shown += 1;
  });
  document.getElementById('shown').textContent = shown;
}
"""


def _table(rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = []
    for r in rows[1:]:
        cells = "".join(
            f'<td class="num">{html.escape(c)}</td>'
            if numeric_from <= i < len(r) - 1 or (i == len(r) - 1 and c.isdigit())
            else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(r)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _label_rows(seeds, kept, rejected) -> list[tuple[str, ...]]:
    labels = sorted({str(r.get("label")) for r in [*seeds, *kept, *rejected] if r.get("label") is not None})
    rows: list[tuple[str, ...]] = [
        ("label", "seeds", "candidates", "kept", "rejected", "after", "top drop reasons")
    ]
    for lab in labels:
        s = sum(1 for r in seeds if str(r.get("label")) == lab)
        k = sum(1 for r in kept if str(r.get("label")) == lab)
        rej = [r for r in rejected if str(r.get("label")) == lab]
        top = Counter(f"{r.get('rejected_by')}:{r.get('reason')}" for r in rej).most_common(2)
        rows.append(
            (
                lab,
                str(s),
                str(k + len(rej)),
                str(k),
                str(len(rej)),
                str(s + k),
                ", ".join(f"{a} {b}" for a, b in top),
            )
        )
    return rows


def _sample_rows(rows: Sequence[Mapping[str, Any]], n: int) -> list[Mapping[str, Any]]:
    if len(rows) <= n:
        return list(rows)
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


def _row_html(
    r: Mapping[str, Any], kind: str, by_id: Mapping[str, Mapping[str, Any]], fields: Sequence[str]
) -> str:
    parents = [by_id.get(p) for p in r.get("parent_ids") or []]
    parent_txt = " | ".join(_text(p, fields) for p in parents if p) or (
        ", ".join(r.get("parent_ids") or []) or "—"
    )
    why = (
        f"{r.get('rejected_by')}:{r.get('reason')} ({r.get('reason_detail', '')})"
        if kind == "rejected"
        else ""
    )
    scores = ", ".join(
        f"{k} {v:.3g}" if isinstance(v, (int, float)) else f"{k} {v}"
        for k, v in (r.get("scores") or {}).items()
    )
    lineage = {
        k: r.get(k)
        for k in ("backend", "model", "params", "random_seed", "field")
        if r.get(k) not in (None, {}, "")
    }
    text = _text(r, fields)
    extra = "".join(
        f"<br><small>{html.escape(f)}: {html.escape(str(r.get(f)))}</small>"
        for f in ("input", "output", "text_pair")
        if r.get(f) and f != _field(r, fields)
    )
    cells = [
        html.escape(kind),
        html.escape(str(r.get("label") if r.get("label") is not None else "")),
        html.escape(str(r.get("method") or "")),
        f'<td class="text">{html.escape(text)}{extra}',
        html.escape(parent_txt),
        html.escape(why),
        html.escape(scores),
        f'<td class="lineage">{html.escape(r["id"])}<br>{html.escape(json.dumps(lineage, ensure_ascii=False))}',
    ]
    tds = "".join(c if c.startswith("<td") else f"<td>{c}" for c in cells)
    return f'<tr class="{kind}" data-kind="{kind}">{tds}</tr>'


def _examples(kept, rejected, by_id, fields, n: int = 4) -> str:
    picked: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for r in kept:
        picked.setdefault(f"kept:{r.get('method')}", ("kept", r))
    for r in rejected:
        picked.setdefault(f"rej:{r.get('rejected_by')}:{r.get('reason')}", ("rejected", r))
    rows = [v for k, v in picked.items() if k.startswith("kept:")][:n]
    rows += [v for k, v in picked.items() if k.startswith("rej:")][:n]
    if not rows:
        return '<div class="note">No candidates in this run.</div>'
    body = []
    for kind, r in rows:
        parent = next((by_id[p] for p in r.get("parent_ids") or [] if p in by_id), None)
        why = (
            f"{r.get('rejected_by')}:{r.get('reason')} ({r.get('reason_detail', '')})"
            if kind == "rejected"
            else ""
        )
        cells = (
            kind,
            str(r.get("method") or ""),
            str(r.get("label") or ""),
            _text(parent, fields) if parent else "—",
            _text(r, fields),
            why,
        )
        body.append(f'<tr class="{kind}">' + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("kind", "method", "label", "parent", "row", "drop reason"))
    return f'<table id="examples"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _short(path: Any) -> str:
    """An input's path, relative to the working folder when it lies inside it."""
    try:
        return str(Path(str(path)).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _draw_script(figures: Mapping[str, dict]) -> str:
    """The page's script: draw every figure into the div of its id, counting them in
    ``body[data-charts-drawn]`` (what the browser test waits for)."""
    fig_json = json.dumps(dict(figures), ensure_ascii=False).replace("</", "<\\/")
    return (
        "var FIGS = " + fig_json + ";\n"
        "var drawn = 0;\n"
        "Object.keys(FIGS).forEach(function (id) {\n"
        "  Plotly.newPlot(id, FIGS[id].data, FIGS[id].layout, {responsive: true, displaylogo: false})\n"
        "    .then(function () { drawn += 1; document.body.setAttribute('data-charts-drawn', String(drawn)); });\n"
        "});\n"
    )


def render(out: str | Path, points: Mapping[str, Any] | None = None, *, plotlyjs: str | None = None) -> str:
    """The report page for the output folder ``out`` (a string of HTML)."""
    out = Path(out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    rows = _read_jsonl(out / "augmented.jsonl")
    rejected = _read_jsonl(out / "rejected.jsonl")
    seeds = [r for r in rows if r.get("origin") == "seed"]
    kept = [r for r in rows if r.get("origin") != "seed"]
    fields = manifest.get("fields") or ["text"]
    by_id = {r["id"]: r for r in [*rows, *rejected]}
    counts = manifest.get("counts") or {}
    if points is None:
        points = load_points(out)

    class _Reasons:  # summary_rows reads .method and .rejection.stage / .code
        def __init__(self, r):
            self.method = r.get("method") or "?"
            self.rejection = type("R", (), {"stage": r.get("rejected_by"), "code": r.get("reason")})

    summary = (
        summary_rows(manifest, drop_reasons(_Reasons(r) for r in rejected))
        if counts.get("per_method")
        else [SUMMARY_HEADER]
    )

    figures: list[tuple[str, str, dict]] = []  # (section, id, figure)

    def add(section: str, fig_id: str, fig: dict | None) -> None:
        if fig is not None:
            figures.append((section, fig_id, fig))

    add("funnel", "fig-funnel", funnel_figure(manifest, rejected))
    add("funnel", "fig-methods", reasons_figure(rejected, kept, "method"))
    add("funnel", "fig-labels", reasons_figure(rejected, kept, "label"))
    for name, fig in score_figures(manifest, kept, rejected):
        add("scores", f"fig-score-{name}", fig)
    add("map", "fig-map", map_figure(points, by_id, fields))
    add("balance", "fig-balance", balance_figure(seeds, kept))
    add("recipe", "fig-recipe", recipe_figure(manifest.get("recipe") or {}))

    def charts(section: str, cls: str = "") -> str:
        divs = [f'<div class="chart" id="{fid}"></div>' for s, fid, _ in figures if s == section]
        return f'<div class="{cls}">{"".join(divs)}</div>' if cls else "".join(divs)

    emb = (manifest.get("embedder") or {}).get("model")
    lang = (manifest.get("language") or {}).get("used")
    title = f"augment run report: {out.name}"
    cards = [
        ("seeds", counts.get("seeds", len(seeds))),
        ("candidates", counts.get("candidates", len(kept) + len(rejected))),
        ("kept", counts.get("kept", len(kept))),
        ("rejected", counts.get("rejected", len(rejected))),
        ("output rows", counts.get("output_rows", len(rows))),
    ]
    if counts.get("pool"):
        cards.append(("pool", counts["pool"]))
    cards_html = "".join(
        f'<div class="card" data-count="{html.escape(k)}"><b>{v}</b><span>{html.escape(k)}</span></div>'
        for k, v in cards
    )
    recipe_txt = "\n".join(recipe_lines(manifest.get("recipe") or {})).strip()
    recipe_html = (
        f"<pre>{html.escape(recipe_txt)}</pre>"
        if recipe_txt
        else '<div class="note">No recipe in this run.</div>'
    )
    sampled_kept = _sample_rows(kept, MAX_TABLE_ROWS)
    sampled_rej = _sample_rows(rejected, MAX_TABLE_ROWS)
    row_html = "".join(
        [
            *(_row_html(r, "kept", by_id, fields) for r in sampled_kept),
            *(_row_html(r, "rejected", by_id, fields) for r in sampled_rej),
        ]
    )
    n_table = len(sampled_kept) + len(sampled_rej)
    if points:
        map_note = (
            f"{len(points['points'])} rows; PCA (numpy SVD) of {html.escape(str(points.get('embedder')))} "
            f"embeddings, from {POINTS}. Hover a point for its text."
        )
    else:
        map_note = (
            f"No map: {POINTS} is missing or out of date and the run's embedder could not be loaded "
            "(run `augment report OUT` where the embedder is available)."
        )
    draw = _draw_script({fid: fig for _, fid, fig in figures})
    js = (plotlyjs if plotlyjs is not None else _plotlyjs()).replace("</script", "<\\/script")
    data_attrs = " ".join(
        f'data-{k}="{int(counts.get(k, 0) or 0)}"'
        for k in ("seeds", "candidates", "kept", "rejected", "output_rows")
    ).replace("output_rows", "output-rows")
    inputs = ", ".join(
        f"{k}: {_short(v.get('path'))} ({v.get('rows')} rows)"
        for k, v in (manifest.get("inputs") or {}).items()
    )
    return f"""<!DOCTYPE html>
<html lang="{html.escape(str(lang or "en"))}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{CSS}</style>
<script>{JS}</script>
<script>{js}</script>
</head>
<body {data_attrs} data-charts="{len(figures)}" data-table-rows="{n_table}">
<h1>{html.escape(title)}</h1>
<div class="meta">{html.escape(str(manifest.get("task", "")))}, language {html.escape(str(lang))}, embedder
{html.escape(str(emb))}; {html.escape(inputs)}; finished {html.escape(str(manifest.get("finished_at", "")))}</div>
<div class="cards">{cards_html}</div>
<h2>Examples: one kept row per method, one rejected row per drop reason</h2>
{_examples(kept, rejected, by_id, fields)}

<h2>Funnel: candidates → kept, per method and per label</h2>
{_table(summary)}
{charts("funnel")}
<h3>Per label</h3>
{_table(_label_rows(seeds, kept, rejected))}

<h2>Score distributions per filter</h2>
<div class="note">Each filter's score on the rows that reached it; dashed red lines are the run's thresholds
(calibrated scale, see the README's Filtering section).</div>
{charts("scores", "grid")}

<h2>Embedding map</h2>
<div class="note">{map_note}</div>
{charts("map")}

<h2>Label balance before and after</h2>
{charts("balance")}

<h2>Recipe: dev-score evidence</h2>
{recipe_html}
{charts("recipe")}

<h2>Rows with lineage</h2>
<div class="controls">Search: <input id="q" type="search" placeholder="text, label, method, reason, id…"
 oninput="filterRows()"> <select id="kind" onchange="filterRows()"><option value="">kept and rejected</option>
<option value="kept">kept</option><option value="rejected">rejected</option></select>
<span id="shown">{n_table}</span> of {n_table} shown ({len(sampled_kept)} of {len(kept)} kept,
{len(sampled_rej)} of {len(rejected)} rejected, sampled evenly through the files)</div>
<table id="rows"><thead><tr><th>kind</th><th>label</th><th>method</th><th>text</th><th>parent</th>
<th>drop reason</th><th>scores</th><th>id, lineage</th></tr></thead><tbody>{row_html}</tbody></table>
<script>{draw}</script>
</body>
</html>
"""


def write_report(out: str | Path, target: str | Path | None = None, *, embed: bool = True) -> Path:
    """Render ``out``'s report to ``target`` (``OUT/report.html``) atomically. The map comes from
    ``OUT/report_points.json``; when that is missing or stale and ``embed`` is true, it is computed
    again with the run's embedder and written."""
    out = Path(out)
    points = load_points(out)
    if points is None and embed:
        try:
            points = write_points(out)
        except Exception as exc:  # noqa: BLE001 - the rest of the report is still worth having
            logger.warning("report: no embedding map (%s: %s)", type(exc).__name__, exc)
    path = Path(target) if target is not None else out / REPORT
    write_atomic(path, render(out, points))
    return path


def write_after_run(out: Path, embedder: Any = None) -> Path | None:
    """Called at the end of a run: the map and the report, and never an exception (a warning instead,
    and no stale report from an earlier run left in the folder)."""
    try:
        for name in (REPORT, POINTS):  # temp files of a run killed while writing them
            for tmp in out.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        try:
            write_points(out, manifest, embedder)
        except Exception as exc:  # noqa: BLE001
            (out / POINTS).unlink(missing_ok=True)
            logger.warning("report: no embedding map (%s: %s)", type(exc).__name__, exc)
        return write_report(out, embed=False)
    except Exception as exc:  # noqa: BLE001 - a report that fails must not fail the run
        logger.warning(
            "could not write %s (%s: %s); `augment report %s` tries again",
            out / REPORT,
            type(exc).__name__,
            exc,
            out,
        )
        (out / REPORT).unlink(missing_ok=True)
        return None


# -- augment evaluate ---------------------------------------------------------------------------
def render_evaluate(report: Mapping[str, Any], *, plotlyjs: str | None = None) -> str:
    """`augment evaluate`'s report (its ``-o`` JSON) as a page in the run report's style: the
    summary table, each variant's mean ± std per metric, and every repeat's paired change against
    seed-only."""
    summary = report.get("summary") or {}
    first = next(iter(summary.values()), {})
    metrics = [k for k, v in first.items() if isinstance(v, dict) and "mean" in v]
    names = list(summary)
    header = ("variant", "train rows", *metrics, "Δ (paired, last metric)", "improved")
    rows: list[tuple[str, ...]] = [header]
    for name, s in summary.items():
        cells = [name, f"{s.get('train_rows', 0):.0f}"]
        cells += [f"{s[m]['mean']:.3f} ± {s[m]['std']:.3f}" for m in metrics]
        d = (s.get("paired_delta") or {}).get(metrics[-1]) if metrics else None
        if d and d.get("n"):
            cells += [f"{d['mean']:+.3f} ± {d['std']:.3f}", f"{d['improved']} of {d['n']}"]
        else:
            cells += ["", ""]
        rows.append(tuple(cells))
    figures: dict[str, dict] = {}
    if metrics:
        figures["fig-variants"] = {
            "data": [
                {
                    "type": "bar",
                    "name": m,
                    "x": names,
                    "y": [summary[n][m]["mean"] for n in names],
                    "error_y": {"type": "data", "array": [summary[n][m]["std"] for n in names]},
                }
                for m in metrics
            ],
            "layout": _layout("Each variant: mean ± std over repeats", barmode="group"),
        }
        last = metrics[-1]
        deltas = [
            {
                "type": "scatter",
                "mode": "markers",
                "name": n,
                "x": [n] * len(d.get("per_repeat", [])),
                "y": d.get("per_repeat", []),
            }
            for n in names
            for d in [((summary[n].get("paired_delta") or {}).get(last) or {})]
            if d.get("per_repeat")
        ]
        if deltas:
            figures["fig-deltas"] = {
                "data": deltas,
                "layout": _layout(f"Per repeat: variant minus seed-only ({last}, same test rows)"),
            }
    draw = _draw_script(figures)
    js = (plotlyjs if plotlyjs is not None else _plotlyjs()).replace("</script", "<\\/script")
    title = f"augment evaluate: {_short(report.get('data'))}"
    test = report.get("test") or f"{report.get('test_fraction', 0):.0%} of the seeds held out per repeat"
    meta = (
        f"{report.get('task')}, {report.get('language')}, method {report.get('method')}, model "
        f"{report.get('model')}; {report.get('repeats')} repeats; test: {test}"
    )
    divs = "".join(f'<div class="chart" id="{fid}"></div>' for fid in figures)
    return f"""<!DOCTYPE html>
<html lang="{html.escape(str(report.get("language") or "en"))}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{CSS}</style>
<script>{js}</script>
</head>
<body data-variants="{len(names)}" data-charts="{len(figures)}">
<h1>{html.escape(title)}</h1>
<div class="meta">{html.escape(meta)}</div>
<h2>Seed-only against seed + augmented</h2>
{_table(rows)}
<div class="note">Δ: each repeat's variant minus that repeat's seed-only score on the same test rows.</div>
{divs}
<script>{draw}</script>
</body>
</html>
"""
