"""Summarise finished runs across seeds:  python -m ail.results runs/EXPERIMENT [more dirs ...]

Reads every ``summary.json`` (and its ``metrics.csv``) below the given directories, groups runs
by run group and prints a markdown table: seeds, final return and normalised
score (mean ± std over seeds), and the env steps at which each seed's evaluation first reached
a normalised score of 0.8, 0.9 and 0.95 (median, and how many seeds got there).
One row per run group (``<label>-<env>-d<demos>``), so variants such as ``dyna-tp5``/``dyna-tp50`` stay apart.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import numpy as np


def first_reach(metrics: Path, threshold: float) -> Optional[int]:
    """Env steps of the first evaluation whose normalised score is >= ``threshold`` (None if never)."""
    with open(metrics, newline="") as f:
        for row in csv.DictReader(f):
            if float(row["normalized_score"]) >= threshold:
                return int(row["env_steps"])
    return None


THRESHOLDS = (0.8, 0.9, 0.95)


def collect(dirs: list[Path]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for d in dirs:
        for path in sorted(Path(d).rglob("summary.json")):
            s = json.loads(path.read_text())
            for t in THRESHOLDS:
                s[f"reach_{t}"] = first_reach(path.parent / "metrics.csv", t)
            # The run group's directory (<label>-<env>-d<demos>) names the variant: gail-ppo, dyna-tp10, mgail-fm-basic...
            suffix = f"-{s['env']}-d{s['demos']}"
            group = path.parent.parent.name
            label = group[: -len(suffix)] if group.endswith(suffix) else s["algo"]
            groups[(label, s["env"], s["demos"], s.get("demo_pairs", ""))].append(s)
    return groups


def _fmt_reach(values: list[Optional[int]]) -> str:
    hit = [v for v in values if v is not None]
    if not hit:
        return f"never (0/{len(values)})"
    return f"{int(np.median(hit)):,} ({len(hit)}/{len(values)})"


def table(groups: dict[tuple[Any, ...], list[dict[str, Any]]]) -> str:
    lines = [
        "| algo | env | demos | expert pairs | seeds | env steps | final return | normalised score | steps to 0.8 | steps to 0.9 | steps to 0.95 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (algo, env, demos, pairs), runs in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        ret = np.array([r["final_return_mean"] for r in runs])
        score = np.array([r["normalized_score"] for r in runs])
        steps = max(r["env_steps"] for r in runs)
        lines.append(
            f"| {algo} | {env} | {demos} | {pairs} | {len(runs)} | {steps:,} | {ret.mean():.1f} ± {ret.std():.1f} | "
            f"{score.mean():.3f} ± {score.std():.3f} (min {score.min():.3f}) | "
            + " | ".join(_fmt_reach([r[f"reach_{t}"] for r in runs]) for t in THRESHOLDS) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories or experiment directories")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    groups = collect(args.dirs)
    if not groups:
        print(f"error: no finished runs (summary.json) below {', '.join(map(str, args.dirs))}", file=sys.stderr)
        return 2
    print(table(groups))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
