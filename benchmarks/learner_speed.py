"""Env steps per second of SB3 expert learners side by side (why PPO trains the experts on CPU).

    python benchmarks/learner_speed.py [--env Walker2d-v5] [--steps 3000] [ALGO ...]

Each learner runs with SB3 defaults (off-policy: one gradient step per env step, batch 256)
and one torch thread; after a warm-up of 2000 steps (off-policy learning starts at 1000) it
times ``--steps`` more. The last column is the rate relative to PPO.
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import torch
from stable_baselines3 import PPO, SAC, TD3

ALGOS = {"ppo": PPO, "sac": SAC, "td3": TD3}


def steps_per_second(name: str, env_id: str, steps: int) -> float:
    kwargs = {} if name == "ppo" else {"learning_starts": 1000}
    model = ALGOS[name]("MlpPolicy", gym.make(env_id), device="cpu", seed=0, **kwargs)
    model.learn(2000)
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - t0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algos", nargs="*", help=f"any of {', '.join(ALGOS)} (default: all)")
    parser.add_argument("--env", default="Walker2d-v5")
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args(argv)
    bad = [a for a in args.algos if a not in ALGOS]
    if bad:
        parser.error(f"unknown algo {bad[0]!r}; accepted: {', '.join(ALGOS)}")
    torch.set_num_threads(1)
    rates = {a: steps_per_second(a, args.env, args.steps) for a in args.algos or list(ALGOS)}
    base = rates.get("ppo")
    print(f"{'algo':5s} {'env':16s} {'steps/s':>8s} {'vs PPO':>7s}")
    for a, r in rates.items():
        print(f"{a:5s} {args.env:16s} {r:8.1f} {r / base if base else float('nan'):7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
