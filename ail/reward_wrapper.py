"""Plug a learned reward into any SB3 algorithm: a VecEnv wrapper that replaces the env reward.

    venv = RewardVecEnvWrapper(make_vec_env("hopper"), lambda obs, act, next_obs, dones: disc.reward(obs, act))
    PPO("MlpPolicy", venv).learn(100_000)   # PPO, TRPO, A2C, SAC, ... never see the true reward

The learner receives only ``reward_fn(obs, actions, next_obs, dones)``. The true env reward is
kept in ``info["true_reward"]`` for evaluation; the ``Monitor`` episode statistics that SB3
logs (``ep_rew_mean``) stay true returns because ``Monitor`` sits inside this wrapper, and
they are only logged, never trained on. Put observation normalisation (``VecNormalize``)
*outside* this wrapper, so ``reward_fn`` sees raw observations.

With ``record=True`` the wrapper also keeps every transition since the last
:meth:`pop_rollout` (raw obs, the action the env executed, next obs, learned and true reward,
done), which is what an adversarial trainer feeds its discriminator.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class RewardVecEnvWrapper(VecEnvWrapper):
    """Replace rewards with ``reward_fn(obs (n, *obs_shape), actions (n, ...), next_obs, dones (n,)) -> (n,)``."""

    def __init__(self, venv: VecEnv, reward_fn: RewardFn, record: bool = True):
        super().__init__(venv)
        self.reward_fn = reward_fn
        self.record = record
        self._obs: Optional[np.ndarray] = None
        self._actions: Optional[np.ndarray] = None
        self._buffer: dict[str, list[np.ndarray]] = {}
        self.clear_rollout()

    def reset(self) -> VecEnvObs:
        obs = self.venv.reset()
        self._obs = np.asarray(obs).copy()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).copy()
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, true_rewards, dones, infos = self.venv.step_wait()
        assert self._obs is not None and self._actions is not None, "reset() before step()"
        next_obs = np.asarray(obs).copy()
        for i, done in enumerate(dones):
            if done and infos[i].get("terminal_observation") is not None:
                next_obs[i] = infos[i]["terminal_observation"]  # the auto-reset obs is not s_{t+1}
        rewards = np.asarray(self.reward_fn(self._obs, self._actions, next_obs, np.asarray(dones)), dtype=np.float32).reshape(-1)
        for i, info in enumerate(infos):
            info["true_reward"] = float(true_rewards[i])
        if self.record:
            for key, value in (
                ("obs", self._obs),
                ("actions", self._actions),
                ("next_obs", next_obs),
                ("rewards", rewards),
                ("true_rewards", np.asarray(true_rewards, dtype=np.float32)),
                ("dones", np.asarray(dones)),
            ):
                self._buffer[key].append(value)
        self._obs = np.asarray(obs).copy()
        return obs, rewards, dones, infos

    def clear_rollout(self) -> None:
        self._buffer = {k: [] for k in ("obs", "actions", "next_obs", "rewards", "true_rewards", "dones")}

    def pop_rollout(self) -> dict[str, np.ndarray]:
        """Transitions since the last call, each array shaped ``(steps, n_envs, ...)``; then forget them."""
        out = {k: np.stack(v) for k, v in self._buffer.items() if v}
        self.clear_rollout()
        return out

    def state(self) -> Optional[np.ndarray]:
        """The observation the next step's reward is computed from (a checkpoint keeps it with the envs' states)."""
        return self._obs

    def set_state(self, obs: Optional[np.ndarray]) -> None:
        self._obs = obs
