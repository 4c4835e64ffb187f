"""Environment registry (short names -> gymnasium ids) and seeded env factories.

The eleven shipped tasks have a short name each (``hopper`` -> ``Hopper-v5``, conf/env/<name>.yaml).
Any other registered gymnasium id runs as ``env=gym env.id=<id>`` (conf/env/gym.yaml): :func:`use_env`
imports ``env.import`` (so a user's package can register its ids), checks the id, and registers the
name derived from it (``Pendulum-v1`` -> ``pendulum-v1``) in this process. The registry is this
process's only: every process that runs a job's code calls :func:`use_env` with the job's env config
first (``ail.config.check_config`` in the job's process, each of SAM's spawned workers), and
SubprocVecEnv workers are handed the id and module themselves (:func:`make_vec_env`).

Every env built here keeps gymnasium's split between ``terminated`` (a true end: no bootstrap)
and ``truncated`` (the time limit: bootstrap from the final observation).
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import gymnasium as gym

from ail.env_state import StateAccess
from ail.errors import ConfigError

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

ENV_IDS: dict[str, str] = {
    "cartpole": "CartPole-v1",
    "mountaincar": "MountainCar-v0",
    "acrobot": "Acrobot-v1",
    "invertedpendulum": "InvertedPendulum-v5",
    "inverteddoublependulum": "InvertedDoublePendulum-v5",
    "reacher": "Reacher-v5",
    "hopper": "Hopper-v5",
    "walker": "Walker2d-v5",
    "halfcheetah": "HalfCheetah-v5",
    "ant": "Ant-v5",
    "humanoid": "Humanoid-v5",
}
SHIPPED = tuple(ENV_IDS)  # the eleven tasks with a conf/env file and an expert here
MUJOCO_ENVS = frozenset({"invertedpendulum", "inverteddoublependulum", "reacher", "hopper", "walker", "halfcheetah", "ant", "humanoid"})


@dataclass(frozen=True)
class GymEnv:
    """An ``env=gym`` env as its job's config declares it.

    :param id: its gymnasium id (``env.id``).
    :param module: the module imported before ``gym.make`` (``env.import``), None for none.
    :param mujoco: whether gymnasium's MuJoCo tasks implement it (qpos/qvel are recorded with its demonstrations).
    :param config: the job's env config (conf/env/gym.yaml with its overrides), for library code called outside Hydra.
    """

    id: str
    module: Optional[str]
    mujoco: bool
    config: Any


GYM_ENVS: dict[str, GymEnv] = {}  # env=gym names this process was set up for (use_env)


def gym_env_name(gym_id: str) -> str:
    """The platform's name for a gymnasium id (run and demo directories): ``Pendulum-v1`` -> ``pendulum-v1``."""
    return re.sub(r"[^a-z0-9.-]+", "_", str(gym_id).lower()).strip("_")


def import_env_module(module: Optional[str]) -> None:
    """Import ``env.import`` (whose import registers gymnasium ids); a failure is one ConfigError."""
    if not module:
        return
    try:
        importlib.import_module(str(module))
    except Exception as exc:  # noqa: BLE001 - any failure of a user's module is one line
        raise ConfigError(f"env.import={module} failed: {type(exc).__name__}: {exc}; accepted: an importable module that registers the env") from None


def check_gym_id(gym_id: Any, module: Optional[str] = None) -> str:
    """``gym_id`` is registered with gymnasium (after importing ``module``); returns it."""
    import_env_module(module)
    if gym_id is None or str(gym_id) in ("", "???"):
        raise ConfigError("env=gym needs env.id=<id>; accepted: a registered gymnasium id, e.g. env.id=Pendulum-v1")
    if str(gym_id) not in gym.registry:
        close = difflib.get_close_matches(str(gym_id), list(gym.registry), n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        where = f" after importing {module}" if module else " (env.import=<module> imports a package that registers it)"
        raise ConfigError(f"env.id={gym_id} is not a registered gymnasium id{where}{hint}; accepted: an id in gymnasium's registry")
    return str(gym_id)


def use_env(env_cfg: Any) -> None:
    """Set this process up for a job's env: an ``env=gym`` id is checked (its ``env.import`` imported)
    and registered under the job's name for it; a shipped task needs nothing.

    :param env_cfg: the job's ``env`` config (``cfg.env``).
    """
    name, gym_id = str(env_cfg["name"]), env_cfg["id"]
    if name in ENV_IDS:
        return
    module = env_cfg.get("import")
    check_gym_id(gym_id, module)
    mujoco = str(gym.spec(str(gym_id)).entry_point).startswith("gymnasium.envs.mujoco")
    GYM_ENVS[name] = GymEnv(str(gym_id), None if not module else str(module), mujoco, env_cfg)


def env_id(name: str) -> str:
    """Gymnasium id for a short name (``hopper`` -> ``Hopper-v5``); a clear error otherwise."""
    if name in ENV_IDS:
        return ENV_IDS[name]
    if name in GYM_ENVS:
        return GYM_ENVS[name].id
    raise ConfigError(f"unknown env '{name}'; accepted: {', '.join([*ENV_IDS, *GYM_ENVS])}, or env=gym env.id=<gymnasium id>")


def _env_module(name: str) -> Optional[str]:
    """The module an ``env=gym`` env's ``env.import`` names (None for a shipped task)."""
    return GYM_ENVS[name].module if name in GYM_ENVS else None


def same_space(a: gym.Space, b: gym.Space) -> bool:
    """Same kind and shape (and number of actions): data or a policy made for one fits the other."""
    return type(a) is type(b) and getattr(a, "shape", None) == getattr(b, "shape", None) and getattr(a, "n", None) == getattr(b, "n", None)


def describe_space(space: gym.Space) -> str:
    """``Box(11,)``, ``Discrete(2)``: a space as one-line errors name it."""
    return f"Discrete({space.n})" if isinstance(space, gym.spaces.Discrete) else f"{type(space).__name__}{getattr(space, 'shape', '')}"


def is_mujoco(name: str) -> bool:
    """Whether env ``name`` is one of gymnasium's MuJoCo tasks (its simulator state can be read and set)."""
    return name in MUJOCO_ENVS or (name in GYM_ENVS and GYM_ENVS[name].mujoco)


def make_env(name: str, seed: Optional[int] = None, **kwargs: Any) -> gym.Env:
    """One env by short name, with ``Monitor``-free raw rewards; seeded (reset and action space)."""
    return _make_by_id(env_id(name), _env_module(name), seed, **kwargs)


def _make_by_id(gym_id: str, module: Optional[str], seed: Optional[int] = None, **kwargs: Any) -> gym.Env:
    """:func:`make_env` by id, for processes that never saw the job's config (SubprocVecEnv workers)."""
    import_env_module(module)
    env = gym.make(gym_id, **kwargs)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        env.observation_space.seed(seed)
    return env


def make_vec_env(name: str, n_envs: int = 1, seed: int = 0, subprocess: bool = False) -> "VecEnv":
    """SB3 VecEnv of ``n_envs`` copies seeded ``seed, seed+1, …``; each copy wrapped in ``Monitor``."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    gym_id, module = env_id(name), _env_module(name)  # resolved here: a SubprocVecEnv worker has no registry

    def thunk(i: int) -> Callable[[], gym.Env]:
        def _make() -> gym.Env:
            env = Monitor(_make_by_id(gym_id, module))
            env.action_space.seed(seed + i)
            if subprocess and n_envs > 1:
                env = StateAccess(env)  # checkpoints reach the env inside its worker process
            return env

        return _make

    cls = SubprocVecEnv if subprocess and n_envs > 1 else DummyVecEnv
    venv = cls([thunk(i) for i in range(n_envs)])
    venv.seed(seed)
    return venv
