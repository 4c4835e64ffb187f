"""MGAIL (Baram et al., ICML 2017): end-to-end differentiable adversarial imitation.

The policy is trained by backpropagating D's cost through a learned forward model along real
trajectories (the state re-parameterisation ``s' = f(s, a) + stopgrad(s_env - f(s, a))``, see
:mod:`ail.model_based`); no policy-gradient estimator, no reward. The schedule is mgail's
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

from ail.algos.mb_learner import Learner, validate_common
from ail.errors import ConfigError
from ail.model_based import positive
from ail.run import Run


def validate(cfg: Any, demos: Any) -> None:
    """Every check that needs no training, run by ``launch.py`` before the run directory exists."""
    validate_common(cfg, demos)
    a = cfg.algo
    if not isinstance(a.prep_iters, int) or a.prep_iters < 0:
        raise ConfigError(f"algo.prep_iters={a.prep_iters} is invalid; accepted: an integer >= 0")
    for key in ("block_iters", "collect_every", "collect_steps"):
        positive(a[key], f"algo.{key}")
    if str(a.collect_start) not in ("live", "expert"):
        raise ConfigError(f"algo.collect_start={a.collect_start} is invalid; accepted: live, expert")
    if str(a.collect_start) == "expert" and getattr(demos, "qpos", None) is None:
        raise ConfigError(f"algo.collect_start=expert needs simulator states in the demonstrations (MuJoCo tasks); "
                          f"env={cfg.env.name} has none; accepted here: live")


def train(run: Run) -> None:
    a = run.cfg.algo
    validate(run.cfg, run.demos)
    learner = Learner(run)
    if learner.env_steps == 0:
        learner.unroller.collect(max(1, int(a.warmup_steps) // int(a.n_envs)))
    prep, block = int(a.prep_iters), int(a.block_iters)
    logs: dict[str, float] = {}

    def one_iteration() -> dict[str, float]:
        it = learner.counters["iteration"]
        logs["fm_loss"] = learner.fm_step()
        if it < prep or ((it - prep) // block) % 2 == 0:
            logs.update(learner.d_step())
        else:
            logs.update(learner.real_policy_update(int(a.unroll_steps)))
        if it >= prep and it % int(a.collect_every) == 0:
            learner.collect(int(a.collect_steps))
        return dict(logs)

    learner.loop("mgail", one_iteration)
    learner.finish({})
