"""Environment registry (short names -> gymnasium ids), seeded env factories, absorbing states.

The eleven shipped tasks have a short name each (``hopper`` -> ``Hopper-v5``, conf/env/<name>.yaml).
Any other registered gymnasium id runs as ``env=gym env.id=<id>`` (conf/env/gym.yaml): :func:`use_env`
imports ``env.import`` (so a user's package can register its ids), checks the id, and registers the
name derived from it (``Pendulum-v1`` -> ``pendulum-v1``) in this process, once per job.

Every env built here keeps gymnasium's split between ``terminated`` (a true end: no bootstrap)
and ``truncated`` (the time limit: bootstrap from the final observation).
"""

from __future__ import annotations

import difflib
import importlib
import re
from typing import TYPE_CHECKING, Any, Callable, Optional

import gymnasium as gym
import numpy as np

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
SHIPPED = tuple(ENV_IDS)  # the eleven tasks with a conf/env file and an expert here; ENV_IDS also gets env=gym ids
MUJOCO_ENVS = {"invertedpendulum", "inverteddoublependulum", "reacher", "hopper", "walker", "halfcheetah", "ant", "humanoid"}
IMPORTS: dict[str, str] = {}  # name -> module to import before gym.make (env=gym env.import=M), for worker processes too
GYM_CONFIGS: dict[str, Any] = {}  # name -> its env config (env=gym), for library code called outside Hydra


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
    """Make the job's env known by name in this process: ``env=gym`` ids are checked and registered."""
    name, gym_id = str(env_cfg["name"]), env_cfg["id"]
    module = env_cfg.get("import")
    if name in ENV_IDS and name not in GYM_CONFIGS:
        return  # a shipped task
    check_gym_id(gym_id, module)
    ENV_IDS[name] = str(gym_id)
    GYM_CONFIGS[name] = env_cfg
    if module:
        IMPORTS[name] = str(module)
    if str(gym.spec(str(gym_id)).entry_point).startswith("gymnasium.envs.mujoco"):
        MUJOCO_ENVS.add(name)  # qpos/qvel recorded with the demonstrations (expert-state starts)


def env_id(name: str) -> str:
    """Gymnasium id for a short name (``hopper`` -> ``Hopper-v5``); a clear error otherwise."""
    if name not in ENV_IDS:
        raise ConfigError(f"unknown env '{name}'; accepted: {', '.join(ENV_IDS)}, or env=gym env.id=<gymnasium id>")
    return ENV_IDS[name]


def same_space(a: gym.Space, b: gym.Space) -> bool:
    """Same kind and shape (and number of actions): data or a policy made for one fits the other."""
    return type(a) is type(b) and getattr(a, "shape", None) == getattr(b, "shape", None) and getattr(a, "n", None) == getattr(b, "n", None)


def describe_space(space: gym.Space) -> str:
    """``Box(11,)``, ``Discrete(2)``: a space as one-line errors name it."""
    return f"Discrete({space.n})" if isinstance(space, gym.spaces.Discrete) else f"{type(space).__name__}{getattr(space, 'shape', '')}"


def is_mujoco(name: str) -> bool:
    return name in MUJOCO_ENVS


class AbsorbingStateWrapper(gym.Wrapper):
    """DAC/SAM absorbing states: one extra indicator feature, 0 for real states, 1 for the absorbing one.

    When the wrapped env *terminates* (never when it is truncated by the time limit), the
    episode does not end at once: the wrapper reports a non-terminal transition into the
    absorbing state ``[0…0, 1]``, and every later step stays there with reward 0 until the
    time limit (or ``absorbing_steps`` steps) truncates the episode. A learner then sees
    the absorbing state like any other and can learn its value instead of assuming 0.
    Observations are flat float32 of shape ``(obs_dim + 1,)``.
    """

    def __init__(self, env: gym.Env, absorbing_steps: Optional[int] = None):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ConfigError(f"absorbing states need a flat Box observation space, got {space}")
        low = np.append(space.low.astype(np.float32), np.float32(0.0))
        high = np.append(space.high.astype(np.float32), np.float32(1.0))
        self.observation_space = gym.spaces.Box(low=low, high=high, dtype=np.float32)
        self._obs_dim = space.shape[0]
        self._absorbing = False
        self._absorbing_steps = absorbing_steps
        self._steps_absorbed = 0
        self.absorbing_obs = np.zeros(self._obs_dim + 1, dtype=np.float32)
        self.absorbing_obs[-1] = 1.0

    def _real(self, obs: np.ndarray) -> np.ndarray:
        return np.append(np.asarray(obs, dtype=np.float32), np.float32(0.0))

    def reset(self, **kwargs: Any):
        self._absorbing = False
        self._steps_absorbed = 0
        obs, info = self.env.reset(**kwargs)
        return self._real(obs), info

    def step(self, action):
        if self._absorbing:
            self._steps_absorbed += 1
            # The time limit still counts absorbed steps, so episodes keep the env's horizon.
            truncated = self._tick_time_limit()
            if self._absorbing_steps is not None and self._steps_absorbed >= self._absorbing_steps:
                truncated = True
            return self.absorbing_obs.copy(), 0.0, False, truncated, {"absorbing": True}
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            self._absorbing = True
            info = dict(info, terminal_observation_real=self._real(obs))
            return self.absorbing_obs.copy(), reward, False, truncated, info
        return self._real(obs), reward, terminated, truncated, info

    def _tick_time_limit(self) -> bool:
        tl = _find_time_limit(self.env)
        if tl is None:
            return False
        tl._elapsed_steps += 1  # gymnasium's TimeLimit keeps the counter here
        return tl._elapsed_steps >= tl._max_episode_steps


def _find_time_limit(env: gym.Env) -> Optional[gym.wrappers.TimeLimit]:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def make_env(name: str, seed: Optional[int] = None, absorbing: bool = False, **kwargs: Any) -> gym.Env:
    """One env by short name, with ``Monitor``-free raw rewards; seeded (reset and action space)."""
    return _make_by_id(env_id(name), IMPORTS.get(name), seed, absorbing, **kwargs)


def _make_by_id(gym_id: str, module: Optional[str], seed: Optional[int] = None, absorbing: bool = False, **kwargs: Any) -> gym.Env:
    """:func:`make_env` by id, for processes that never saw the job's config (SubprocVecEnv workers)."""
    import_env_module(module)
    env = gym.make(gym_id, **kwargs)
    if absorbing:
        env = AbsorbingStateWrapper(env)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        env.observation_space.seed(seed)
    return env


def make_vec_env(name: str, n_envs: int = 1, seed: int = 0, absorbing: bool = False, subprocess: bool = False) -> "VecEnv":
    """SB3 VecEnv of ``n_envs`` copies seeded ``seed, seed+1, …``; each copy wrapped in ``Monitor``."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    gym_id, module = env_id(name), IMPORTS.get(name)  # resolved here: a worker process has no registry

    def thunk(i: int) -> Callable[[], gym.Env]:
        def _make() -> gym.Env:
            env = Monitor(_make_by_id(gym_id, module, absorbing=absorbing))
            env.action_space.seed(seed + i)
            if subprocess and n_envs > 1:
                from ail.env_state import StateAccess

                env = StateAccess(env)  # checkpoints reach the env inside its worker process
            return env

        return _make

    cls = SubprocVecEnv if subprocess and n_envs > 1 else DummyVecEnv
    venv = cls([thunk(i) for i in range(n_envs)])
    venv.seed(seed)
    return venv
