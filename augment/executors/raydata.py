"""``--executor ray``: the per-seed methods and the embedding as Ray Data ``map_batches``.

**Map.** The per-seed methods run over one dataset with one row per batch of the run (the batches of
``--batch-size``, less the seeds a resumed run already has), so every method sees exactly the batches
the local executor gives it and no row depends on where its batch ran. :class:`MethodActor` builds a
method once per actor (``build_method(name, params)`` + ``setup`` on a
:class:`~augment.context.RunContext` made from picklable inputs: seeds, language, task, fields, run
seed, generator config), so each actor loads a method's models once; the rows are ordered method by
method, so an actor holds one method's models at a time, and a worker starts (and imports the
libraries, seconds each) once per run rather than once per method. Rows come back as JSON strings of
``Record.to_dict()`` (simple Arrow schemas) with the actor's call and token counts for the manifest,
and a worker's error comes back as data and is raised in the driver as the engine's own one-line
error. Texts to embed go through :class:`EmbedActor` the same way (one pass per run, before the pool
labelling), and the vectors are put into the driver's :class:`~augment.embedcache.CachedEmbedder`,
where the pool labelling, the filters and the recipe find them.

**Driver.** Each finished batch is checkpointed (``OUT/.work``) as it arrives, in whatever order
batches finish, so ``--resume`` works as with the local executor and never sends a finished seed
again. The pool labelling (its vectors come from the map) and the global steps (dedup against
everything kept, novelty, diversity, quotas, the recipe, writing) run in the driver on the aggregate.

**Token budget** (``--max-tokens-total``): actors cannot share the driver's
:class:`~augment.context.TokenBudget`, so the driver sums the tokens that returned batches report and
stops consuming once the sum reaches the limit; the seeds not reached are left for ``--resume``, as
locally, and an LLM method that would start with the budget spent does not start. Each actor's own
budget is what was left when generation started, so it stops by itself too. The overshoot is bounded
by the batches in flight when the limit is reached: at most one per actor
(``max_tasks_in_flight_per_actor=1`` while a budget is set), each at most one batch of prompts (and
never more than the budget left at the start). Their rows are dropped; with the response cache on, a
``--resume`` gets their answers back from the cache without spending the tokens again.

**Ray itself** is started here with this machine's CPUs (``ray_cpus``), no dashboard and quiet logs,
and shut down at the end; with ``ray_address`` (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) the run
joins a running cluster and leaves it running; a Ray the caller already initialised is used as it
is. An actor that dies (out of memory) is restarted by Ray Data and its batch retried. Workers get the offline and cache environment variables (``HF_HUB_OFFLINE``, ``AUGMENT_*``, ...)
through ``runtime_env``; an API key named by ``generator.api_key_env`` is *not* copied into the
cluster's job metadata: set it on the nodes (a Ray started here inherits it).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..embedcache import chunks
from ..errors import AugmentError, BackendError, ConfigError
from . import Job

if TYPE_CHECKING:
    from ..config import ExpandConfig
    from ..context import RunContext
    from ..embedcache import CachedEmbedder
    from ..methods import Method

logger = logging.getLogger(__name__)

INSTALL = "pip install augment-engine[ray]"
ENV_PREFIXES = ("AUGMENT_", "HF_", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS_", "TORCH_HOME", "NLTK_DATA")
ENV_NAMES = ("TOKENIZERS_PARALLELISM", "PYTHONHASHSEED")
USAGE_COUNTS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens")


def import_ray() -> Any:
    """``ray`` (with Ray Data), or the one-line error that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(f"--executor ray: Ray is not installed ({INSTALL})") from None
    return ray


def worker_env() -> dict[str, str]:
    """The environment variables workers need to run offline on the same caches as the driver."""
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES) or k in ENV_NAMES}


def check_address(address: str) -> None:
    """Refuse at once an address no Ray cluster answers at (``ray.init`` would retry for minutes)."""
    if address == "auto" or address.startswith("ray://"):
        return  # Ray says at once when there is none (auto) or the client cannot connect
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(
            f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
            "start one with `ray start --head` or leave --ray-address out to run one here"
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def error_payload(exc: BaseException) -> str:
    """A worker's exception as data (Ray carries only a traceback's text across; the driver raises
    the engine's own error class again from this)."""
    import traceback

    return json.dumps(
        {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()},
        ensure_ascii=False,
    )


def raise_payload(payload: str, what: str) -> None:
    """Raise a worker's error in the driver: an engine error as itself (one line), anything else as
    a BackendError naming it; the worker's traceback goes to the log (``-v``)."""
    from .. import errors

    err = json.loads(payload)
    logger.debug("%s: the worker's traceback:\n%s", what, err["traceback"])
    cls = getattr(errors, err["type"], None)
    if isinstance(cls, type) and issubclass(cls, AugmentError):
        raise cls(err["message"])
    lines = [ln for ln in err["message"].splitlines() if ln.strip()]
    raise BackendError(f"{what} (ray worker): {err['type']}: {lines[0] if lines else ''}".rstrip(": "))


def _set_threads(cpus: int) -> None:
    """Model libraries in an actor use the actor's CPUs, not the whole node's."""
    import sys

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "AUGMENT_LLM_THREADS"):
        os.environ[var] = str(cpus)
    if "torch" in sys.modules:  # only where a method or embedder loaded torch: importing it costs
        import torch

        torch.set_num_threads(cpus)


class MethodActor:
    """The run's per-seed methods in one worker: ``__call__`` runs batches of seeds, each row naming
    its method and field. A method is built (``build_method`` + ``setup``) the first time a row of it
    arrives and kept while its rows come; the rows arrive method by method, so an actor holds one
    method's models at a time (and the run's generator, shared by its LLM methods as locally)."""

    def __init__(
        self, params: dict[str, dict[str, Any]], ctx: dict[str, Any], cache: bool, n: int, run_seed: int,
        cpus: int,
    ) -> None:
        from ..context import RunContext

        _set_threads(cpus)
        response_cache = None
        if cache:
            from ..cache import cache_dir
            from ..generators import ResponseCache

            response_cache = ResponseCache(cache_dir() / "responses.sqlite")
        self.ctx = RunContext(**ctx, response_cache=response_cache)
        self.params, self.n, self.run_seed, self.cpus = params, n, run_seed, cpus
        self.method: Any = None

    def _method(self, name: str) -> Any:
        if self.method is None or self.method.name != name:
            import gc

            from ..methods import build_method

            self.method = None
            gc.collect()  # the last method's models go before the next one's load
            method = build_method(name, self.params[name])
            method.setup(self.ctx)
            _set_threads(self.cpus)  # torch may have come with the method
            self.method = method
        return self.method

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {k: [] for k in ("j", "k", "records", "usage", "state", "error")}
        for j, k, name, field, idx in zip(
            batch["j"], batch["k"], batch["method"], batch["field"], batch["seeds"], strict=True
        ):
            records, usage, state, error = "[]", "{}", "{}", ""
            try:
                m = self._method(str(name))
                seeds = [self.ctx.seeds[i] for i in json.loads(idx)]
                before = self.ctx.usage()
                recs = m.generate(seeds, str(field), self.n, self.run_seed)
                records = json.dumps([r.to_dict() for r in recs], ensure_ascii=False)
                usage = json.dumps(_delta(before, self.ctx.usage()))
                state = json.dumps({"backend": m.backend, "model": m.model, "model_revision": m.model_revision})
            except Exception as exc:  # returned, not raised: Ray would keep only its traceback's text
                error = error_payload(exc)
            for key, value in zip(out, (int(j), int(k), records, usage, state, error), strict=True):
                out[key].append(value)
            if error:
                break
        return out


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for owner, now in after.items():
        was = before.get(owner, {})
        out[owner] = {**now, **{k: now[k] - was.get(k, 0) for k in USAGE_COUNTS}}
    return out


class EmbedActor:
    """The run's embedder, loaded once per actor; ``__call__`` embeds a batch of texts."""

    def __init__(self, spec: str, cpus: int) -> None:
        _set_threads(cpus)
        self.spec, self.cpus = spec, cpus
        self.embedder: Any = None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        texts = [str(t) for item in batch["texts"] for t in json.loads(str(item))]  # one chunk per call
        try:
            if self.embedder is None:  # here, not in __init__: a failed load comes back as data
                from ..embedders import load_embedder

                self.embedder = load_embedder(self.spec)
                _set_threads(self.cpus)
            vecs = np.asarray(self.embedder.encode(texts))
        except Exception as exc:
            return {"text": texts[:1], "vec": np.zeros((1, 1), np.float32), "model": [""], "error": [error_payload(exc)]}
        n = len(texts)
        return {"text": texts, "vec": vecs, "model": [str(self.embedder.model_id)] * n, "error": [""] * n}


class RayExecutor:
    """See the module docstring."""

    kind = "ray"

    def __init__(self, config: ExpandConfig) -> None:
        self.ray = import_ray()
        self.config = config
        self.address = config.ray_address
        if self.address:  # before any input is read or model loaded
            check_address(self.address)
        self.actor_cpus = config.ray_actor_cpus
        self.owned = False
        self.cpus = 0
        self.actors: dict[str, int] = {}
        self.spent = 0
        self.limit = config.generator.max_tokens_total
        self._usage: dict[str, dict[str, Any]] = {}
        self._ctx: dict[str, Any] = {}
        self._index: dict[str, int] = {}
        self._spec = ""
        self._told = False

    # -- the driver's side -----------------------------------------------------------------------
    def setup(self, method: Method, ctx: RunContext) -> None:
        """Pool methods run in the driver; per-seed methods are checked here without loading a model
        (a dry run's setup), and load their models in the actors."""
        method.setup(ctx if method.role == "pool" else replace(ctx, planning=True))

    def start(self, ctx: RunContext, embedder_spec: str) -> None:
        ray = self.ray
        self._ctx = {
            "seeds": list(ctx.seeds),
            "language": ctx.language,
            "task": ctx.task,
            "fields": list(ctx.fields),
            "seed": ctx.seed,
            "generator_config": ctx.generator_config,
            "recipe_chooses": ctx.recipe_chooses,
        }
        self._index = {s.id: i for i, s in enumerate(ctx.seeds)}
        self._spec = embedder_spec
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.ERROR,
                "log_to_driver": True,
                "runtime_env": {"env_vars": worker_env()},
            }
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = self.config.ray_cpus or os.cpu_count() or 1
            try:
                ray.init(**kwargs)
            except Exception as exc:  # Ray's errors run to several lines of advice
                where = f"--ray-address {self.address}" if self.address else "ray"
                raise ConfigError(f"{where}: {_first_line(exc)}") from None
            self.owned = True
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "bars disabled"
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        self.cpus = int(ray.cluster_resources().get("CPU", 1))
        logger.info(
            "ray: %s, %d CPUs, %d per actor", self.address or ("started here" if self.owned else "running"),
            self.cpus, self.actor_cpus,
        )

    def _pool(self, items: int, what: str) -> Any:
        """Actors for ``items`` blocks: as many as the cluster's CPUs allow, at most one per block."""
        size = max(1, min(items, self.cpus // self.actor_cpus))
        self.actors[what] = max(self.actors.get(what, 0), size)
        kwargs: dict[str, Any] = {"size": size}
        if self.limit is not None:  # a budget: one batch in flight per actor bounds the overshoot
            kwargs["max_tasks_in_flight_per_actor"] = 1
        return self.ray.data.ActorPoolStrategy(**kwargs)

    def _rows(self, dataset: Any, what: str) -> Iterable[dict[str, Any]]:
        """The mapped dataset's batches as they finish; an error the workers returned is raised as
        the engine's own, and one Ray raised (a worker that died) as a one-line BackendError."""
        try:
            for block in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for payload in block["error"]:
                    if payload:
                        raise_payload(str(payload), what)
                yield block
        except AugmentError:
            raise
        except Exception as exc:  # Ray's own: the worker's traceback is text in the message
            logger.debug("%s: %s", what, exc)
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise BackendError(f"{what} (ray): {lines[-1] if lines else type(exc).__name__}") from None

    # -- generation --------------------------------------------------------------------------------
    def _budget_spent(self, who: str) -> bool:
        if self.limit is None or self.spent < self.limit:
            return False
        if not self._told:
            self._told = True
            logger.warning("%s: the run's token budget (%d) is spent; stopping generation cleanly", who, self.limit)
        return True

    def generate(self, jobs: Sequence[Job], n: int, run_seed: int) -> dict[str, float]:
        """Every job's batches as one dataset (one row per batch, in the run's method order), so the
        workers start and import once for all the methods of the run."""
        from ..progress import progress
        from ..record import Record

        jobs = [j for j in jobs if j.batches]
        if self.limit is not None:  # methods that would start with the budget spent do not start
            jobs = [j for j in jobs if not (j.method.uses_llm and self._budget_spent(j.method.name))]
        if not jobs:
            return {}
        names = list(dict.fromkeys(j.method.name for j in jobs))
        logger.info("stage %s", "generate:" + "+".join(names))
        gen = self._ctx["generator_config"]
        if self.limit is not None:  # no actor spends more than what is left
            gen = replace(gen, max_tokens_total=max(self.limit - self.spent, 0))
        items = [
            {"j": j, "k": k, "method": job.method.name, "field": job.field,
             "seeds": json.dumps([self._index[s.id] for s in b])}
            for j, job in enumerate(jobs)
            for k, b in enumerate(job.batches)
        ]  # fmt: skip
        mapped = self.ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            MethodActor,
            fn_constructor_kwargs={
                "params": {name: self.config.methods.method_params(name) for name in names},
                "ctx": {**self._ctx, "generator_config": gen},
                "cache": self.config.generator.cache,
                "n": n,
                "run_seed": run_seed,
                "cpus": self.actor_cpus,
            },
            batch_size=1,
            batch_format="numpy",
            compute=self._pool(len(items), "methods"),
            num_cpus=self.actor_cpus,
        )
        t = time.perf_counter()
        seconds: dict[str, float] = {}
        left = {name: sum(len(j.batches) for j in jobs if j.method.name == name) for name in names}
        total = sum(j.total for j in jobs)
        with progress(total, "generate", "seed") as bar:
            bar.update(sum(j.reused for j in jobs))
            for block in self._rows(mapped, "generate"):
                for j, k, records, usage, state in zip(
                    block["j"], block["k"], block["records"], block["usage"], block["state"], strict=True
                ):
                    job = jobs[int(j)]
                    batch = job.batches[int(k)]
                    job.on_block(batch, [Record.from_dict(d) for d in json.loads(records)])
                    for key, value in json.loads(state).items():  # the manifest names what actors ran
                        setattr(job.method, key, value)
                    self._add_usage(json.loads(usage))
                    bar.update(len(batch))
                    name = job.method.name
                    left[name] -= 1
                    if not left[name]:
                        seconds[name] = round(time.perf_counter() - t, 3)
                if self._budget_spent("generate"):
                    break  # batches still in flight are dropped: --resume redoes them
        logger.info("ray: %d of %d batches in %.1f s", len(items) - sum(left.values()), len(items), time.perf_counter() - t)
        return seconds

    def _add_usage(self, usage: dict[str, Any]) -> None:
        for owner, counts in usage.items():
            mine = self._usage.setdefault(owner, {**counts, **{k: 0 for k in USAGE_COUNTS}})
            mine.update({k: v for k, v in counts.items() if k not in USAGE_COUNTS and k != "budget_exhausted"})
            for k in USAGE_COUNTS:
                mine[k] += counts[k]
            self.spent += counts["prompt_tokens"] + counts["completion_tokens"]

    def usage(self, ctx: RunContext) -> dict[str, Any]:
        exhausted = self.limit is not None and self.spent >= self.limit
        return {owner: {**u, "budget_exhausted": exhausted} for owner, u in {**ctx.usage(), **self._usage}.items()}

    # -- embedding ---------------------------------------------------------------------------------
    def embed(self, embedder: CachedEmbedder, texts: Sequence[str]) -> None:
        missing = embedder.missing(texts)
        if not missing:
            return
        # the calls a local run makes (embedcache.chunks), one item each: the same vectors, bit for bit
        parts = chunks(missing)
        pool = self._pool(len(parts), "embed")
        ds = self.ray.data.from_items(
            [{"texts": json.dumps(part, ensure_ascii=False)} for part in parts], override_num_blocks=len(parts)
        )
        mapped = ds.map_batches(
            EmbedActor,
            fn_constructor_kwargs={"spec": self._spec, "cpus": self.actor_cpus},
            batch_size=1,
            batch_format="numpy",
            compute=pool,
            num_cpus=self.actor_cpus,
        )
        t = time.perf_counter()
        for block in self._rows(mapped, "embed"):
            model = str(block["model"][0]) if len(block["model"]) else embedder.model_id
            if model != embedder.model_id:
                raise BackendError(f"embed (ray worker): the workers loaded {model}, the driver {embedder.model_id}")
            embedder.add([str(x) for x in block["text"]], block["vec"])
        logger.info("ray: embedded %d texts in %.1f s", len(missing), time.perf_counter() - t)

    # -- the manifest, the end ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "address": self.address,
            "started_here": self.owned,
            "cpus": self.cpus,
            "cpus_per_actor": self.actor_cpus,
            "actors": dict(self.actors),
        }

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()
            self.owned = False


__all__ = ["EmbedActor", "MethodActor", "RayExecutor", "check_address", "import_ray", "worker_env"]
