"""The state MGAIL and Dyna-AIL share (envs, D, forward model, policy, replay) and its single steps.

Each algorithm file (:mod:`ail.algos.model_based.mgail`, :mod:`ail.algos.model_based.dyna`) is only a schedule of these
steps; the math is in :mod:`ail.algos.model_based.unroll`, :mod:`ail.algos.model_based.forward_model`, :mod:`ail.algos.model_based.diff_policy`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional, Sequence, TypeVar

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig
from stable_baselines3.common.buffers import ReplayBuffer

from ail.algorithm import Learner
from ail.algos.model_based.config import ModelBasedConfig, TrustRegionConfig
from ail.algos.model_based.diff_policy import DiffPolicy
from ail.algos.model_based.forward_model import build_forward_model
from ail.algos.model_based.natural_gradient import natural_gradient_step
from ail.algos.model_based.unroll import (
    RealUnroller,
    Unrolled,
    check_horizon,
    encode_actions,
    episode_limit,
    imagined_unroll,
    policy_step,
    replay_sequences,
)
from ail.demos import Demos
from ail.discriminator import build_discriminator
from ail.env_state import get_vec_env_states, set_vec_env_states
from ail.envs import make_env, make_vec_env
from ail.errors import ConfigError, TrainingError
from ail.policy import LoadedPolicy, save_policy
from ail.schema import algo_settings
from ail.seeding import rng_state, set_random_seed, set_rng_state

MBSettings = TypeVar("MBSettings", bound=ModelBasedConfig)


class ModelBasedLearner(Learner[MBSettings]):
    """Builds every piece from ``self.algo`` (MGAIL's or Dyna-AIL's settings); subclasses write ``iterate`` (and ``begin``, the warm-up)."""

    failure_hint = "lower algo.policy.lr or algo.discriminator.lr"

    @classmethod
    def upgrade_config(cls, algo: dict[str, Any]) -> dict[str, Any]:
        """A config written before ensembles, k-step model training and the model's activation key:
        one ReLU model, one-step loss."""
        if isinstance(algo.get("forward_model"), dict):
            algo = {**algo, "forward_model": {"members": 1, "train_horizon": 1, "activation": "relu", **algo["forward_model"]}}
        return algo

    @classmethod
    def validate(cls, cfg: DictConfig, demos: Demos) -> None:
        """Checks both algorithms need before any training (subclasses add their own, then call this)."""
        a = algo_settings(cfg)
        assert isinstance(a, ModelBasedConfig)
        check_horizon(a.unroll_steps, "algo.unroll_steps", episode_limit(cfg.env.name))
        warmup = max(1, a.warmup_steps // a.n_envs) * a.n_envs
        if int(cfg.train.env_steps) <= warmup:
            raise ConfigError(
                f"train.env_steps={cfg.train.env_steps} is spent by the warm-up alone ({warmup} env steps: "
                f"algo.warmup_steps={a.warmup_steps} over algo.n_envs={a.n_envs}), so no update would run; "
                f"accepted: train.env_steps > {warmup}, or a smaller algo.warmup_steps"
            )
        f = a.forward_model
        check_horizon(f.train_horizon, "algo.forward_model.train_horizon", episode_limit(cfg.env.name))
        if f.train_horizon > 1 and f.expert_fraction > 0:
            raise ConfigError(
                f"algo.forward_model.train_horizon={f.train_horizon} with algo.forward_model.expert_fraction={f.expert_fraction}: "
                f"the demonstrations hold single transitions, not sequences; accepted: train_horizon=1, or expert_fraction=0"
            )
        env = make_env(cfg.env.name)
        build_discriminator(env.observation_space, env.action_space, a.discriminator)  # e.g. an obs_slice beyond the task's entries
        env.close()

    def __init__(self, cfg: DictConfig, demos: Demos, seeds: Sequence[int]):
        super().__init__(cfg, demos, seeds)
        a = self.algo
        self.seed = int(cfg.seed)
        set_random_seed(self.seed, int(cfg.runtime.threads))
        self.venv = make_vec_env(cfg.env.name, n_envs=a.n_envs, seed=self.seed)
        space = self.venv.action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.expert_obs = torch.as_tensor(demos.obs, dtype=torch.float32)
        self.expert_act = encode_actions(torch.as_tensor(demos.actions), space)
        self.expert_next_obs = torch.as_tensor(demos.next_obs, dtype=torch.float32)
        self.policy = DiffPolicy(
            self.venv.observation_space,
            space,
            net_arch=a.policy.net_arch,
            noise_std=a.policy.noise_std,
            temperature=a.policy.temperature,
            action_bound=a.policy.action_bound,
        )
        self.policy.set_statistics(demos.obs, None if self.discrete else np.asarray(demos.actions, dtype=np.float64))
        # The evaluated and saved policy: a Polyak average of the trained one when algo.policy.average > 0.
        self.avg_rate = a.policy.average
        self.policy_avg = copy.deepcopy(self.policy)
        self.fm = build_forward_model(a.forward_model, demos.obs, self.expert_act.numpy(), not self.discrete)
        self.disc = build_discriminator(self.venv.observation_space, space, a.discriminator)
        self.disc.update_obs_stats(demos.obs)
        self.p_opt = torch.optim.Adam(self.policy.parameters(), lr=a.policy.lr)
        self.f_opt = torch.optim.Adam(self.fm.parameters(), lr=a.forward_model.lr)
        self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=a.discriminator.lr)
        self.replay = ReplayBuffer(
            a.replay_size // a.n_envs,
            self.venv.observation_space,
            space,
            device="cpu",
            n_envs=a.n_envs,
            handle_timeout_termination=False,
        )
        self.g = torch.Generator().manual_seed(self.seed)
        self.trust_region: Optional[TrustRegionConfig] = None
        self.np_rng = np.random.default_rng(self.seed)
        self.unroller = RealUnroller(self.venv, self.policy, self.fm, self.replay, a.gamma, a.forward_model.max_error, self.g)
        self.counters: dict[str, Any] = {"iteration": 0, "updates": 0, "policy_skipped": 0}
        self.iteration_note = f"a real unroll steps algo.n_envs = {a.n_envs} envs algo.unroll_steps = {a.unroll_steps} times"

    # ----- checkpoints ---------------------------------------------------------------------
    def state_dict(self, i: int = 0) -> dict[str, Any]:
        u = self.unroller
        return {
            "policy": self.policy.state_dict(),
            "policy_avg": self.policy_avg.state_dict(),
            "fm": self.fm.state_dict(),
            "disc": self.disc.state_dict(),
            "p_opt": self.p_opt.state_dict(),
            "f_opt": self.f_opt.state_dict(),
            "d_opt": self.d_opt.state_dict(),
            "replay": self.replay,
            "env_states": get_vec_env_states(self.venv),
            "last_obs": u.last_obs,
            "env_steps": u.env_steps,
            "stopped_unrolls": u.stopped_unrolls,
            "g": self.g.get_state(),
            "np_rng": self.np_rng.bit_generator.state,
            "rng": rng_state(),
            "counters": self.counters,
        }

    def load_state_dict(self, i: int, s: dict[str, Any]) -> None:
        self.policy.load_state_dict(s["policy"])
        self.policy_avg.load_state_dict(s["policy_avg"])
        self.fm.load_state_dict(s["fm"])
        self.disc.load_state_dict(s["disc"])
        self.p_opt.load_state_dict(s["p_opt"])
        self.f_opt.load_state_dict(s["f_opt"])
        self.d_opt.load_state_dict(s["d_opt"])
        self.replay = self.unroller.replay = s["replay"]
        set_vec_env_states(self.venv, s["env_states"])
        u = self.unroller
        u.last_obs, u.env_steps, u.stopped_unrolls = s["last_obs"], s["env_steps"], s["stopped_unrolls"]
        self.g.set_state(s["g"])
        self.np_rng.bit_generator.state = s["np_rng"]
        set_rng_state(s["rng"])
        self.counters = s["counters"]

    @property
    def env_steps(self) -> int:
        return self.unroller.env_steps

    @property
    def updates(self) -> int:
        return int(self.counters["updates"])

    # ----- single steps ----------------------------------------------------------------------
    def _replay_batch(self, n: int) -> Any:
        """``n`` replay rows; MuJoCo's float64 observations become float32 like the networks."""
        b = self.replay.sample(n)
        return b._replace(observations=b.observations.float(), next_observations=b.next_observations.float())

    def d_step(self) -> dict[str, float]:
        """One D step: ``batch_size`` replay pairs against as many expert pairs (real data only)."""
        d, n = self.algo.discriminator, self.algo.batch_size
        batch = self._replay_batch(n)
        e_idx = torch.randint(len(self.expert_obs), (n,), generator=self.g)
        self.disc.update_obs_stats(np.concatenate([batch.observations.numpy(), self.expert_obs[e_idx].numpy()]))
        return self.disc.step(
            self.d_opt,
            self.expert_obs[e_idx],
            self.expert_act[e_idx],
            batch.observations,
            encode_actions(batch.actions, self.venv.action_space),
            d,
            self.g,
            encoded=True,
        )

    def fm_step(self) -> float:
        """One Adam step of the forward model's loss (:meth:`ForwardModel.sequence_loss`) on a replay
        batch: transitions, a share ``forward_model.expert_fraction`` of them drawn from the
        demonstrations' instead, or (``train_horizon > 1``) real sequences of that many steps."""
        n, f = self.algo.batch_size, self.algo.forward_model
        if f.train_horizon > 1:
            seqs = replay_sequences(self.replay, f.train_horizon, n, self.np_rng)
            if seqs is None:
                return float("nan")  # no stored sequence that long yet: the model waits for one
            obs, acts = seqs
            act_t = encode_actions(torch.as_tensor(acts).reshape(-1, acts.shape[-1]), self.venv.action_space)
            loss = self.fm.sequence_loss(torch.as_tensor(obs, dtype=torch.float32), act_t.reshape(len(obs), f.train_horizon, -1))
        else:
            n_expert = int(round(n * f.expert_fraction))
            parts = []
            if n_expert < n:
                b = self._replay_batch(n - n_expert)
                parts.append((b.observations, encode_actions(b.actions, self.venv.action_space), b.next_observations))
            if n_expert:
                # The learner's replay holds only states it reached; a policy that falls early never
                # shows its model the states it must learn to reach (docs/notes/mgail_dyna.md, Walker2d).
                e = torch.randint(len(self.expert_obs), (n_expert,), generator=self.g)
                parts.append((self.expert_obs[e], self.expert_act[e], self.expert_next_obs[e]))
            loss = self.fm.loss(*(torch.cat(column) for column in zip(*parts)))
        if not torch.isfinite(loss):
            raise TrainingError("the forward model's loss is NaN/inf")
        self.f_opt.zero_grad()
        loss.backward()
        self.f_opt.step()
        return float(loss.detach()) / len(self.fm.members)

    def use_trust_region(self, region: TrustRegionConfig) -> None:
        """Policy steps become natural-gradient steps under ``KL <= region.max_kl`` (Dyna-AIL's TRPO rule)."""
        self.trust_region = region

    def real_policy_update(self, steps: int) -> dict[str, float]:
        """MGAIL's update: one real unroll of ``steps`` in every env, backprop through f and D."""
        return self.policy_update_from(self.unroller.unroll(steps, store=self.algo.store_unroll))

    def policy_update_from(self, unrolled: Unrolled) -> dict[str, float]:
        """One policy step on a real unroll's cost, scored by D as it is now."""
        loss = unrolled.loss(self.disc, self.algo.policy.bound_penalty) * self.algo.cost_weight
        return self._policy_step(loss, {"policy_loss": float(loss.detach()), "unroll_stopped": float(unrolled.stopped_early)}, unrolled)

    def planning_update(self, steps: int, batch: int) -> dict[str, float]:
        """Dyna-AIL's planning update: imagined rollouts of ``steps`` from replay states, no env."""
        start = self._replay_batch(batch).observations
        a = self.algo
        unrolled, kept = imagined_unroll(self.policy, self.fm, start, steps, a.gamma, a.forward_model.plan_bound, self.g)
        loss = unrolled.loss(self.disc, a.policy.bound_penalty) * a.cost_weight
        return self._policy_step(loss, {"plan_loss": float(loss.detach()), "plan_kept": kept}, unrolled)

    def _policy_step(self, loss: torch.Tensor, logs: dict[str, float], unrolled: Unrolled) -> dict[str, float]:
        if self.algo.policy.lr_schedule == "linear":
            # Both algorithms swing between near-expert and poor policies on Hopper at a constant
            # rate; annealing to 0 over the budget lets the last policy settle.
            frac = max(0.0, 1.0 - self.env_steps / int(self.cfg.train.env_steps))
            for group in self.p_opt.param_groups:
                group["lr"] = self.algo.policy.lr * frac
        if self.trust_region is not None:
            applied, kl = natural_gradient_step(self.policy, loss, torch.cat(unrolled.obs), self.trust_region)
            logs["policy_kl"] = kl
        else:
            applied = policy_step(self.policy, self.p_opt, loss, self.algo.policy.grad_clip)
        if applied and self.avg_rate > 0:
            with torch.no_grad():
                for p_avg, p in zip(self.policy_avg.parameters(), self.policy.parameters()):
                    p_avg.lerp_(p, self.avg_rate)
        if not applied:
            self.counters["policy_skipped"] += 1  # a non-finite gradient is skipped, not applied
        self.counters["updates"] += 1
        return logs

    @torch.no_grad()
    def fm_errors(self, horizon: int) -> dict[str, float]:
        """The forward model's open-loop error (normalised MSE) 1 and ``horizon`` steps ahead, on replay sequences."""
        seqs = replay_sequences(self.replay, horizon, 256, self.np_rng)
        if seqs is None:
            return {}
        obs, acts = seqs
        act_t = encode_actions(torch.as_tensor(acts).reshape(-1, acts.shape[-1]), self.venv.action_space)
        err = self.fm.multi_step_error(torch.as_tensor(obs, dtype=torch.float32), act_t.reshape(len(obs), horizon, -1))
        return {"fm_error_1": float(err[0]), f"fm_error_{horizon}": float(err[-1])}

    # ----- evaluation, the end ------------------------------------------------------------
    def acting_policy(self, i: int = 0) -> LoadedPolicy:
        return LoadedPolicy(self.policy_avg if self.avg_rate > 0 else self.policy)

    def evaluation_logs(self, i: int = 0) -> dict[str, float]:
        return {
            **self.fm_errors(self.algo.unroll_steps),
            "unrolls_stopped": float(self.unroller.stopped_unrolls),
            "policy_skipped": float(self.counters["policy_skipped"]),
        }

    def save_policy(self, i: int, path: Path) -> None:
        save_policy(path, self.acting_policy().policy, meta={"algo": self.cfg.algo.name, "env": self.cfg.env.name})

    def summary(self, i: int = 0) -> dict[str, Any]:
        c = self.counters
        return {
            "demo_pairs": len(self.demos),
            "iterations": c["iteration"],
            "unrolls_stopped": self.unroller.stopped_unrolls,
            "policy_steps_skipped": c["policy_skipped"],
        }
