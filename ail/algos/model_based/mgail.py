"""MGAIL (Baram et al., ICML 2017): end-to-end differentiable adversarial imitation.

The policy is trained by backpropagating D's cost through a learned forward model along real
trajectories (the state re-parameterisation ``s' = f(s, a) + stopgrad(s_env - f(s, a))``, see
:mod:`ail.algos.model_based.unroll`); no policy-gradient estimator, no reward. The schedule is mgail's
``driver.py::train_step``, every count a config key (``conf/algo/mgail.yaml``):

0. **Warm-up**: ``warmup_steps`` noisy env steps (``n_envs`` in lock-step) fill the replay.
1. **Every iteration**: one forward-model step on a replay batch.
2. Iterations ``< prep_iters``: one D step each (D warm-up).
3. Later: blocks of ``block_iters`` iterations alternate between one D step per iteration and
   one policy update per iteration (one real unroll of ``unroll_steps`` in each of the
   ``n_envs`` envs; mgail accumulates 7 batch-1 unrolls, here they run side by side), and every
   ``collect_every`` iterations each env takes ``collect_steps`` noisy steps into the replay:
   continuing the live episodes (``collect_start=live``) or, as mgail did, from random expert
   states (``collect_start=expert``; MuJoCo, whose demonstration sets store ``qpos``/``qvel``).

Every real env step, those inside the unrolls included, counts towards ``train.env_steps``.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from ail.algos.model_based.learner import ModelBasedLearner
from ail.demos import Demos
from ail.errors import ConfigError


class MGAIL(ModelBasedLearner):
    """``algo=mgail``: one iteration of mgail's ``train_step`` schedule (module docstring)."""

    @classmethod
    def validate(cls, cfg: DictConfig, demos: Demos) -> None:
        super().validate(cfg, demos)
        a = cfg.algo
        if str(a.collect_start) == "expert" and getattr(demos, "qpos", None) is None:
            raise ConfigError(
                f"algo.collect_start=expert needs simulator states in the demonstrations (MuJoCo tasks); "
                f"env={cfg.env.name} has none; accepted here: live"
            )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # The latest value of every log, carried across iterations: an evaluation row shows the
        # last D step's and the last policy update's numbers whichever this iteration ran.
        self.logs: dict[str, float] = {}

    def state_dict(self, i: int = 0) -> dict[str, Any]:
        return {**super().state_dict(i), "logs": dict(self.logs)}

    def load_state_dict(self, i: int, s: dict[str, Any]) -> None:
        super().load_state_dict(i, s)
        self.logs = dict(s["logs"])

    def begin(self) -> None:
        self.unroller.collect(max(1, int(self.a.warmup_steps) // int(self.a.n_envs)))

    def iterate(self) -> list[dict[str, Any]]:
        a, it = self.a, self.counters["iteration"]
        logs = self.logs
        logs["fm_loss"] = self.fm_step()
        if it < int(a.prep_iters) or ((it - int(a.prep_iters)) // int(a.block_iters)) % 2 == 0:
            logs.update(self.d_step())
        else:
            logs.update(self.real_policy_update(int(a.unroll_steps)))
        if it >= int(a.prep_iters) and it % int(a.collect_every) == 0:
            self.collect(int(a.collect_steps))
        self.counters["iteration"] += 1
        return [dict(logs)]
