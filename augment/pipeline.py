"""`expand`: seeds -> candidates (per method) -> filters -> outputs with lineage and a manifest.

A run works in ``OUT/.work/``: every finished generation batch is appended there (one JSON line,
flushed and fsynced), so a run that crashes or is killed can be resumed with ``resume=True`` and
pays only for the batches it had not finished. Final outputs are written atomically; ``.work/`` is
removed once they are all in place.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .checkpoints import RunLock, WorkDir, check_out_dir, claim
from .config import ExpandConfig
from .context import RunContext
from .embedcache import CachedEmbedder
from .errors import BackendError, ConfigError, DataError
from .executors import Executor, make_executor
from .filters import FilterContext, seed_baseline
from .io import load_records, overlap_note, write_atomic, write_jsonl_atomic
from .language import detect_language
from .record import AUGMENTED, CLASSIFICATION, INSTRUCTION, Lineage, Record, Rejection, stable_hash
from .report import input_info as _input_info
from .report import manifest_for

logger = logging.getLogger(__name__)

DEFAULT_FIELDS = {CLASSIFICATION: ["text"], INSTRUCTION: ["instruction"]}


@dataclass
class ExpandResult:
    out_dir: Path
    seeds: list[Record]
    kept: list[Record]
    rejected: list[Record]
    manifest: dict[str, Any] = field(default_factory=dict)


# -- helpers -----------------------------------------------------------------------------------
def _stage(name: str) -> None:
    """The start of a stage, at INFO (the scale benchmark attributes memory to stages by these lines)."""
    logger.info("stage %s", name)


# -- the run ---------------------------------------------------------------------------------
def _embedder(config: ExpandConfig, language: str, timings: dict[str, Any]) -> CachedEmbedder:
    from .embedders import load_embedder, resolve_embedder_spec

    _stage("embedder")
    t = time.perf_counter()
    try:
        emb = CachedEmbedder(load_embedder(resolve_embedder_spec(config.embedder, language)))
    except BackendError as exc:  # errors are one line; a library's advice on the next lines is not
        lines = str(exc).strip().splitlines()
        if len(lines) <= 1:
            raise
        raise BackendError(lines[0]) from exc
    timings["embedder_load"] = round(time.perf_counter() - t, 3)
    return emb


def expand(
    seeds_path: str | Path,
    out_dir: str | Path,
    config: ExpandConfig | None = None,
    *,
    pool_path: str | Path | None = None,
    dev_path: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    test_path: str | Path | None = None,
) -> ExpandResult:
    """Expand a seed file into ``out_dir/augmented.jsonl``, ``rejected.jsonl`` and ``manifest.json``.

    ``dev_path``: labelled rows the recipe scores its choices on (never written to the output);
    without it the recipe cross-validates on the seeds (``config.recipe``). ``test_path``: evaluation
    rows; the decontaminate filter runs first and rejects candidates and pool rows that copy one
    (never written to the output). The output folder is locked while the run writes there
    (:class:`RunLock`).

    ``config.executor``: ``local`` runs everything in this process; ``ray`` runs the per-seed methods
    and the embedding as Ray Data map_batches (:mod:`augment.executors.raydata`) with the same outputs.
    """
    config = config or ExpandConfig()
    executor = make_executor(config)  # --executor ray without Ray: one line, before anything else
    locks: list[RunLock] = []
    try:
        return _expand(
            seeds_path,
            out_dir,
            config,
            pool_path=pool_path,
            dev_path=dev_path,
            overwrite=overwrite,
            resume=resume,
            locks=locks,
            test_path=test_path,
            executor=executor,
        )
    finally:
        executor.close()
        for lock in locks:
            lock.release()


def _load_inputs(path: str | Path, role: str, notes: list[dict[str, Any]], config: ExpandConfig, **kwargs):
    """load_records, with what the loader noted tagged by the input's role and logged."""
    found: list[dict[str, Any]] = []
    result = load_records(path, config.data, notes=found, **kwargs)
    for note in found:
        logger.info("%s: %s", note["file"], note["message"])
        notes.append({"input": role, **note})
    return result


def _load_test(
    path: str | Path | None, task: str, seeds: Sequence[Record], notes: list[dict[str, Any]], config: ExpandConfig
) -> list[Record]:
    """The --test/--eval rows (read like the seeds), for the decontaminate filter only: never written
    out. Seeds that copy a test row stay (they are the user's), with a warning and a data note."""
    if path is None:
        return []
    from .language import normalise

    _, rows = _load_inputs(path, "test", notes, config, task=task, labelled=True)
    first = DEFAULT_FIELDS[task][0]
    keys = {normalise(r.fields.get(first, "")) for r in rows}
    same = [s for s in seeds if normalise(s.fields.get(first, "")) in keys]
    if same:
        message = (
            f"{len(same)} of {len(seeds)} seeds have the text of a test row: they stay in the output, "
            "and the test score will look better than it is"
        )
        logger.warning("%s: %s", path, message)
        notes.append({"input": "test", "file": str(path), "code": "test_overlaps_seeds", "message": message})
    return rows


def _fields_and_language(config: ExpandConfig, task: str, seeds: Sequence[Record]) -> tuple[list[str], str, str]:
    """The prelude every command shares: the fields to augment (checked against the rows), and the
    language detected from the seeds and the one used (the configured one, unless ``auto``)."""
    fields = config.data.augment_fields or DEFAULT_FIELDS[task]
    for f in fields:
        if not any(f in s.fields for s in seeds):
            raise ConfigError(f"data.augment_fields: {f!r} is not a field of {task} rows")
    detected = detect_language([s.fields[fields[0]] for s in seeds])
    return fields, detected, detected if config.language == "auto" else config.language


def _expand(
    seeds_path: str | Path,
    out_dir: str | Path,
    config: ExpandConfig | None,
    *,
    pool_path: str | Path | None,
    dev_path: str | Path | None,
    overwrite: bool,
    resume: bool,
    locks: list[RunLock],
    executor: Executor,
    test_path: str | Path | None = None,
) -> ExpandResult:
    from . import __version__
    from .methods import build_method

    config = config or ExpandConfig()
    out = Path(out_dir)
    started = datetime.now(timezone.utc)
    timings: dict[str, Any] = {}
    asked_resume = resume
    state = check_out_dir(out, overwrite=overwrite, resume=resume)
    if resume and state == "start":
        logger.info("%s: nothing to resume there yet; starting the run", out)
    resume = state == "resume"

    # 1. load and validate everything before writing anything
    _stage("load")
    t = time.perf_counter()
    seeds_path = Path(seeds_path)
    notes: list[dict[str, Any]] = []
    task, seeds = _load_inputs(seeds_path, "seeds", notes, config, task=config.task, labelled=True)
    pool: list[Record] = []
    if pool_path is not None:
        _, pool = _load_inputs(pool_path, "pool", notes, config, labelled=False)
    dev: list[Record] = []
    if dev_path is not None:
        if task != CLASSIFICATION:
            raise ConfigError("--dev: a dev file is used to choose classification data; this run is " + task)
        _, dev = _load_inputs(dev_path, "dev", notes, config, task=task, labelled=True)
    for role, path, rows in (("pool", pool_path, pool), ("dev", dev_path, dev)):
        note = overlap_note(seeds, rows, path, role) if rows and task == CLASSIFICATION else None
        if note is not None:
            logger.warning("%s: %s", path, note["message"])
            notes.append({"input": role, **note})
    test = _load_test(test_path, task, seeds, notes, config)
    fields, detected, language = _fields_and_language(config, task, seeds)
    timings["load"] = round(time.perf_counter() - t, 3)

    recipe_mode, recipe_why = _recipe_mode(config, task, seeds, bool(dev))

    # 2. build methods (fails on unknown names or unsupported languages before any output exists)
    _stage("setup")
    t = time.perf_counter()
    names = method_names(config, language, task, has_pool=bool(pool))
    ctx = RunContext(
        seeds=seeds,
        language=language,
        task=task,
        fields=fields,
        seed=config.seed,
        pool=pool,
        dev=dev,
        generator_config=config.generator,
        recipe_chooses=recipe_mode != "off",
        response_cache=_response_cache(config),
    )
    methods = []
    for name in names:
        m = build_method(name, config.methods.method_params(name))
        executor.setup(m, ctx)  # ray: per-seed methods load their models in the actors only
        methods.append(m)
    timings["setup"] = round(time.perf_counter() - t, 3)

    inputs = {"seeds": _input_info(seeds_path, len(seeds))}
    if pool_path is not None:
        inputs["pool"] = _input_info(Path(pool_path), len(pool))
    if dev_path is not None:
        inputs["dev"] = _input_info(Path(dev_path), len(dev))
    if test_path is not None:
        inputs["test"] = _input_info(Path(test_path), len(test))
    fingerprint = stable_hash(
        __version__,
        config.semantic_dict(),
        task,
        language,
        names,
        fields,
        {k: v["sha256"] for k, v in inputs.items()},
    )

    if state == "finished":
        return _finished(out, fingerprint)

    from .embedders import resolve_embedder_spec

    # Ray starts (or is reached) and the embedder loads before anything is written: a cluster that
    # does not answer or a model that cannot load leaves no folder behind
    t = time.perf_counter()
    executor.start(ctx, resolve_embedder_spec(config.embedder, language))
    if executor.kind != "local":
        timings["executor_start"] = round(time.perf_counter() - t, 3)
    embedder = ctx.embedder = _embedder(config, language, timings)

    # 3. generate, checkpointing every batch, in a folder no other run writes to meanwhile
    claim(out, locks, clear=overwrite and not resume)
    if check_out_dir(out, overwrite=overwrite, resume=asked_resume, locked=True) != state:
        raise ConfigError(f"{out}: another run changed this folder while this one started; run it again")
    work = WorkDir(out, fingerprint, resume)
    # the per-seed methods (on Ray, one map over every method's batches); then, in one pass (a map on
    # Ray), the vectors that the pool labelling, the filters and the recipe need; then the pool
    timings["generate"] = {}
    by_step: dict[str, list[Record]] = {}
    reused = _generate(methods, fields, seeds, work, config, executor, by_step, timings)
    _stage("embed")
    t = time.perf_counter()
    labelled = pool if any(m.role == "pool" for m in methods) else []
    made = [r for rows in by_step.values() for r in rows]
    executor.embed(embedder, _texts_to_embed(seeds, made, labelled, fields, test, dev, recipe_mode))
    t_embed = time.perf_counter() - t
    reused += _label_pool(methods, fields, seeds, pool, work, config, embedder, by_step, timings)
    candidates = [r for m in methods for f in fields for r in by_step[f"{m.name}-{f}"]]

    # 4. filter: every candidate at once (dedup against everything kept, novelty, quotas)
    _stage("filter")
    kept, rejected, filter_info = run_filters(
        seeds, candidates, fields, language, config, embedder, timings, eval_rows=test
    )
    timings["embed"] = round(timings["embed"] + t_embed, 3)

    # 5. keep what helps a model: the recipe, scored on dev or by cross-validation
    recipe_info: dict[str, Any] = {"mode": recipe_mode, "why": recipe_why}
    if recipe_mode != "off" and kept:
        _stage("recipe")
        t = time.perf_counter()
        kept, dropped, chosen = _run_recipe(seeds, kept, dev, fields[0], recipe_mode, config, embedder, methods)
        rejected.extend(dropped)
        recipe_info.update(chosen)
        timings["recipe"] = round(time.perf_counter() - t, 3)

    # 6. write
    manifest = {
        "fingerprint": fingerprint,
        "inputs": inputs,
        "data_notes": notes,
        "task": task,
        "language": {"used": language, "detected": detected, "configured": config.language},
        "fields": fields,
        "methods": [
            {"name": m.name, "backend": m.backend, "model": m.model, "params": m.params()} for m in methods
        ],
        **filter_info,
        "recipe": recipe_info,
        "counts": {"pool": len(pool), "dev": len(dev)},
        "resume": {"resumed": resume, "seeds_reused": reused},
        "generation": executor.usage(ctx),
        "executor": executor.info(),
    }
    result = write_outputs(out, seeds, candidates, kept, rejected, config, manifest, started, timings)
    work.remove()
    return result


def _generate(
    methods: Sequence[Any],
    fields: Sequence[str],
    seeds: Sequence[Record],
    work: WorkDir,
    config: ExpandConfig,
    executor: Executor,
    by_step: dict[str, list[Record]],
    timings: dict[str, Any],
) -> int:
    """The per-seed methods' candidates into ``by_step`` (per method and field, in seed order,
    resumed or not); returns how many seeds earlier runs had done. The executor gets one job per
    method and field, and every batch is checkpointed as it comes back, in whatever order."""
    from .executors import Job

    bs = config.batch_size
    batches = [seeds[i : i + bs] for i in range(0, len(seeds), bs)]
    jobs: list[Job] = []
    made: dict[str, dict[str, list[Record]]] = {}
    reused = 0
    for method in (m for m in methods if m.role != "pool"):
        for f in fields:
            step = f"{method.name}-{f}"
            done = work.done(step)
            made[step] = dict(done)
            reused += sum(1 for s in seeds if s.id in done)

            def on_block(batch: Sequence[Record], recs: list[Record], step: str = step) -> None:
                mine: dict[str, list[Record]] = {}
                for r in recs:
                    mine.setdefault(r.parent_ids[0], []).append(r)
                if recs:  # a seed is done when it produced rows; a budget stop leaves the rest for --resume
                    work.append(step, [s.id for s in batch if s.id in mine], recs)
                made[step].update(mine)

            todo = [[s for s in batch if s.id not in done] for batch in batches]
            todo = [b for b in todo if b]
            jobs.append(Job(method, f, todo, on_block, total=len(seeds), reused=len(seeds) - sum(map(len, todo))))
    timings["generate"].update(executor.generate(jobs, config.methods.n_per_seed, config.seed))
    for step, rows in made.items():
        by_step[step] = [r for s in seeds for r in rows.get(s.id, [])]
    return reused


def _label_pool(
    methods: Sequence[Any],
    fields: Sequence[str],
    seeds: Sequence[Record],
    pool: Sequence[Record],
    work: WorkDir,
    config: ExpandConfig,
    embedder: CachedEmbedder,
    by_step: dict[str, list[Record]],
    timings: dict[str, Any],
) -> int:
    """The pool methods' candidates into ``by_step`` (labelled in the driver, on vectors the executor
    embedded); returns how many pool rows an earlier run had labelled."""
    reused = 0
    for method in (m for m in methods if m.role == "pool"):
        _stage(f"generate:{method.name}")
        t = time.perf_counter()
        for f in fields:
            step = f"{method.name}-{f}"
            done = work.done(step)
            if all(p.id in done for p in pool):
                recs = [r for p in pool for r in done[p.id]]
                reused += len(pool)
                if recs:  # the manifest names the model that labelled them, as an unbroken run's does
                    method.model = recs[0].lineage.model
                    method.model_revision = recs[0].lineage.model_revision
            else:
                recs = method.label_pool(pool, seeds, f, embedder, config.seed)
                work.append(step, [p.id for p in pool], recs)
            by_step[step] = recs
        timings["generate"][method.name] = round(time.perf_counter() - t, 3)
    return reused


def _texts_to_embed(
    seeds: Sequence[Record],
    candidates: Sequence[Record],
    pool: Sequence[Record],
    fields: Sequence[str],
    test: Sequence[Record],
    dev: Sequence[Record],
    recipe_mode: str,
) -> list[str]:
    """What the pool labelling, the filters and the recipe embed: the seeds' and test rows' texts per
    field, the pool's texts, each live candidate's rewritten field (and first field, for the recipe),
    the dev texts (recipe on dev)."""
    texts = [s.fields.get(f, "") for f in fields for s in seeds]
    texts += [r.fields.get("text", "") for r in pool]
    texts += [t for f in fields for t in (r.fields.get(f, "") for r in test) if t.strip()]
    for c in candidates:
        if c.rejection is None:
            texts.append(c.fields[c.lineage.field or fields[0]])
            texts.append(c.fields.get(fields[0], ""))
    if recipe_mode == "dev":
        texts += [d.fields.get(fields[0], "") for d in dev]
    return texts


def _finished(out: Path, fingerprint: str) -> ExpandResult:
    """``--resume`` on a completed run: done if it is the same run, else a clear refusal."""
    def records(name: str) -> list[Record]:
        lines = (out / name).read_text(encoding="utf-8").splitlines()
        return [Record.from_dict(json.loads(line)) for line in lines if line.strip()]

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"{out}: holds a finished run with other inputs or settings (pass --overwrite to replace it)"
        )
    logger.info("%s: this run is already complete; nothing to resume", out)
    rows, rejected = records("augmented.jsonl"), records("rejected.jsonl")
    seeds = [r for r in rows if r.origin == "seed"]
    kept = [r for r in rows if r.origin != "seed"]
    return ExpandResult(out_dir=out, seeds=seeds, kept=kept, rejected=rejected, manifest=manifest)


def _recipe_mode(config: ExpandConfig, task: str, seeds: Sequence[Record], has_dev: bool) -> tuple[str, str]:
    from .recipe import usable

    if task != CLASSIFICATION:
        return "off", "the recipe chooses classification data only"
    mode, why = usable(config.recipe.mode, seeds, has_dev, config.recipe.folds)
    if config.recipe.mode != "off" and mode == "off":
        logger.warning("recipe: %s; every row the filters pass is kept", why)
    return mode, why


def _run_recipe(
    seeds: list[Record],
    kept: list[Record],
    dev: list[Record],
    field_name: str,
    mode: str,
    config: ExpandConfig,
    embedder: Any,
    methods: Sequence[Any],
) -> tuple[list[Record], list[Record], dict[str, Any]]:
    """Drop rows that copy a dev text, then let the proxy learner choose (augment/recipe.py)."""
    from .recipe import choose

    dev_texts = {d.fields.get(field_name, "") for d in dev}
    overlap = [c for c in kept if c.fields.get(field_name, "") in dev_texts]
    dropped = [
        c.rejected(Rejection("recipe", "in_dev", "the same text is in the dev file (it would flatter the score)"))
        for c in overlap
    ]
    kept = [c for c in kept if c.fields.get(field_name, "") not in dev_texts]
    relabel = next((m.relabeller(config.seed) for m in methods if m.role == "pool"), None)
    res = choose(
        seeds,
        kept,
        embedder.encode,
        field_name=field_name,
        mode=mode,
        dev=dev,
        folds=config.recipe.folds,
        seed=config.seed,
        relabel=relabel,
        min_gain=config.recipe.min_gain,
    )
    return res.kept, dropped + res.rejected, res.info


def _response_cache(config: ExpandConfig):
    from .cache import cache_dir
    from .generators import ResponseCache

    return ResponseCache(cache_dir() / "responses.sqlite") if config.generator.cache else None


def method_names(config: ExpandConfig, language: str, task: str, *, has_pool: bool) -> list[str]:
    """The methods a run uses (augment/methods/defaults.py holds the policy)."""
    from .methods.defaults import methods_for_run

    return methods_for_run(config.methods.names, language, task, has_pool=has_pool)


def plan(
    seeds_path: str | Path, config: ExpandConfig, *, pool_path: str | Path | None = None
) -> dict[str, Any]:
    """What a run would do, without loading any model: per method, the LLM calls and token estimates."""
    from .methods import SeedMethod, build_method

    task, seeds = load_records(seeds_path, config.data, task=config.task, labelled=True)
    fields, _, language = _fields_and_language(config, task, seeds)
    names = method_names(config, language, task, has_pool=pool_path is not None)
    llm = _planned_llm(config, language)
    ctx = RunContext(
        seeds=seeds, language=language, task=task, fields=fields, seed=config.seed,
        generator_config=config.generator, planning=True,
    )
    rows = []
    for name in names:
        m = build_method(name, config.methods.method_params(name))
        entry: dict[str, Any] = {"method": name, "seeds": len(seeds)}
        if type(m).plan is not SeedMethod.plan:  # methods that call models estimate their calls
            m.setup(ctx)  # ctx.planning: setup() loads no model
            entry.update(m.plan(seeds, fields[0], config.methods.n_per_seed))
        if "calls" in entry:  # an LLM method: the run's one generator
            g = config.generator
            embedded = g.backend == "auto" and not g.model and not g.base_url
            entry["backend"], entry["model"] = ("llama.cpp (embedded)" if embedded else g.backend), llm
        else:
            entry["backend"] = getattr(m, "backend", None)
            if getattr(m, "model", None):
                entry["model"] = m.model
        rows.append(entry)
    return {"task": task, "language": language, "methods": rows, "generator": config.generator.backend}


def planned_methods(
    seeds_path: str | Path, config: ExpandConfig, *, pool_path: str | Path | None = None
) -> list[str]:
    """The methods a run on these seeds would use, resolved as the run resolves them (task and
    language from the data, then :func:`~augment.methods.defaults.methods_for_run`)."""
    task, seeds = load_records(seeds_path, config.data, task=config.task, labelled=True)
    _, _, language = _fields_and_language(config, task, seeds)
    return method_names(config, language, task, has_pool=pool_path is not None)


def _planned_llm(config: ExpandConfig, language: str) -> str | None:
    """The LLM a run would load, by name, without loading it: the configured model or URL, else the
    embedded default for the language."""
    g = config.generator
    if g.model:
        return str(g.model)
    from .errors import AugmentError
    from .generators.defaults import default_model
    from .generators.urls import redact_url

    if g.base_url:
        return f"(served at {redact_url(g.base_url)})"

    try:
        return default_model(language)[1]
    except AugmentError as exc:
        return f"(none: {exc})"


def write_outputs(
    out: Path,
    seeds: list[Record],
    candidates: list[Record],
    kept: list[Record],
    rejected: list[Record],
    config: ExpandConfig,
    manifest: dict[str, Any],
    started: datetime,
    timings: dict[str, Any],
) -> ExpandResult:
    """augmented.jsonl (seeds + kept), rejected.jsonl and manifest.json, each written atomically."""
    _stage("write")
    t = time.perf_counter()
    write_jsonl_atomic(out / "augmented.jsonl", [*seeds, *kept])
    write_jsonl_atomic(out / "rejected.jsonl", rejected)
    timings["write"] = round(time.perf_counter() - t, 3)
    full = manifest_for(out, seeds, candidates, kept, rejected, config.to_dict(), manifest, started, timings)
    write_atomic(out / "manifest.json", json.dumps(full, ensure_ascii=False, indent=2) + "\n")
    from .html_report import write_after_run  # report.html; a report that fails only logs a warning

    write_after_run(out)
    return ExpandResult(out_dir=out, seeds=seeds, kept=kept, rejected=rejected, manifest=full)


def run_filters(
    seeds: list[Record],
    candidates: list[Record],
    fields: list[str],
    language: str,
    config: ExpandConfig,
    embedder: Any,
    timings: dict[str, Any],
    *,
    eval_rows: Sequence[Record] = (),
) -> tuple[list[Record], list[Record], dict[str, Any]]:
    """Run the configured chain per field; the first failure is the candidate's reason. With
    ``eval_rows`` (--test/--eval) the decontaminate filter runs first."""
    from .filters import build_chain, make_filter

    fc = config.filters
    chain = build_chain(fc, language, seed=config.seed)
    if eval_rows:
        chain = [f for f in chain if f.name != "decontaminate"]
        first = make_filter("decontaminate", fc.step_config("decontaminate"), language=language, seed=config.seed)
        chain.insert(0, first)
    rejected = [c for c in candidates if c.rejection is not None]
    alive = [c for c in candidates if c.rejection is None]
    per_filter: dict[str, float] = {}
    t_embed = 0.0
    baselines: dict[str, float] = {}
    kept: list[Record] = []
    for f in fields:
        pending = [c for c in alive if (c.lineage.field or fields[0]) == f]
        t = time.perf_counter()
        seed_vecs = embedder.encode([s.fields.get(f, "") for s in seeds])
        ctx = FilterContext(seeds=seeds, field=f, seed_vectors=seed_vecs)
        ctx.baseline = baselines[f] = round(seed_baseline(seed_vecs, seed=config.seed), 4)
        if eval_rows and pending:
            ctx.eval_texts = [t for t in (r.fields.get(f, "") for r in eval_rows) if t.strip()]
            ctx.eval_vectors = embedder.encode(list(ctx.eval_texts)) if ctx.eval_texts else None
        t_embed += time.perf_counter() - t
        for flt in chain:
            if not pending:
                break
            if flt.needs_embeddings:
                missing = [c for c in pending if c.id not in ctx.candidate_vectors]
                if missing:
                    t = time.perf_counter()
                    vecs = embedder.encode([c.fields[f] for c in missing])
                    ctx.candidate_vectors.update({c.id: v for c, v in zip(missing, vecs, strict=True)})
                    t_embed += time.perf_counter() - t
            t = time.perf_counter()
            verdicts = flt(pending, ctx)
            per_filter[flt.name] = round(per_filter.get(flt.name, 0.0) + time.perf_counter() - t, 3)
            survivors = []
            for cand, v in zip(pending, verdicts, strict=True):
                if v.score is not None:
                    cand = cand.with_scores(**{flt.name: v.score})
                if v.keep:
                    survivors.append(cand)
                else:
                    rejected.append(cand.rejected(Rejection(flt.name, v.code, v.detail)))
            pending = survivors
        kept.extend(pending)
    timings["embed"] = round(t_embed, 3)
    timings["filter"] = per_filter
    info = {
        "embedder": {"model": embedder.model_id, "revision": embedder.revision},
        "filters": {
            "order": [flt.name for flt in chain],
            "thresholds": {k: v for k, v in dataclasses.asdict(fc).items() if k != "chain"},
            "scale": "calibrated: (cosine - baseline) / (1 - baseline)",
            "baseline_cosine": baselines,
        },
    }
    return kept, rejected, info


def filter_file(
    candidates_path: str | Path,
    reference_path: str | Path,
    out_dir: str | Path,
    config: ExpandConfig | None = None,
    *,
    overwrite: bool = False,
    test_path: str | Path | None = None,
) -> ExpandResult:
    """Run the filter chain on any candidate file against reference seeds (``augment filter``).
    ``test_path``: evaluation rows that candidates must not copy (the decontaminate filter, first).

    Candidates written by `augment expand` keep their lineage (parents, method, model). Rows from
    another tool are read like seeds (same columns) and become candidates of method ``external``
    with no parent; the parent-based checks (length ratio, similarity band) do not apply to them.
    """
    locks: list[RunLock] = []
    try:
        return _filter_file(
            candidates_path, reference_path, out_dir, config, overwrite=overwrite, locks=locks,
            test_path=test_path,
        )
    finally:
        for lock in locks:  # the lock file is the only thing `filter` keeps in OUT/.work
            shutil.rmtree(lock.path.parent, ignore_errors=True)
            lock.release()


def _filter_file(
    candidates_path: str | Path,
    reference_path: str | Path,
    out_dir: str | Path,
    config: ExpandConfig | None,
    *,
    overwrite: bool,
    locks: list[RunLock],
    test_path: str | Path | None = None,
) -> ExpandResult:
    from .io import read_rows

    config = config or ExpandConfig()
    out = Path(out_dir)
    started = datetime.now(timezone.utc)
    timings: dict[str, Any] = {}
    check_out_dir(out, overwrite=overwrite, resume=False)
    t = time.perf_counter()
    task, seeds = load_records(reference_path, config.data, task=config.task, labelled=True)
    loaded = read_rows(candidates_path)
    if {"task", "origin", "parent_ids"} <= set(loaded.columns):
        candidates = []
        for i, row in enumerate(loaded.rows):
            if row.get("origin") == "seed":
                continue
            try:
                rec = Record.from_dict({k: v for k, v in row.items() if v is not None or k == "label"})
            except (KeyError, TypeError) as exc:
                raise DataError(f"{loaded.where(i)}: not an augment-engine row ({exc})") from None
            candidates.append(dataclasses.replace(rec, rejection=None, scores={}))
    else:
        _, rows = load_records(candidates_path, config.data, task=task, labelled=True)
        candidates = [
            dataclasses.replace(
                r,
                id="x-" + r.id[2:],
                origin=AUGMENTED,
                method="external",
                lineage=Lineage(field=DEFAULT_FIELDS[task][0]),
            )
            for r in rows
        ]
    notes: list[dict[str, Any]] = []
    test = _load_test(test_path, task, seeds, notes, config)
    fields, detected, language = _fields_and_language(config, task, seeds)
    timings["load"] = round(time.perf_counter() - t, 3)
    embedder = _embedder(config, language, timings)  # before the folder: a failed load leaves none
    claim(out, locks, clear=overwrite)
    kept, rejected, filter_info = run_filters(
        seeds, candidates, fields, language, config, embedder, timings, eval_rows=test
    )
    inputs = {
        "reference": _input_info(Path(reference_path), len(seeds)),
        "candidates": _input_info(Path(candidates_path), len(candidates)),
    }
    if test_path is not None:
        inputs["test"] = _input_info(Path(test_path), len(test))
    manifest = {
        "inputs": inputs,
        **({"data_notes": notes} if notes else {}),
        "task": task,
        "language": {"used": language, "detected": detected, "configured": config.language},
        "fields": fields,
        **filter_info,
    }
    return write_outputs(out, seeds, candidates, kept, rejected, config, manifest, started, timings)
