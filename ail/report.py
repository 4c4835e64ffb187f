"""The papers' figures and tables from run directories (no W&B needed).

    python -m ail.report runs/sam-figure2 [more dirs ...] --out docs/results/figure2
    python -m ail.report runs/issue6 --threshold 0.8 0.9 0.95      # the tables only, on stdout

Writes into ``--out`` (without it, prints ``table.md`` and writes nothing). Runs are grouped by the
demonstrations they were shown (:class:`ail.runs.Protocol`), never pooled across them; each
protocol's files carry its suffix: ``d<N>`` for the first N whole trajectories, its slug
(``d4-every20``) otherwise.

- ``figure_<suffix>.png``: SAM-Figure-2-style panels, one per task: the deterministic evaluation return
  against environment interactions (log axis from the first evaluation, step 0 at the left edge);
  every seed's evaluations as points, the mean across seeds as a line with a ± one-std band
  (clipped to the seeds' own range); the demonstrations given to the learner in red (mean line, ± std
  band, dotted min, dashed max), or named at the top when they are far above the curves' scale.
  Learners that take no interactions (BC) are a flat line. One legend, below the panels
  (:mod:`ail.figures`).
- ``--aggregate``: per protocol, ``aggregate_<suffix>.md``, ``profile_<suffix>.png`` and
  ``aggregate_iqm_<suffix>.png``: IQM and mean across tasks with stratified-bootstrap intervals
  (:mod:`ail.aggregate`, the benchmark's own).
- ``table.md`` / ``table.csv``: MGAIL-Table-1-style cells (mean ± std over seeds of the final
  return and normalised score per algorithm x task x protocol) and, per ``--threshold`` (default
  0.9), the env steps at which each seed's evaluation first reached that normalised score.
- ``runs.csv``: one line per run directory found, with its status.

Incomplete runs (no ``summary.json``) and failed ones (a sweep's ``.failures`` record) are listed in
``table.md`` and on stderr, never silently dropped; only complete runs enter the statistics.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ail.figures import panel_figure, save
from ail.runs import GroupKey, RunRecord, display_path, load_runs


def group_rows(runs: list[RunRecord], thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """One row per (label, env, demonstration protocol) over its complete runs (statistics over
    seeds, population std): runs shown different demonstrations are never pooled.

    ``reach[t]`` is (seeds that reached normalised score t, median env steps at which they first did)."""
    groups: dict[GroupKey, list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.env != "?":
            groups[r.key].append(r)
    rows = []
    for (label, env, protocol), members in sorted(groups.items()):
        done = [r for r in members if r.status == "complete"]
        row: dict[str, Any] = {
            "algo": label,
            "env": env,
            "demos": protocol.demos,
            "protocol": protocol.short,
            "seeds": len(done),
            "runs": len(members),
        }
        if done:
            ret = np.array([r.summary["final_return_mean"] for r in done])
            score = np.array([r.summary["normalized_score"] for r in done])
            reach = {}
            for t in thresholds:
                hit = [x for x in (r.first_reach(t) for r in done) if x is not None]
                reach[t] = (len(hit), int(np.median(hit)) if hit else None)
            row.update(
                env_steps=max(int(r.summary["env_steps"]) for r in done),
                return_mean=float(ret.mean()),
                return_std=float(ret.std()),
                score_mean=float(score.mean()),
                score_std=float(score.std()),
                score_min=float(score.min()),
                expert_return=float(done[0].summary["expert_return"]),
                reach=reach,
            )
        rows.append(row)
    return rows


# ----- outputs ---------------------------------------------------------------------------------
def _cell(row: dict[str, Any]) -> str:
    if not row["seeds"]:
        return "—"
    return f"{row['return_mean']:.1f} ± {row['return_std']:.1f} ({row['score_mean']:.2f})"


def _reach(row: dict[str, Any], threshold: float) -> str:
    if not row["seeds"]:
        return "—"
    if row.get("env_steps", 0) == 0:
        return "n/a (no env steps)"
    reached, steps = row["reach"][threshold]
    if steps is None:
        return f"never (0/{row['seeds']})"
    return f"{steps:,} ({reached}/{row['seeds']})"


def markdown(rows: list[dict[str, Any]], runs: list[RunRecord], thresholds: Sequence[float]) -> str:
    out = [
        "## Final return by task and demonstrations (Table 1 style)",
        "",
        "Mean ± std over seeds of the final evaluation return (normalised score in brackets: 0 = random policy, 1 = expert).",
        "",
    ]
    algos = sorted({r["algo"] for r in rows})
    out += ["| task | demos | " + " | ".join(algos) + " |", "|---|---|" + "---|" * len(algos)]
    cells = {(r["env"], r["protocol"], r["algo"]): r for r in rows}
    for env, shown in sorted({(r["env"], r["protocol"]) for r in rows}):
        line = [_cell(cells[(env, shown, a)]) if (env, shown, a) in cells else "" for a in algos]
        out.append(f"| {env} | {shown} | " + " | ".join(line) + " |")
    named = " / ".join(f"{t:g}" for t in thresholds)
    out += [
        "",
        f"## Every group, with the env steps to reach {named} of the expert",
        "",
        "Steps to threshold: median over the seeds that reached it (how many did). Seeds: complete runs / run directories found.",
        "",
        "| algo | task | demos | seeds | env steps | final return | normalised score | expert return | "
        + " | ".join(f"steps to {t:g}" for t in thresholds)
        + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(thresholds),
    ]
    for r in rows:
        if r["seeds"]:
            out.append(
                f"| {r['algo']} | {r['env']} | {r['protocol']} | {r['seeds']}/{r['runs']} | {r['env_steps']:,} | "
                f"{r['return_mean']:.1f} ± {r['return_std']:.1f} | {r['score_mean']:.3f} ± {r['score_std']:.3f} (min {r['score_min']:.3f}) | "
                f"{r['expert_return']:.1f} | " + " | ".join(_reach(r, t) for t in thresholds) + " |"
            )
        else:
            out.append(f"| {r['algo']} | {r['env']} | {r['protocol']} | 0/{r['runs']} | — | — | — | — | " + "— | " * len(thresholds))
    bad = [r for r in runs if r.status != "complete"]
    out += ["", "## Incomplete or failed runs", ""]
    if not bad:
        out.append("None: every run directory found is complete.")
    for r in sorted(bad, key=lambda r: str(r.dir)):
        where = f"{int(r.steps[-1]):,} of {r.budget:,} env steps" if len(r.steps) else "no evaluation yet"
        out.append(f"- {r.status}: `{display_path(r.dir)}` ({where})" + (f": {r.message}" if r.message else ""))
    return "\n".join(out) + "\n"


CSV_COLUMNS = [
    "algo",
    "env",
    "demos",
    "seeds",
    "runs",
    "env_steps",
    "return_mean",
    "return_std",
    "score_mean",
    "score_std",
    "expert_return",
    "reached",
    "steps_to_threshold",
    "protocol",
]


def write_csv(path: Path, rows: list[dict[str, Any]], thresholds: Sequence[float]) -> None:
    """``reached``/``steps_to_threshold``: the first threshold's; with several, one pair of columns each."""
    per_threshold = [f"{k}_{t:g}" for t in thresholds for k in ("reached", "steps_to")] if len(thresholds) > 1 else []
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS + per_threshold, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            flat = dict(row)
            if "reach" in row:
                flat["reached"], flat["steps_to_threshold"] = row["reach"][thresholds[0]]
                for t, (n, steps) in row["reach"].items():
                    flat[f"reached_{t:g}"], flat[f"steps_to_{t:g}"] = n, steps
            w.writerow(flat)


def write_runs_csv(path: Path, runs: list[RunRecord]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "dir",
                "algo",
                "env",
                "demos",
                "seed",
                "status",
                "last_env_steps",
                "budget",
                "final_return_mean",
                "normalized_score",
                "git_sha",
                "command",
                "message",
            ]
        )
        for r in sorted(runs, key=lambda r: str(r.dir)):
            meta = _meta(r.dir)
            w.writerow(
                [
                    display_path(r.dir),
                    r.label,
                    r.env,
                    r.demos,
                    r.seed,
                    r.status,
                    int(r.steps[-1]) if len(r.steps) else "",
                    r.budget,
                    r.summary.get("final_return_mean", ""),
                    r.summary.get("normalized_score", ""),
                    meta.get("git_sha", ""),
                    meta.get("command", ""),
                    r.message,
                ]
            )


def _meta(run_dir: Path) -> dict[str, Any]:
    """Provenance of a run (the commit and command that created it), from its meta.json."""
    try:
        return json.loads((run_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return {}


def report(roots: list[Path], out: Optional[Path], threshold: Union[float, Sequence[float]] = 0.9, aggregates: bool = False) -> dict[str, Any]:
    """Write the figures and tables for every run below ``roots`` into ``out`` (``None``: write nothing);
    returns the rows, the runs, the table's markdown and the figures written. ``aggregates``: also
    the across-task aggregates per demonstration protocol (:func:`write_aggregates`)."""
    thresholds = [float(threshold)] if isinstance(threshold, (int, float)) else [float(t) for t in threshold]
    runs = load_runs(roots)
    if not runs:
        raise FileNotFoundError(f"no training run directories below {', '.join(map(str, roots))}")
    rows = group_rows(runs, thresholds)
    text = markdown(rows, runs, thresholds)
    if out is None:
        return {"rows": rows, "runs": runs, "markdown": text, "figures": []}
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text)
    write_csv(out / "table.csv", rows, thresholds)
    write_runs_csv(out / "runs.csv", runs)
    figures = []
    for shown in sorted({r.shown for r in runs if r.demos > 0 and len(r.steps)}):
        these = [r for r in runs if r.shown == shown]
        path = out / f"figure_{shown.figure_suffix}.png"
        save(panel_figure(these, shown.demos), path)
        figures.append(path)
        if aggregates:
            figures += write_aggregates(out, these, f"_{shown.figure_suffix}")
    return {"rows": rows, "runs": runs, "markdown": text, "figures": figures}


def write_aggregates(out: Path, runs: list[RunRecord], suffix: str) -> list[Path]:
    """``aggregate<suffix>.md`` (IQM and mean of the final normalised score across tasks per algorithm,
    stratified-bootstrap intervals), ``aggregate_iqm<suffix>.png`` (IQM against env steps) and
    ``profile<suffix>.png`` (performance profile), with ``rliable`` (:mod:`ail.aggregate`)."""
    from ail.aggregate import aggregate, iqm_curve_figure, markdown_aggregate, profile_figure, score_matrices

    matrices, tasks = score_matrices(runs)
    if not matrices:
        return []
    (out / f"aggregate{suffix}.md").write_text(markdown_aggregate(aggregate(matrices), matrices, tasks))
    profile_figure(out / f"profile{suffix}.png", matrices)
    written = [out / f"aggregate{suffix}.md", out / f"profile{suffix}.png"]
    iqm = iqm_curve_figure(out / f"aggregate_iqm{suffix}.png", runs)
    return written + ([iqm] if iqm is not None else [])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ail.report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="experiment directories (runs/<experiment>) or run directories")
    parser.add_argument("--out", type=Path, help="directory for the PNGs, table.md, table.csv and runs.csv (without it: print the tables only)")
    parser.add_argument(
        "--threshold",
        type=float,
        nargs="+",
        default=[0.9],
        help="normalised score(s) for the 'env steps to reach' columns (default 0.9; e.g. 0.8 0.9 0.95)",
    )
    parser.add_argument(
        "--aggregate",
        action="store_true",
        help="also aggregate across tasks per algorithm (rliable IQM and mean with stratified-bootstrap intervals, performance profile, "
        "IQM vs env steps): aggregate_d<N>.md, profile_d<N>.png, aggregate_iqm_d<N>.png",
    )
    args = parser.parse_args(argv)
    if args.aggregate and args.out is None:
        print("error: --aggregate writes figures; accepted: --aggregate with --out DIR", file=sys.stderr)
        return 2
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(missing)}; accepted: directories holding run directories", file=sys.stderr)
        return 2
    for t in args.threshold:
        if not 0 < t <= 1.5:
            print(f"error: --threshold {t} is invalid; accepted: normalised scores in (0, 1.5]", file=sys.stderr)
            return 2
    try:
        result = report(args.dirs, args.out, args.threshold, aggregates=args.aggregate)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result["markdown"])
    bad = [r for r in result["runs"] if r.status != "complete"]
    for r in bad:
        print(f"warning: {r.status} run {display_path(r.dir)}" + (f": {r.message}" if r.message else ""), file=sys.stderr)
    if args.out is not None:
        print(f"wrote {', '.join(str(p) for p in result['figures'])}, {args.out / 'table.md'}, {args.out / 'table.csv'}, {args.out / 'runs.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
