"""The Python API: ``ail.train`` and ``ail.evaluate`` for notebooks and scripts, ``ail.sweep_jobs``
to list what a sweep file runs.

``ail.train("bc", "cartpole", demos=2, seed=0, overrides=["algo.updates=500"])`` is
``python launch.py algo=bc env=cartpole demos=2 seed=0 algo.updates=500``: the same composed
config (conf/), the same checks before any file is written, the same run directory (created,
resumed, or found complete) and the same training. Bad input raises :class:`ail.errors.ConfigError`
with the message launch.py prints after ``error:``; a numerical failure raises
:class:`ail.errors.TrainingError`; SIGTERM/SIGUSR2 writes a checkpoint and raises
:class:`ail.preemption.Preempted` (calling ``train`` again resumes).
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np
from omegaconf import DictConfig, open_dict

from ail.errors import ConfigError

Act = Callable[[np.ndarray], np.ndarray]


@contextlib.contextmanager
def _composer(what: str, config_dir: Optional[Path] = None) -> Iterator[Callable[[str, list[str]], DictConfig]]:
    """Hydra's composer on ``config_dir`` (default ``conf/``), with ``conf/`` on its search path:
    yields ``compose(name, overrides)``, which returns the config with its ``hydra`` node.
    Hydra's errors become one-line :class:`ConfigError` s that start with ``what``; the caller's own
    Hydra state is restored after."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    from ail.config import CONF_DIR, register_resolvers

    register_resolvers()
    search = [f"hydra.searchpath=[file://{CONF_DIR}]"] if config_dir is not None else []

    def compose_one(name: str, overrides: list[str]) -> DictConfig:
        return hydra_compose(config_name=name, overrides=[*overrides, *search], return_hydra_config=True)

    backup = get_gh_backup()
    # Hydra keeps one global composer; one left initialised by the caller (a notebook, a Hydra app)
    # would make ours fail, so it is set aside and put back.
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str((config_dir or CONF_DIR).resolve()), version_base="1.3"):
            yield compose_one
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - Hydra's composition and grammar errors: keep their first line
        raise ConfigError(f"{what}: {str(exc).splitlines()[0]}") from exc
    finally:
        restore_gh_from_backup(backup)


def _job(cfg: DictConfig, run_dir: str) -> tuple[DictConfig, Path]:
    """A composed config without its ``hydra`` node, and the run directory Hydra named for it."""
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, Path(run_dir)


def compose(overrides: Sequence[str]) -> tuple[DictConfig, Path]:
    """The job config ``launch.py OVERRIDES`` would run (checked as launch.py checks it) and its run directory.

    :param overrides: Hydra overrides as on the command line, e.g. ``["algo=sam", "seed=1"]``; no sweeps.
    """
    from ail.config import check_config, check_overrides
    from ail.paths import check_writable

    overrides = [str(o) for o in overrides]
    check_overrides(overrides)
    with _composer(f"cannot compose {overrides}") as compose_one:
        cfg = compose_one("config", overrides)
    cfg, run_dir = _job(cfg, str(cfg.hydra.run.dir))
    check_config(cfg)
    check_writable(Path(str(cfg.paths.runs)), "paths.runs")
    return cfg, run_dir


def sweep_jobs(sweep: Union[str, Path], overrides: Sequence[str] = ()) -> list[tuple[DictConfig, Path]]:
    """Every job of a sweep file, as ``launch.py --config-dir DIR --config-name NAME -m OVERRIDES``
    would run them: each job's config (its values checked by :mod:`ail.schema`) and its run
    directory, in the order of Hydra's basic sweeper (the product of ``hydra.sweeper.params`` and
    the overrides, the first key outermost; an override replaces the file's values of its key, in
    the file's place). Nothing is run and nothing is written. A job with
    ``train.seeds_per_process=K`` trains seeds ``seed .. seed+K-1``, one run directory each; the
    one given here is its first seed's.

    :param sweep: a sweep file, e.g. ``sweeps/benchmark_grid.yaml``.
    :param overrides: as on the command line, sweeps included (``paths.runs=../grid``, ``seed=0,1``).
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    from ail.config import check_overrides
    from ail.schema import check_config

    path = Path(sweep)
    accepted = "accepted: a .yaml sweep file such as sweeps/benchmark_grid.yaml"
    if not path.is_file():
        raise ConfigError(f"sweep file '{sweep}' not found; {accepted}")
    if path.suffix != ".yaml":
        raise ConfigError(f"sweep file '{sweep}' is not a .yaml file; {accepted}")
    overrides = [str(o) for o in overrides]
    check_overrides([f"--config-name={path.stem}", *overrides])
    with _composer(f"cannot compose the jobs of {sweep}", path.parent) as compose_one:
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        given = parser.parse_overrides(overrides)
        # As Hydra's multirun: the sweep file's params are read from the config the fixed overrides compose.
        params = compose_one(path.stem, [o.input_line for o in given if not o.is_sweep_override()]).hydra.sweeper.params or {}
        axes: dict[str, list[str]] = {}  # key -> its "key=value" choices, as Hydra's basic sweeper builds them
        for o in [*parser.parse_overrides([f"{k}={v}" for k, v in params.items()]), *given]:
            # A glob lists group options from the composer's first path, here the sweep file's folder, not conf/.
            if o.value_type == ValueType.GLOB_CHOICE_SWEEP:
                raise ConfigError(f"'{o.input_line}': glob() is not listed here; accepted: the values as a list ({o.get_key_element()}=a,b)")
            values = o.sweep_string_iterator() if o.is_sweep_override() else [o.get_value_element_as_str()]
            axes[o.get_key_element()] = [f"{o.get_key_element()}={v}" for v in values]
        composed = [compose_one(path.stem, list(combo)) for combo in itertools.product(*axes.values())]
    jobs = [_job(cfg, str(Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir))) for cfg in composed]
    for cfg, _ in jobs:
        check_config(cfg)
    return jobs


def train(
    algo: str,
    env: str,
    demos: int = 4,
    seed: int = 0,
    overrides: Sequence[str] = (),
    runs: Optional[Union[str, Path]] = None,
) -> Path:
    """Train (or resume, or find complete) one run and return its run directory.

    :param algo: ``bc``, ``gail``, ``sam``, ``mgail`` or ``dyna`` (conf/algo).
    :param env: an env config name, e.g. ``hopper`` (conf/env).
    :param demos: number of expert trajectories given to the learner.
    :param seed: the run's seed; ``train.seeds_per_process=K`` in ``overrides`` also trains seeds
        ``seed+1 .. seed+K-1`` in this process, each in its own sibling directory.
    :param overrides: further Hydra overrides as on the command line, e.g. ``["train.env_steps=20000"]``.
    :param runs: ``paths.runs`` (default: conf/config.yaml's ``runs``, relative to the working directory).
    :return: the run directory ``<runs>/<experiment>/<algo>-<env>-d<demos>/seed<seed>``, holding
        config.yaml, metrics.csv, summary.json and the saved policy (``ail.load_policy(path)``).
    """
    from ail.app import train_run
    from ail.paths import remove_empty_dirs

    args = [f"algo={algo}", f"env={env}", f"demos={demos}", f"seed={seed}", *overrides]
    if runs is not None:
        args.append(f"paths.runs={runs}")
    cfg, run_dir = compose(args)
    if cfg.task != "train":
        raise ConfigError(f"task={cfg.task} is not ail.train's; accepted: task=train (launch.py runs the others)")
    try:
        return train_run(cfg, run_dir)[0]
    except ConfigError:
        remove_empty_dirs(run_dir, Path(str(cfg.paths.runs)))
        raise


@dataclass(frozen=True)
class Evaluation:
    """Deterministic episodes of a policy.

    :param returns: undiscounted return of each episode, shape ``(episodes,)``.
    :param return_mean: mean of ``returns``.
    :param return_std: standard deviation of ``returns``.
    :param normalized_score: ``(return_mean - R_random) / (R_expert - R_random)`` with the env's
        shipped expert (NaN when the env has none).
    """

    returns: np.ndarray
    return_mean: float
    return_std: float
    normalized_score: float


def evaluate(
    policy: Union[str, Path, Act, object],
    env: str,
    episodes: int = 10,
    seed: int = 0,
    experts: Optional[Union[str, Path]] = None,
) -> Evaluation:
    """Run ``episodes`` deterministic episodes of ``policy`` on ``env``, as ``launch.py task=eval`` does.

    :param policy: a run directory or saved-policy directory (``ail.load_policy``), a loaded policy
        (anything with ``predict(obs) -> action``), or a function ``obs -> action`` on raw observations.
    :param env: an env config name, e.g. ``hopper``.
    :param episodes: number of episodes; episode ``i`` is reset with seed ``derive_seed("eval_task", seed) + i``.
    :param seed: the evaluation's seed (``launch.py task=eval seed=S`` gives the same episodes).
    :param experts: the experts directory for the normalised score (default: ``paths.experts``'s).
    """
    from ail.config import env_config
    from ail.evaluation import evaluate as run_episodes
    from ail.evaluation import normalized_score
    from ail.experts import expert_info
    from ail.policy import load_policy
    from ail.seeding import derive_seed

    if episodes < 1:
        raise ConfigError(f"episodes={episodes} is invalid; accepted: a positive integer")
    env_config(env)  # an unknown env is one ConfigError naming the accepted ones
    if isinstance(policy, (str, Path)):
        policy = load_policy(policy)
    act = policy.predict if hasattr(policy, "predict") else policy
    if not callable(act):
        raise ConfigError(
            f"policy {policy!r} is not usable; accepted: a run or policy directory, an object with predict(obs), or a function obs -> action"
        )
    returns = run_episodes(act, env, episodes, seed=derive_seed("eval_task", seed))
    try:
        info = expert_info(env, experts)
        score = normalized_score(float(np.mean(returns)), float(info["return_mean"]), float(info["random_return_mean"]))
    except ConfigError:
        score = float("nan")
    return Evaluation(returns=returns, return_mean=float(np.mean(returns)), return_std=float(np.std(returns)), normalized_score=score)
