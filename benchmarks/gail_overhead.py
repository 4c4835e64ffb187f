"""What GAIL costs on top of its generator: env steps/s of plain SB3 PPO vs GAIL-PPO, side by side.

    python benchmarks/gail_overhead.py [--env hopper] [--steps 20480]

Both use the same PPO settings (conf/algo/gail.yaml plus the env's algo_env file), one torch
thread, and run one after the other in this process. GAIL adds per step a discriminator forward
pass (reward) and per round the discriminator update and the relabelling.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from stable_baselines3.common.vec_env import VecNormalize

from ail.config import CONF_DIR, register_resolvers
from ail.schema import algo_settings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--steps", type=int, default=20480)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    register_resolvers()
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "algo=gail",
                f"env={args.env}",
                f"train.env_steps={args.steps}",
                f"eval.every={10 * args.steps}",
                "eval.episodes=1",
                "eval.final_episodes=1",
                "runtime.progress=false",
                f"paths.runs={tmp}",
            ],
        )
        from ail.algos.gail import build_generator
        from ail.app import train_run
        from ail.envs import make_vec_env

        venv = make_vec_env(args.env, n_envs=algo_settings(cfg).n_envs, seed=0)
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False)
        model = build_generator(algo_settings(cfg), venv, seed=0)
        t0 = time.perf_counter()
        model.learn(args.steps)
        ppo_rate = model.num_timesteps / (time.perf_counter() - t0)

        (run_dir,) = train_run(cfg, Path(tmp) / "run")
        rows = _metrics(run_dir)
        # From the end of the step-0 evaluation to the end of the last one (one short episode each).
        gail_rate = int(rows[-1]["env_steps"]) / (float(rows[-1]["wall_time"]) - float(rows[0]["wall_time"]))
    print(f"{'env':12s} {'steps':>8s} {'PPO steps/s':>12s} {'GAIL-PPO steps/s':>17s} {'GAIL/PPO':>9s}")
    print(f"{args.env:12s} {args.steps:8d} {ppo_rate:12.0f} {gail_rate:17.0f} {gail_rate / ppo_rate:9.2f}")
    return 0


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
