"""Dyna-AIL (Saxena et al. 2019, Algorithm 1): MGAIL's model-free learning plus model-based planning.

One iteration (all counts are config keys, ``conf/algo/dyna.yaml``):

1. **Learning phase**, ``learn_iters`` (m) times: a real unroll of ``unroll_steps`` in each of
   the ``n_envs`` envs (its transitions enter the replay B), one D step on real data (replay
   against expert, eq. 6), then one policy step on the unroll's cost re-scored by the updated D
   and backpropagated through the forward model (eq. 7, MGAIL's re-parameterisation).
2. **Forward-model training**: ``fm_iters`` steps of the squared loss (eq. 5) on B.
3. **Planning phase**, ``plan_iters`` (p) times: ``plan_batch`` start states drawn from B, rolled
   out ``plan_steps`` (T_p) steps in the forward model alone (``s' = s + f(s, a)``, no env), one
   policy step on ``sum_t gamma^t (-log D)`` (eq. 8). D never sees imagined data.

``policy_update=trpo`` (the paper's section 5 variant) replaces each policy Adam step by a
natural-gradient step under a KL trust region (:mod:`ail.algos.model_based.natural_gradient`).
Every real env step counts towards ``train.env_steps``.
"""

from __future__ import annotations

from typing import Any, Sequence

from omegaconf import DictConfig

from ail.algos.model_based.config import DynaConfig
from ail.algos.model_based.learner import ModelBasedLearner
from ail.algos.model_based.unroll import check_horizon, episode_limit
from ail.demos import Demos
from ail.schema import algo_settings


class Dyna(ModelBasedLearner[DynaConfig]):
    """``algo=dyna``: one iteration of Algorithm 1 (learning, model training and planning phases)."""

    @classmethod
    def validate(cls, cfg: DictConfig, demos: Demos) -> None:
        super().validate(cfg, demos)
        a = algo_settings(cfg)
        assert isinstance(a, DynaConfig)
        check_horizon(a.plan_steps, "algo.plan_steps", episode_limit(cfg.env.name))

    def __init__(self, cfg: DictConfig, demos: Demos, seeds: Sequence[int]):
        super().__init__(cfg, demos, seeds)
        if self.algo.policy_update == "trpo":
            self.use_trust_region(self.algo.trust_region)

    def begin(self) -> None:
        self.unroller.collect(max(1, self.algo.warmup_steps // self.algo.n_envs))
        for _ in range(self.algo.fm_iters):
            self.fm_step()

    def iterate(self) -> list[dict[str, Any]]:
        a = self.algo
        logs: dict[str, float] = {}
        for _ in range(a.learn_iters):
            unrolled = self.unroller.unroll(a.unroll_steps, store=True)
            logs.update(self.d_step())
            logs.update(self.policy_update_from(unrolled))
        for _ in range(a.fm_iters):
            logs["fm_loss"] = self.fm_step()
        for _ in range(a.plan_iters):
            logs.update(self.planning_update(a.plan_steps, a.plan_batch))
        self.counters["iteration"] += 1
        return [logs]

    def summary(self, i: int = 0) -> dict[str, Any]:
        return {**super().summary(i), "policy_update": self.algo.policy_update}
