"""Behavioral cloning: maximise the likelihood of expert actions under an SB3 policy.

Continuous actions: the SB3 diagonal-Gaussian policy's negative log-likelihood; discrete
actions: cross-entropy of its categorical head. Loss per minibatch of B expert pairs::

    L = -mean_b log pi(a_b | s_b) - ent_weight * mean_b H(pi(.|s_b)) + l2_weight * sum ||W||^2 / 2

(as in the `imitation` library's BC). Observations are standardised with the demonstrations'
statistics; the saved policy applies that itself. BC takes no environment steps: its budget is
``algo.updates`` gradient steps, ``eval.every`` counts gradient steps too, and ``env_steps``
stays 0 in its metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import DictConfig

from ail.activations import activation as activation_class
from ail.algorithm import Learner
from ail.demos import Demos
from ail.envs import make_env
from ail.policy import LoadedPolicy, ObsNormalizer, save_policy
from ail.schema import Activation, AlgoConfig, Flag, Layers, NonNegNum, Number, PosInt, PosNum
from ail.seeding import rng_state, set_random_seed, set_rng_state


class BCConfig(AlgoConfig):
    """``conf/algo/bc.yaml``: each key's type and range (values and meaning in the YAML)."""

    updates: PosInt
    eval_every: PosInt
    batch_size: PosInt
    lr: PosNum
    weight_decay: NonNegNum
    l2_weight: NonNegNum
    ent_weight: Number
    net_arch: Layers
    activation: Activation
    normalize_obs: Flag
    obs_clip: PosNum


def build_policy(observation_space: Any, action_space: Any, net_arch: list[int], activation: str, lr: float) -> Any:
    from stable_baselines3.common.policies import ActorCriticPolicy

    act_cls = activation_class(activation, "algo.activation")
    return ActorCriticPolicy(
        observation_space,
        action_space,
        lr_schedule=lambda _: lr,
        net_arch=dict(pi=list(net_arch), vf=[]),
        activation_fn=act_cls,
    )


def bc_loss(policy: Any, obs: torch.Tensor, actions: torch.Tensor, ent_weight: float, l2_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """BC loss on a batch: obs ``(B, obs_dim)``, actions ``(B, act_dim)`` or ``(B,)``; returns (loss, logs)."""
    _, log_prob, entropy = policy.evaluate_actions(obs, actions)
    neglogp = -log_prob.mean()
    ent = entropy.mean() if entropy is not None else torch.zeros(())
    l2 = sum(p.pow(2).sum() for n, p in policy.named_parameters() if "weight" in n) / 2
    loss = neglogp - ent_weight * ent + l2_weight * l2
    return loss, {"loss": loss.item(), "neglogp": neglogp.item(), "entropy": ent.item()}


class BC(Learner[BCConfig]):
    """``algo=bc``: one iteration is one gradient step on a minibatch of expert pairs."""

    unit = "updates"
    interacts_with_env = False

    @classmethod
    def validate(cls, cfg: DictConfig, demos: Demos) -> None:
        """Nothing beyond the schema and the demonstration loader's checks of the env's spaces."""

    def __init__(self, cfg: DictConfig, demos: Demos, seeds: Sequence[int]):
        super().__init__(cfg, demos, seeds)
        a = self.algo
        set_random_seed(int(cfg.seed), int(cfg.runtime.threads))
        env = make_env(cfg.env.name)
        self.normalizer = None
        obs = demos.obs
        if a.normalize_obs:
            # Standardise with demo statistics; a zero-variance feature keeps unit scale.
            var = demos.obs.var(axis=0)
            self.normalizer = ObsNormalizer(demos.obs.mean(axis=0), np.where(var < 1e-8, 1.0, var), clip=a.obs_clip)
            obs = self.normalizer(demos.obs)
        self.policy = build_policy(env.observation_space, env.action_space, a.net_arch, a.activation, a.lr)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=a.lr, weight_decay=a.weight_decay)
        self.obs = torch.as_tensor(obs, dtype=torch.float32)
        self.act = torch.as_tensor(demos.actions)
        self.generator = torch.Generator().manual_seed(int(cfg.seed))
        self.batch = min(a.batch_size, len(self.obs))
        self._updates = 0

    @property
    def env_steps(self) -> int:
        return 0

    @property
    def updates(self) -> int:
        return self._updates

    @property
    def progress(self) -> int:
        return self._updates

    @property
    def budget(self) -> int:
        return self.algo.updates

    def iterate(self) -> list[dict[str, float]]:
        a = self.algo
        self.policy.train()
        idx = torch.randint(len(self.obs), (self.batch,), generator=self.generator)
        loss, logs = bc_loss(self.policy, self.obs[idx], self.act[idx], a.ent_weight, a.l2_weight)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.policy.eval()
        self._updates += 1
        return [logs]

    def acting_policy(self, i: int = 0) -> LoadedPolicy:
        return LoadedPolicy(self.policy, self.normalizer)

    def save_policy(self, i: int, path: Path) -> None:
        save_policy(path, self.policy, self.normalizer, meta={"algo": "bc", "env": self.cfg.env.name})

    def state_dict(self, i: int = 0) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "rng": rng_state(),
            "updates": self._updates,
        }

    def load_state_dict(self, i: int, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        set_rng_state(state["rng"])
        self._updates = int(state["updates"])

    def summary(self, i: int = 0) -> dict[str, Any]:
        return {"demo_pairs": len(self.demos), "demo_return_mean": float(self.demos.ep_returns.mean())}
