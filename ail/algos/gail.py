"""GAIL (Ho & Ermon 2016) with an SB3 generator: PPO (default) or sb3-contrib TRPO.

One round, repeated until ``train.env_steps`` environment steps:

1. **Collect** ``n_steps x n_envs`` transitions with the generator. The env reward is replaced by
   the discriminator's (:class:`ail.reward_wrapper.RewardVecEnvWrapper`); the true reward is
   only recorded for logging.
2. **Update D** (:mod:`ail.discriminator`, expert = 1): ``epochs`` passes over the rollout in
   minibatches of ``batch_size`` policy pairs, each against ``batch_size`` expert pairs drawn
   with replacement.
3. **Relabel** (``relabel=true``): recompute the rollout's rewards with the updated D, then
   recompute GAE returns and advantages (SB3's time-limit bootstrap term is kept).
4. **Update the generator**: one SB3 ``train()`` call (PPO epochs, or one TRPO step + critic fits).

Observations reach the generator through ``VecNormalize`` (observations only: the learned
reward is not rescaled); D keeps its own statistics. Expert pairs may be subsampled GAIL-style
(``algo.demo_subsample``: every k-th pair from a random offset per trajectory).
A checkpoint holds everything, simulator states included, so a resumed run continues exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from ail.activations import activation
from ail.algorithm import Learner
from ail.demos import Demos
from ail.discriminator import build_discriminator, check_reward_for_task
from ail.env_state import get_vec_env_states, set_vec_env_states
from ail.envs import make_env, make_vec_env
from ail.errors import ConfigError
from ail.policy import LoadedPolicy, ObsNormalizer, save_policy
from ail.reward_wrapper import RewardVecEnvWrapper
from ail.sb3_state import SB3Progress, parse_schedule
from ail.schema import Activation, AlgoConfig, Discount, DiscriminatorConfig, Flag, Layers, Number, PosInt, Reward, Section, algo_settings
from ail.seeding import rng_state, set_random_seed, set_rng_state

GENERATORS = ("ppo", "trpo")


class GAILPolicy(Section):
    net_arch: Layers
    activation: Activation
    log_std_init: Number


class SB3OnPolicy(BaseModel):
    """SB3 keyword arguments (PPO or TRPO): the ones this platform relies on are checked, the rest go to SB3 as given."""

    model_config = ConfigDict(extra="allow")
    n_steps: PosInt
    batch_size: PosInt
    gamma: Discount


class GAILConfig(AlgoConfig):
    """``conf/algo/gail.yaml``: each key's type, range and choices (values and meaning in the YAML)."""

    generator: Literal["ppo", "trpo"]
    n_envs: PosInt
    vec_env: Literal["dummy", "subproc"]
    normalize_obs: Flag
    reward: Reward
    allow_biased_reward: Flag
    relabel: Flag
    demo_subsample: PosInt
    policy: GAILPolicy
    ppo: SB3OnPolicy
    trpo: SB3OnPolicy
    discriminator: DiscriminatorConfig

    @property
    def sb3_kwargs(self) -> SB3OnPolicy:
        """The keyword arguments of the generator ``generator`` names (``ppo`` or ``trpo``)."""
        return self.ppo if self.generator == "ppo" else self.trpo


def generator_class(name: str) -> type:
    if name == "ppo":
        return PPO
    if name == "trpo":
        from sb3_contrib import TRPO

        return TRPO
    raise ConfigError(f"algo.generator={name} is invalid; accepted: {', '.join(GENERATORS)}")


class _RolloutEnd(BaseCallback):
    """Keeps what SB3 used to compute GAE at the end of a rollout, so relabelled rewards can reuse it."""

    def __init__(self) -> None:
        super().__init__()
        self.last_values: Any = None
        self.dones: Any = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.last_values = self.locals["values"]
        self.dones = self.locals["dones"]


def build_generator(a: GAILConfig, venv: Any, seed: int) -> Any:
    """The SB3 generator ``algo.generator`` names, with its keyword arguments ``algo.<generator>`` (``"lin_1e-3"``: linear decay)."""
    cls = generator_class(a.generator)
    hyper = {k: parse_schedule(v) for k, v in a.sb3_kwargs.model_dump().items()}
    p = a.policy
    policy_kwargs = dict(net_arch=dict(pi=p.net_arch, vf=p.net_arch), activation_fn=activation(p.activation, "algo.policy.activation"))
    if isinstance(venv.action_space, gym.spaces.Box):
        policy_kwargs["log_std_init"] = p.log_std_init
    return cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, policy_kwargs=policy_kwargs, **hyper)


class GAIL(Learner[GAILConfig]):
    """``algo=gail``: one iteration is one round (collect, update D, relabel, update the generator)."""

    failure_hint = "lower algo.discriminator.lr or raise algo.discriminator.grad_penalty"

    @classmethod
    def validate(cls, cfg: DictConfig, demos: Demos) -> None:
        a = algo_settings(cfg)
        assert isinstance(a, GAILConfig)
        check_reward_for_task(a.reward, str(cfg.env.termination), False, a.allow_biased_reward)
        env = make_env(cfg.env.name)
        build_discriminator(env.observation_space, env.action_space, a.discriminator)  # e.g. one-hot actions for a Box space
        env.close()

    def __init__(self, cfg: DictConfig, demos: Demos, seeds: Sequence[int]):
        super().__init__(cfg, demos, seeds)
        a = self.algo
        d = a.discriminator
        seed = int(cfg.seed)
        set_random_seed(seed, int(cfg.runtime.threads))
        self.venv = make_vec_env(cfg.env.name, n_envs=a.n_envs, seed=seed, subprocess=a.vec_env == "subproc")
        self.disc = build_discriminator(self.venv.observation_space, self.venv.action_space, d)
        self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=d.lr)
        if a.relabel:
            # The rollout is relabelled after the D update anyway: scoring every env step now would be wasted work.
            self.reward_venv = RewardVecEnvWrapper(self.venv, lambda obs, _act, _next, _done: np.zeros(len(obs), dtype=np.float32))
        else:
            self.reward_venv = RewardVecEnvWrapper(self.venv, lambda obs, act, _next, _done: self.disc.reward(obs, act, a.reward))
        self.gen_env: Any = self.reward_venv
        if a.normalize_obs:
            self.gen_env = VecNormalize(self.reward_venv, norm_obs=True, norm_reward=False, gamma=a.sb3_kwargs.gamma)
        self.model = build_generator(a, self.gen_env, seed)
        self.capture = _RolloutEnd()
        self.sb3 = SB3Progress(self.model, int(cfg.train.env_steps), self.capture)
        self.expert_obs = torch.as_tensor(demos.obs, dtype=torch.float32)
        self.expert_act = torch.as_tensor(demos.actions)
        self.g = torch.Generator().manual_seed(seed)
        self.rounds = 0
        self.iteration_note = f"a round collects algo.{a.generator}.n_steps x algo.n_envs = {self.model.n_steps * a.n_envs} env steps"

    @property
    def env_steps(self) -> int:
        return int(self.model.num_timesteps)

    @property
    def updates(self) -> int:
        return self.sb3.n_updates

    def _update_discriminator(self, obs: np.ndarray, actions: np.ndarray) -> dict[str, float]:
        """``epochs`` passes over the rollout's pairs, each minibatch against as many expert pairs."""
        d, disc = self.algo.discriminator, self.disc
        disc.update_obs_stats(np.concatenate([obs, self.demos.obs]))
        n, batch = len(obs), min(d.batch_size, len(obs))
        sums: dict[str, float] = {}
        steps = 0
        for _ in range(d.epochs):
            perm = torch.randperm(n, generator=self.g)
            for start in range(0, n - batch + 1, batch):
                idx = perm[start : start + batch]
                e_idx = torch.randint(len(self.expert_obs), (batch,), generator=self.g)
                logs = disc.step(self.d_opt, self.expert_obs[e_idx], self.expert_act[e_idx], obs[idx.numpy()], actions[idx.numpy()], d, self.g)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
        return {k: v / max(steps, 1) for k, v in sums.items()}

    def iterate(self) -> list[dict[str, float]]:
        a, model = self.algo, self.model
        self.sb3.collect(self.gen_env)
        roll = self.reward_venv.pop_rollout()
        steps_shape = roll["rewards"].shape  # (n_steps, n_envs)
        obs = roll["obs"].reshape(-1, *roll["obs"].shape[2:])
        actions = roll["actions"].reshape(-1, *roll["actions"].shape[2:])
        logs = self._update_discriminator(obs, actions)
        if a.relabel:
            new_rewards = self.disc.reward(obs, actions, a.reward).reshape(steps_shape)
            # Shift by the change only: SB3 added gamma * V(s_T) at time-limit ends; keep it.
            model.rollout_buffer.rewards += new_rewards - roll["rewards"]
            model.rollout_buffer.compute_returns_and_advantage(last_values=self.capture.last_values, dones=self.capture.dones)
        else:
            new_rewards = roll["rewards"]
        model.train()
        self.rounds += 1
        logs.update(
            {
                "reward_mean": float(new_rewards.mean()),
                "train_true_return": float(np.mean([e["r"] for e in model.ep_info_buffer])) if model.ep_info_buffer else float("nan"),
                **self.sb3.train_logs(),
            }
        )
        return [logs]

    def acting_policy(self, i: int = 0) -> LoadedPolicy:
        normalizer = None
        if isinstance(self.gen_env, VecNormalize):
            rms = self.gen_env.obs_rms
            normalizer = ObsNormalizer(rms.mean.copy(), rms.var.copy(), self.gen_env.clip_obs, self.gen_env.epsilon)
        return LoadedPolicy(self.model.policy, normalizer)

    def save_policy(self, i: int, path: Path) -> None:
        save_policy(
            path,
            self.model.policy,
            self.acting_policy().normalizer,
            meta={"algo": "gail", "generator": self.algo.generator, "env": self.cfg.env.name},
        )

    def state_dict(self, i: int = 0) -> dict[str, Any]:
        return {
            "sb3": self.sb3.state_dict(),
            "env_states": get_vec_env_states(self.venv),
            "wrapper_obs": self.reward_venv.state(),
            "obs_rms": getattr(self.gen_env, "obs_rms", None),
            "old_obs": getattr(self.gen_env, "old_obs", None),
            "disc": self.disc.state_dict(),
            "d_opt": self.d_opt.state_dict(),
            "g": self.g.get_state(),
            "rng": rng_state(),
            "rounds": self.rounds,
        }

    def load_state_dict(self, i: int, s: dict[str, Any]) -> None:
        self.sb3.load_state_dict(s["sb3"])
        set_vec_env_states(self.venv, s["env_states"])
        self.reward_venv.set_state(s["wrapper_obs"])
        if isinstance(self.gen_env, VecNormalize):
            self.gen_env.obs_rms, self.gen_env.old_obs = s["obs_rms"], s["old_obs"]
        self.disc.load_state_dict(s["disc"])
        self.d_opt.load_state_dict(s["d_opt"])
        self.g.set_state(s["g"])
        set_rng_state(s["rng"])
        self.rounds = s["rounds"]

    def summary(self, i: int = 0) -> dict[str, Any]:
        return {"demo_pairs": len(self.demos), "generator": self.algo.generator, "rounds": self.rounds}
