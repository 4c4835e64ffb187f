"""The config schema: every key's type, range and choices, checked once per launch before any file.

``conf/`` holds the values (one YAML per algorithm, environment and tuned pair); the schema holds
what a value may be. This module holds the job's own groups (:class:`JobConfig`), the pieces that
algorithms share (the value types below, :class:`DiscriminatorConfig`) and :class:`AlgoConfig`,
the base of every algorithm's model. An algorithm's model lives with the algorithm and is named
by its YAML's ``settings:`` key, as its learner is by ``learner:``.

:func:`check_config` validates a composed job config at the start of the job, and
:func:`check_override` a command-line override (each value of a sweep) before Hydra starts any
job. A bad value ends the launch with one line, ``error: <key>=<value> is invalid; accepted: <what is>``.
:func:`algo_settings` returns the validated model itself: what a learner reads (typed values,
nothing to cast again).

Models forbid unknown keys, so a key in a YAML file that no code reads fails here. What the schema
cannot say (a reward that works against how a task's episodes end, a horizon longer than the
task's episodes, demonstrations of another space) each learner's ``validate`` checks, once.
The schema holds no defaults: the YAML files are the only source of values.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, TypeAdapter, ValidationError, model_validator

from ail.errors import ConfigError
from ail.provenance import REPO_ROOT


def no_bool(v: Any) -> Any:
    """A number field refuses true/false (YAML's booleans would otherwise pass as 1 and 0)."""
    if isinstance(v, bool):
        raise ValueError("a boolean is not a number")
    return v


def accepts(text: str, **constraints: Any) -> Any:
    """A field's constraints with the text its one-line error shows after ``accepted:``."""
    return Field(json_schema_extra={"accepted": text}, **constraints)


Number = Annotated[float, BeforeValidator(no_bool), accepts("a number")]
Flag = Annotated[StrictBool, accepts("true or false")]
PosInt = Annotated[StrictInt, accepts("a positive integer", gt=0)]
NonNegInt = Annotated[StrictInt, accepts("an integer >= 0", ge=0)]
PosNum = Annotated[float, BeforeValidator(no_bool), accepts("a positive number", gt=0)]
NonNegNum = Annotated[float, BeforeValidator(no_bool), accepts("a number >= 0", ge=0)]
Fraction = Annotated[float, BeforeValidator(no_bool), accepts("a number in [0, 1]", ge=0, le=1)]
Discount = Annotated[float, BeforeValidator(no_bool), accepts("a number in (0, 1]", gt=0, le=1)]
Layers = Annotated[list[PosInt], accepts("a list of positive integers (layer widths)")]
Activation = Literal["tanh", "relu", "elu", "leaky_relu", "silu"]  # ail.activations.ACTIVATIONS
Reward = Literal["minimax", "log_d", "logit"]  # ail.discriminator.REWARDS


class Section(BaseModel):
    """A group of settings: unknown keys refused, values read-only once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ----- shared groups ----------------------------------------------------------------------------
class DiscriminatorConfig(Section):
    """``algo.discriminator`` of every adversarial algorithm (:mod:`ail.discriminator`; base values: conf/discriminator/base.yaml)."""

    hidden: Layers
    activation: Activation
    action_encoding: Literal["auto", "onehot", "raw"]
    spectral_norm: Flag
    layer_norm: Flag
    normalize_obs: Flag
    clip_obs: PosNum
    lr: PosNum
    batch_size: PosInt
    epochs: PosInt
    grad_penalty: NonNegNum
    label_smoothing: Optional[Union[Number, tuple[Number, Number]]] = Field(
        json_schema_extra={"accepted": "null, a number, or [low, high] with low <= high"}
    )
    entropy_weight: Number
    obs_slice: Optional[tuple[NonNegInt, PosInt]] = Field(
        json_schema_extra={"accepted": "null (every observation entry) or [start, stop] with 0 <= start < stop"}
    )

    @model_validator(mode="after")
    def _ordered(self) -> "DiscriminatorConfig":
        s = self.label_smoothing
        if isinstance(s, tuple) and not s[0] <= s[1]:
            raise ValueError(f"label_smoothing=[{s[0]}, {s[1]}] is invalid; accepted: [low, high] with low <= high")
        o = self.obs_slice
        if o is not None and not o[0] < o[1]:
            raise ValueError(f"obs_slice=[{o[0]}, {o[1]}] is invalid; accepted: [start, stop] with 0 <= start < stop, or null")
        return self


class AlgoConfig(Section):
    """The keys every ``conf/algo/<name>.yaml`` has; an algorithm's model adds its own."""

    name: str
    label: str  # run directories and W&B groups: <label>-<env>-d<demos>
    learner: str  # module.Class of its ail.algorithm.Learner
    settings: str  # module.Class of the algorithm's subclass of this model


def schema_class(path: Any, algo: Any) -> type[AlgoConfig]:
    """The model that ``algo.settings`` names (``module.Class``, an :class:`AlgoConfig` subclass)."""
    module, _, name = str(path).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise  # the schema's module exists but one of its own imports fails: show that
        cls = None
    except (AttributeError, ValueError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, AlgoConfig)):
        raise ConfigError(f"algo.settings={path} of algo={algo} is not importable; accepted: module.Class of an ail.schema.AlgoConfig subclass")
    return cls


def shipped_schema(algo: str) -> type[AlgoConfig]:
    """The model of ``conf/algo/<algo>.yaml`` (for checks made before Hydra composes a job)."""
    return schema_class(OmegaConf.load(REPO_ROOT / "conf" / "algo" / f"{algo}.yaml").get("settings"), algo)


# ----- the job ----------------------------------------------------------------------------------
class TrainConfig(Section):
    env_steps: PosInt
    checkpoint_every: PosInt
    seeds_per_process: PosInt


class EvalConfig(Section):
    every: PosInt
    episodes: PosInt
    final_episodes: PosInt


class DemoSetConfig(Section):
    trajectories: PosInt
    deterministic: Flag
    seed: NonNegInt
    min_return: Optional[Number]
    subsample: PosInt
    select_seed: Optional[NonNegInt] = Field(json_schema_extra={"accepted": "null (the first `demos` trajectories) or an integer >= 0"})
    source: Annotated[str, Field(pattern=r"^(expert|minari:.+)$", json_schema_extra={"accepted": "expert, or minari:<dataset id or directory>"})]
    export: Optional[Literal["minari"]]
    export_id: Optional[str]


class RuntimeConfig(Section):
    threads: PosInt
    progress: Flag
    device: str  # cpu | cuda | cuda:N: ail.config.check_device knows what this machine has


class JobConfig(BaseModel):
    """The top level; ``env``, ``logger`` and ``paths`` are checked where they are used (ail.envs, ail.logger, ail.paths)."""

    model_config = ConfigDict(extra="allow")
    task: Literal["train", "expert", "demos", "eval"]
    experiment: str
    demos: PosInt
    seed: NonNegInt
    train: TrainConfig
    eval: EvalConfig
    demo_set: DemoSetConfig
    runtime: RuntimeConfig


def _accepted_text(model: type[BaseModel], loc: tuple[Any, ...]) -> Optional[str]:
    """What the field at ``loc`` accepts: its declared text, or its choices."""
    field = None
    for part in loc:
        if not isinstance(part, str) or model is None or part not in model.model_fields:
            return None
        field = model.model_fields[part]
        ann = field.annotation
        model = next((a for a in (ann, *get_args(ann)) if isinstance(a, type) and issubclass(a, BaseModel)), None)  # type: ignore[assignment]
    if field is None:
        return None
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "accepted" in extra:
        return str(extra["accepted"])
    for meta in field.metadata:
        if isinstance(getattr(meta, "json_schema_extra", None), dict) and "accepted" in meta.json_schema_extra:
            return str(meta.json_schema_extra["accepted"])
    choices = [a for a in (field.annotation, *get_args(field.annotation)) if get_origin(a) is Literal]
    if choices:
        return ", ".join(str(c) for c in get_args(choices[0]))
    return None


def _one_line(exc: ValidationError, model: type[BaseModel], prefix: str, value_of: Any) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    while loc and not isinstance(loc[-1], str):  # an item of a list or pair: name the whole value
        loc = loc[:-1]
    key = prefix + ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        return ConfigError(f"{key} is not a config key; accepted keys here: {', '.join(_fields_at(model, loc[:-1]))}")
    if err["type"] == "missing":
        return ConfigError(f"{key} is missing from the config")
    if err["type"] == "value_error" and isinstance(value_of(loc), dict):  # a model's own check (its message names the key)
        return ConfigError(f"{key}.{str(err['msg']).removeprefix('Value error, ')}".lstrip("."))
    # Hydra's text for the value (lists as [a, b]), not pydantic's echo of the part that failed.
    value = value_of(loc)
    accepted = _accepted_text(model, tuple(p for p in loc if isinstance(p, str))) or str(err["msg"])
    return ConfigError(f"{key}={_show(value)} is invalid; accepted: {accepted}")


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        ann = model.model_fields[part].annotation
        model = next(a for a in (ann, *get_args(ann)) if isinstance(a, type) and issubclass(a, BaseModel))
    return sorted(model.model_fields)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _validate(model: type[BaseModel], data: Any, prefix: str) -> BaseModel:
    def value_of(loc: tuple[Any, ...]) -> Any:
        v = data
        for part in loc:
            try:
                v = v[part]
            except (KeyError, IndexError, TypeError):
                return v
        return v

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, model, prefix, value_of) from None


def algo_settings(cfg: DictConfig) -> AlgoConfig:
    """``cfg.algo`` validated by the model its ``settings`` key names: what a learner reads."""
    algo = OmegaConf.to_container(cfg.algo, resolve=True)
    assert isinstance(algo, dict)
    if "settings" not in algo:
        raise ConfigError(
            f"algo={algo.get('name')} names no schema for its settings; accepted: algo.settings=module.Class of an ail.schema.AlgoConfig subclass"
        )
    settings = _validate(schema_class(algo["settings"], algo.get("name")), algo, "algo.")
    assert isinstance(settings, AlgoConfig)
    return settings


def check_config(cfg: DictConfig) -> None:
    """Validate a composed job config (the algorithm's group too, for ``task=train``)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    _validate(JobConfig, data, "")
    if data["task"] == "train":
        algo_settings(cfg)


def check_override(key: str, value: Any, algos: list[str]) -> None:
    """One command-line override ``key=value`` before any job starts: ``algo.*`` keys against each
    algorithm in ``algos`` (a key none of them has is refused, as Hydra would, but in one line),
    the job's own groups (train, eval, ...) against :class:`JobConfig`; env, logger and paths are
    left to their own checks."""
    parts = key.split(".")
    if parts[0] == "algo":
        models: list[type[BaseModel]] = [shipped_schema(a) for a in algos if (REPO_ROOT / "conf" / "algo" / f"{a}.yaml").is_file()]
        path = parts[1:]
    elif parts[0] in JobConfig.model_fields:
        models, path = [JobConfig], parts
    else:
        return
    unknown: list[tuple[str, list[str]]] = []
    for model in models:
        field = None
        m: Optional[type[BaseModel]] = model
        for part in path:
            if m is None or part not in m.model_fields:
                if m is not None and m.model_config.get("extra") != "allow":  # e.g. algo.ppo.*: any SB3 keyword
                    unknown.append((part, sorted(m.model_fields)))
                field = None
                break
            field = m.model_fields[part]
            ann = field.annotation
            m = next((a for a in (ann, *get_args(ann)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if field is None or m is not None:
            continue  # no such key here (see below), or a whole group
        try:
            TypeAdapter(Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation).validate_python(value)
        except ValidationError as exc:
            accepted = _accepted_text(model, tuple(path)) or str(exc.errors()[0]["msg"])
            raise ConfigError(f"{key}={_show(value)} is invalid; accepted: {accepted}") from None
    if models and len(unknown) == len(models):
        owner = f"algo={','.join(algos)}" if parts[0] == "algo" else "the job config"
        raise ConfigError(f"{key} is not a key of {owner}; accepted keys there: {', '.join(unknown[0][1])}")
