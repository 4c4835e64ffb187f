"""How far GAIL's generator gets on a task with the true reward: the ceiling of ``algo=gail`` there.

    python benchmarks/generator_ceiling.py [--env ant] [--steps N] [--eval-every N] [--episodes 10] [--seed 0] [OVERRIDE ...]

The generator is built exactly as ``algo=gail`` builds it (conf/algo/gail.yaml, the task's
conf/algo_env/gail_<env>.yaml, then any Hydra OVERRIDE such as ``algo.ppo.n_steps=4096``): the same
SB3 algorithm, policy, settings and observation normalisation, on the environment's own reward in
place of the discriminator's. If this run stays below 0.9 within GAIL's budget, GAIL (the same
generator on D's reward) would need a reward far easier to climb than the task's own: the
generator's settings are what to tune first. Prints one row per evaluation (deterministic
episodes, the normalised score of ``ail.evaluation``).

SAM's generator needs no script: ``python launch.py algo=sam env=ant algo.reward=env`` trains its
actor-critic on the task's own reward, with a run directory like any other.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from ail.algos.gail import GAILConfig, build_generator
from ail.config import CONF_DIR, check_config, register_resolvers
from ail.envs import make_vec_env
from ail.errors import ConfigError
from ail.evaluation import normalized_score, rollouts
from ail.experts import expert_info
from ail.schema import algo_settings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="ant", help="short env name (conf/env/<name>.yaml)")
    parser.add_argument("--steps", type=int, default=None, help="env steps (default: GAIL's budget, train.env_steps)")
    parser.add_argument("--eval-every", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of algo.* (e.g. algo.ppo.n_steps=4096)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=["algo=gail", f"env={args.env}", *args.overrides])
    try:
        check_config(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    a = algo_settings(cfg)
    assert isinstance(a, GAILConfig)
    steps = args.steps or int(cfg.train.env_steps)
    info = expert_info(args.env)
    venv = make_vec_env(args.env, n_envs=a.n_envs, seed=args.seed, subprocess=a.vec_env == "subproc")
    if a.normalize_obs:
        # As GAIL wraps its generator's env: observations normalised, the reward left as it comes.
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False, gamma=a.sb3_kwargs.gamma)
    model = build_generator(a, venv, args.seed)

    def act(obs: np.ndarray) -> np.ndarray:
        x = venv.normalize_obs(obs) if isinstance(venv, VecNormalize) else obs
        return model.predict(x, deterministic=True)[0]

    t0 = time.perf_counter()

    def report() -> None:
        ret, ended = rollouts(act, args.env, args.episodes, seed=400_000)
        score = normalized_score(float(ret.mean()), info["return_mean"], info["random_return_mean"])
        print(
            f"{model.num_timesteps:10d} {ret.mean():10.1f} ± {ret.std():7.1f} {score:7.3f} {f'{ended.sum()}/{len(ended)}':>11s} "
            f"{(time.perf_counter() - t0) / 60:8.1f}",
            flush=True,
        )

    class Every(BaseCallback):
        """An evaluation at the start of the first rollout past each ``--eval-every`` steps (the policy just updated)."""

        def __init__(self) -> None:
            super().__init__()
            self.next = args.eval_every

        def _on_rollout_start(self) -> None:
            if self.num_timesteps >= self.next:
                report()
                self.next += args.eval_every

        def _on_step(self) -> bool:
            return True

    print(f"{a.generator} on {cfg.env.id} with the true reward, {steps} env steps, seed {args.seed}; overrides: {args.overrides or 'none'}")
    print(f"{'env steps':>10s} {'return':>20s} {'score':>7s} {'ended early':>11s} {'minutes':>8s}", flush=True)
    # One learn() call over the whole budget, as GAIL's: its learning-rate and clip schedules decay over all of it.
    model.learn(steps, callback=Every())
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
