"""Environment registry (short names -> gymnasium ids), seeded env factories, absorbing states.

Every env built here keeps gymnasium's split between ``terminated`` (a true end: no bootstrap)
and ``truncated`` (the time limit: bootstrap from the final observation).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from ail.errors import ConfigError

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
MUJOCO_ENVS = frozenset(["invertedpendulum", "inverteddoublependulum", "reacher", "hopper", "walker", "halfcheetah", "ant", "humanoid"])


def env_id(name: str) -> str:
    """Gymnasium id for a short name (``hopper`` -> ``Hopper-v5``); a clear error otherwise."""
    if name not in ENV_IDS:
        raise ConfigError(f"unknown env '{name}'; accepted: {', '.join(ENV_IDS)}")
    return ENV_IDS[name]


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
    env = gym.make(env_id(name), **kwargs)
    if absorbing:
        env = AbsorbingStateWrapper(env)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        env.observation_space.seed(seed)
    return env


def make_vec_env(name: str, n_envs: int = 1, seed: int = 0, absorbing: bool = False, subprocess: bool = False) -> VecEnv:
    """SB3 VecEnv of ``n_envs`` copies seeded ``seed, seed+1, …``; each copy wrapped in ``Monitor``."""
    from stable_baselines3.common.monitor import Monitor

    def thunk(i: int) -> Callable[[], gym.Env]:
        def _make() -> gym.Env:
            env = Monitor(make_env(name, absorbing=absorbing))
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
