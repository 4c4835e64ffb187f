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

from typing import Any, Optional, Sequence

from omegaconf import DictConfig

from ail.algos.model_based.config import MGAILConfig
from ail.algos.model_based.learner import ModelBasedLearner
from ail.algos.model_based.unroll import reset_to_states
from ail.demos import Demos
from ail.envs import make_vec_env
from ail.errors import ConfigError
from ail.schema import algo_settings
from ail.seeding import derive_seed


class MGAIL(ModelBasedLearner[MGAILConfig]):
    """``algo=mgail``: one iteration of mgail's ``train_step`` schedule (module docstring)."""

    @classmethod
    def validate(cls, cfg: DictConfig, demos: Demos) -> None:
        super().validate(cfg, demos)
        a = algo_settings(cfg)
        assert isinstance(a, MGAILConfig)
        if a.collect_start == "expert" and getattr(demos, "qpos", None) is None:
            raise ConfigError(
                f"algo.collect_start=expert needs simulator states in the demonstrations (MuJoCo tasks); "
                f"env={cfg.env.name} has none; accepted here: live"
            )

    def __init__(self, cfg: DictConfig, demos: Demos, seeds: Sequence[int]):
        super().__init__(cfg, demos, seeds)
        a = self.algo
        # algo.collect_start=expert: collections start from random expert states in envs of their own.
        self.start_venv: Optional[Any] = None
        if a.collect_start == "expert":
            self.start_venv = make_vec_env(cfg.env.name, n_envs=a.n_envs, seed=derive_seed("expert_starts", self.seed))
        # The latest value of every log, carried across iterations: an evaluation row shows the
        # last D step's and the last policy update's numbers whichever this iteration ran.
        self.logs: dict[str, float] = {}

    def state_dict(self, i: int = 0) -> dict[str, Any]:
        return {**super().state_dict(i), "logs": dict(self.logs)}

    def load_state_dict(self, i: int, s: dict[str, Any]) -> None:
        super().load_state_dict(i, s)
        self.logs = dict(s["logs"])

    def begin(self) -> None:
        self.unroller.collect(max(1, self.algo.warmup_steps // self.algo.n_envs))

    def collect(self, steps: int) -> None:
        """``steps`` noisy steps per env into the replay: continuing the live episodes or, with
        ``algo.collect_start=expert``, from random expert states (mgail's ``env.set_state``)."""
        start = None
        if self.start_venv is not None:
            start = (self.start_venv, reset_to_states(self.start_venv, self.demos.qpos, self.demos.qvel, self.np_rng))
        self.unroller.collect(steps, start=start)

    def iterate(self) -> list[dict[str, Any]]:
        a, it = self.algo, self.counters["iteration"]
        logs = self.logs
        logs["fm_loss"] = self.fm_step()
        if it < a.prep_iters or ((it - a.prep_iters) // a.block_iters) % 2 == 0:
            logs.update(self.d_step())
        else:
            logs.update(self.real_policy_update(a.unroll_steps))
        if it >= a.prep_iters and it % a.collect_every == 0:
            self.collect(a.collect_steps)
        self.counters["iteration"] += 1
        return [dict(logs)]
