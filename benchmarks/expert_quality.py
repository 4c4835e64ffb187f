"""Full-length check of every shipped expert: 50 fresh deterministic episodes vs its expert.json.

    python benchmarks/expert_quality.py [--episodes 50] [--experts DIR] [ENV ...]

Prints one row per expert: the return recorded in expert.json, the return measured now on
different episode seeds, the ratio of their normalised scores, and how many episodes the
environment ended before the time limit (in the locomotion tasks, a fall: what an imitator copies).
"""

from __future__ import annotations

import argparse
import sys

import torch

from ail import load_expert
from ail.evaluation import rollouts
from ail.experts import expert_info
from ail.paths import experts_root


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="*", help="short env names (default: every shipped expert)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--experts", default=None, help="an experts folder other than the shipped one (e.g. a replaced expert's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    root = experts_root(args.experts)
    names = args.envs or sorted(p.name for p in root.iterdir() if (p / "expert.json").is_file())
    print(f"{'env':24s} {'algo':5s} {'expert.json':>12s} {'measured':>18s} {'min':>9s} {'random':>9s} {'ratio':>6s} {'ended early':>11s}")
    for name in names:
        info = expert_info(name, root)
        ret, ended = rollouts(load_expert(name, root).predict, name, args.episodes, seed=300_000)
        span = info["return_mean"] - info["random_return_mean"]
        ratio = (ret.mean() - info["random_return_mean"]) / span if span else float("nan")
        print(
            f"{name:24s} {info['algorithm']:5s} {info['return_mean']:12.1f} {ret.mean():10.1f} ± {ret.std():6.1f} "
            f"{ret.min():9.1f} {info['random_return_mean']:9.1f} {ratio:6.3f} {f'{ended.sum()}/{len(ended)}':>11s}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
