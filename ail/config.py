"""Config helpers: the run-name resolver, per-env YAML access, and where the schema (:mod:`ail.schema`)
is applied: command-line overrides before Hydra starts, each job's composed config before any file."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from omegaconf import DictConfig, OmegaConf

from ail import schema
from ail.envs import GYM_ENVS, check_gym_id, gym_env_name, use_env
from ail.errors import ConfigError
from ail.provenance import REPO_ROOT
from ail.schema import check_override

CONF_DIR = REPO_ROOT / "conf"
TASKS = ("train", "expert", "demos", "eval")
GROUPS = ("algo", "env", "logger")


def run_name(task: str, algo: str, env: str, demos: Any) -> str:
    """Directory name of a job below ``runs/<experiment>/`` (deterministic, so a requeued job finds it)."""
    if task == "train":
        return f"{algo}-{env}-d{demos}"
    if task in ("expert", "demos"):
        return f"{task}-{env}"
    return f"{task}-{algo}-{env}-d{demos}"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
    if not OmegaConf.has_resolver("gym_env_name"):
        OmegaConf.register_new_resolver("gym_env_name", gym_env_name)


def default_option(group: str) -> str:
    """The option of ``group`` that conf/config.yaml's defaults list selects."""
    for entry in OmegaConf.load(CONF_DIR / "config.yaml").defaults:
        if isinstance(entry, DictConfig) and group in entry:
            return str(entry[group])
    raise KeyError(group)


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


PLUGIN_LAUNCHERS = ("basic", "joblib", "submitit_local", "submitit_slurm")  # Hydra's and its plugins' own


def launcher_options() -> list[str]:
    """Launcher presets in conf/hydra/launcher plus the plugins' bare configs."""
    return sorted(set(group_options("hydra/launcher")) | set(PLUGIN_LAUNCHERS))


def env_config(name: str) -> DictConfig:
    """``conf/env/<name>.yaml`` on its own (an ``env=gym`` env: its job's env config), for library code called outside Hydra."""
    if name in GYM_ENVS:
        return GYM_ENVS[name].config
    path = CONF_DIR / "env" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown env '{name}'; accepted: {', '.join(group_options('env'))}")
    return OmegaConf.load(path)


def _values(override: Any) -> Iterable[Any]:
    from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, RangeSweep

    value = override.value()
    if isinstance(value, ChoiceSweep):
        return list(value.list)
    if isinstance(value, RangeSweep):
        return list(override.sweep_iterator())
    if isinstance(value, (Glob, IntervalSweep)):
        return []
    if isinstance(value, list) and override.key_or_group in GROUPS:
        return value  # a group's list selects several of its options
    return [value]  # a list value of a config key (algo.ddpg.network.hidden=[256,256]) is one value


def check_overrides(argv: list[str]) -> None:
    """Reject unknown group options and values the schema (:mod:`ail.schema`) refuses in command-line
    overrides, every value of a sweep, one line each.

    Hydra's own messages for these are multi-line and come after a sweep has started; checking
    here means a bad ``-m`` sweep fails before any job runs. ``algo.*`` keys are checked against
    each algorithm the overrides select (``bc``, the default, when none).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if not a.startswith("-") and "=" in a]
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception as exc:  # noqa: BLE001 - Hydra's grammar errors: keep their first line
        raise ConfigError(f"cannot parse overrides {args}: {str(exc).splitlines()[0]}") from exc
    algos = [str(v) for ov in overrides if ov.key_or_group == "algo" and ov.package is None for v in _values(ov)]
    if not algos and not any(a.startswith(("--config-name", "-cn")) for a in argv):
        algos = [default_option("algo")]  # a sweep file's own algo is only known once composed (checked per job)
    envs = [str(v) for ov in overrides if ov.key_or_group == "env" and ov.package is None for v in _values(ov)]
    if "gym" in envs and not any(ov.key_or_group == "env.id" for ov in overrides):
        check_gym_id(None)  # env=gym without env.id: one line, not Hydra's missing-value traceback
    for ov in overrides:
        key = ov.key_or_group
        if ov.is_delete():
            continue
        if key in GROUPS and ov.package is None:
            for v in _values(ov):
                if str(v) not in group_options(key):
                    raise ConfigError(f"unknown {key} '{v}'; accepted: {', '.join(group_options(key))}")
        elif key == "hydra/launcher":
            accepted = launcher_options()
            for v in _values(ov):
                if str(v) not in accepted:
                    raise ConfigError(f"unknown hydra/launcher '{v}'; accepted: {', '.join(accepted)}")
        elif key == "task":
            for v in _values(ov):
                if v not in TASKS:
                    raise ConfigError(f"unknown task '{v}'; accepted: {', '.join(TASKS)}")
        elif key == "runtime.device":
            for v in _values(ov):
                check_device_name(v)
        elif key == "env.id" and any(o.key_or_group == "env" and "gym" in map(str, _values(o)) for o in overrides):
            imports = [str(v) for o in overrides if o.key_or_group == "env.import" for v in _values(o)] or [None]
            for v in _values(ov):
                for module in imports:
                    check_gym_id(v, module)  # before Hydra names the run directory after it
        elif not ov.is_add() and key not in GROUPS and "/" not in key and not key.startswith("hydra"):
            for v in _values(ov):
                check_override(key, v, algos)


def check_config(cfg: DictConfig) -> None:
    """Validate the composed config of one job against the schema (values set in files too), then its
    device; then set this process up for its env (:func:`ail.envs.use_env`: ``env=gym``)."""
    schema.check_config(cfg)
    use_env(cfg.env)
    if cfg.task != "train":  # a training job's device is checked against its learner's (ail.app.train_run)
        check_device(OmegaConf.select(cfg, "runtime.device", default="cpu"), f"task={cfg.task}", ("cpu",))


def check_device_name(device: Any) -> None:
    """``cpu``, ``cuda`` or ``cuda:N`` (what the device can do is checked with the composed config)."""
    if device == "cpu" or device == "cuda" or (isinstance(device, str) and re.fullmatch(r"cuda:\d+", device)):
        return
    raise ConfigError(f"runtime.device={device} is invalid; accepted: cpu, cuda, cuda:N")


def check_device(device: Any, what: str, devices: tuple[str, ...], gpu_algos: Callable[[], list[str]] = lambda: []) -> None:
    """The device is a known name, the job (``what``: ``algo=X`` or ``task=Y``) computes on its kind
    (``devices``: its learner's), and a GPU is visible. ``gpu_algos`` lists the algorithms that do
    have a GPU path, for the error only."""
    check_device_name(device)
    if device == "cpu":
        return
    # Silently computing on the CPU when a GPU was asked for would waste a GPU allocation.
    if "cuda" not in devices:
        with_gpu = gpu_algos()
        raise ConfigError(
            f"runtime.device={device} is not supported with {what}, which computes on the CPU; accepted: runtime.device=cpu"
            + (f", or a GPU for training with algo={','.join(with_gpu)}" if with_gpu else "")
        )
    import torch

    index = int(device.split(":")[1]) if ":" in device else 0
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        raise ConfigError(
            f"runtime.device={device} but torch {torch.__version__} sees {torch.cuda.device_count()} CUDA device(s); "
            f"accepted here: cpu" + ("" if not torch.cuda.device_count() else f", cuda:0..cuda:{torch.cuda.device_count() - 1}")
        )
