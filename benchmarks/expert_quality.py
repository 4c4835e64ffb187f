"""Full-length check of every shipped expert: fresh deterministic episodes vs its expert.json.

    python benchmarks/expert_quality.py [--episodes 100] [--seed 600000] [--experts DIR] [--record FILE] [ENV ...]

The default episodes start from reset seeds that no training, selection, confirmation or
expert.json evaluation uses (those stay below 200,000): held-out episodes. ``--record`` merges the
rows into a JSON file (experts/heldout.json for the shipped experts, which
docs/make_experts_table.py shows beside their bars).

Prints one row per expert: the return recorded in expert.json, the return measured now on
different episode seeds, the ratio of their normalised scores, and how many episodes the
environment ended before the time limit (in the locomotion tasks, a fall: what an imitator copies).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ail import load_expert
from ail.evaluation import rollouts
from ail.experts import expert_info
from ail.paths import experts_root


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="*", help="short env names (default: every shipped expert)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=600_000, help="reset seed of the first episode (then +1 each)")
    parser.add_argument("--record", default=None, help="a JSON file to merge the measured rows into")
    parser.add_argument("--experts", default=None, help="an experts folder other than the shipped one (e.g. a replaced expert's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    root = experts_root(args.experts)
    names = args.envs or sorted(p.name for p in root.iterdir() if (p / "expert.json").is_file())
    print(f"{'env':24s} {'algo':5s} {'expert.json':>12s} {'measured':>18s} {'min':>9s} {'random':>9s} {'ratio':>6s} {'ended early':>11s}")
    rows: dict[str, dict[str, float]] = {}
    for name in names:
        info = expert_info(name, root)
        ret, ended = rollouts(load_expert(name, root).predict, name, args.episodes, seed=args.seed)
        rows[name] = {
            "episodes": args.episodes,
            "seed": args.seed,
            "return_mean": round(float(ret.mean()), 1),
            "return_std": round(float(ret.std()), 1),
            "return_min": round(float(ret.min()), 1),
            "ended_early": int(ended.sum()),
        }
        span = info["return_mean"] - info["random_return_mean"]
        ratio = (ret.mean() - info["random_return_mean"]) / span if span else float("nan")
        print(
            f"{name:24s} {info['algorithm']:5s} {info['return_mean']:12.1f} {ret.mean():10.1f} ± {ret.std():6.1f} "
            f"{ret.min():9.1f} {info['random_return_mean']:9.1f} {ratio:6.3f} {f'{ended.sum()}/{len(ended)}':>11s}",
            flush=True,
        )
    if args.record:
        path = Path(args.record)
        recorded = json.loads(path.read_text()) if path.is_file() else {}
        path.write_text(json.dumps({**recorded, **rows}, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
