"""The benchmark grid's report: per-cell tables with bootstrap intervals, rliable aggregates, figures.

    python -m ail.benchmark ../grid/benchmark --out docs/results/benchmark \
        --grid sweeps/benchmark_grid.yaml sweeps/benchmark_grid_sam.yaml sweeps/benchmark_grid_sam_sac.yaml \
        sweeps/benchmark_grid_model_based.yaml --not-run sweeps/not_run/benchmark_grid.yaml

The grid is ``sweeps/benchmark_grid*.yaml``: algorithms x tasks x seeds, one demonstration
protocol for all (4 trajectories, every 20th pair: ``demo_set.subsample``, said once in each
file). Every statistic is over the **normalised score** of the final policy (``summary.json``: 50
deterministic episodes, ``(R - R_random) / (R_expert - R_random)``, expert = 1).

Runs are grouped by the demonstrations they were shown (:class:`ail.runs.Protocol`: how many
trajectories, which, every how many pairs), and no table, aggregate or figure mixes two groups.
``--out/README.md`` holds the command and every protocol's table (the grid files' protocol first);
``--out/<protocol>/`` (``d4-every20``, ``d4-whole``) holds each protocol's:

- ``table.md`` / ``table.csv``: one row per task x algorithm: complete seeds, out of those the
  ``--grid`` sweep files plan (with them, planned cells not run yet have their row too; without,
  out of the runs found), and what the others are (incomplete, failed, not started; a cell with
  no complete seed says how far its incomplete seeds got and their last evaluation); final
  score, mean and 95% percentile-bootstrap interval over seeds; env steps to a score of 0.9 (median
  over the seeds that reached it, with how many did); wall time per seed (mean, minutes; a process
  that trained K seeds at once, ``train.seeds_per_process=K``, counts its wall time / K per seed);
  core-hours of the cell (one core per process: the sum of those per-seed times).
- ``aggregate.md``: per algorithm, the interquartile mean (IQM) and mean over its runs on all the
  tasks it has, with 95% stratified-bootstrap intervals (``rliable``: runs resampled within each
  task); with an unequal number of seeds per task, the tasks and seeds ``ail.aggregate.equal_seeds`` keeps (said there).
- ``curves_<env>.png``: normalised score against env steps (log axis), mean across seeds with the
  95% bootstrap interval band, per algorithm; the demonstrations' band (mean ± std, normalised);
  learners without env steps (BC) as a level with its interval.
- ``aggregate_iqm.png``: IQM across the tasks of the normalised score against env steps, with its
  stratified-bootstrap band; ``profile.png``: the performance profile (fraction of runs whose
  final score exceeds tau) with intervals.
- ``README.md``: the protocol's tables and figures on one page.

Only complete runs enter the statistics; incomplete and failed ones are counted in the table.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import yaml
from omegaconf import OmegaConf

from ail.aggregate import (
    CONFIDENCE,
    RESAMPLES,
    SEED,
    aggregate,
    complete_cells,
    count,
    iqm_curve_figure,
    log_grid,
    markdown_aggregate,
    profile_figure,
    score_matrices,
    scores_at,
)
from ail.api import sweep_jobs
from ail.errors import ConfigError
from ail.figures import DEMO_COLOR, finish_steps_axes, fmt_steps, palette, pyplot, steps_axis
from ail.runs import Protocol, RunRecord, demo_returns, display_path, load_runs

THRESHOLD = 0.9


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``values`` (a single value: that value)."""
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    means = rng.choice(values, size=(RESAMPLES, len(values)), replace=True).mean(1)
    lo, hi = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(lo), float(hi)


Plan = dict[tuple[str, str], set[int]]  # (label, env) -> seeds
NotRun = dict[tuple[str, str], str]  # (label, env) -> why the grid leaves the cell out


def planned_cells(sweeps: Sequence[Path]) -> dict[Protocol, Plan]:
    """Per demonstration protocol, (label, env) -> the seeds the sweep files run for it
    (:func:`ail.api.sweep_jobs`; a job with ``train.seeds_per_process=K`` runs K seeds)."""
    plan: dict[Protocol, Plan] = defaultdict(lambda: defaultdict(set))
    for sweep in sweeps:
        for cfg, _ in sweep_jobs(sweep):
            if cfg.task == "train":
                first = int(cfg.seed)
                protocol = Protocol.of(OmegaConf.to_container(cfg, resolve=True))
                plan[protocol][(str(cfg.algo.label), str(cfg.env.name))].update(range(first, first + int(cfg.train.seeds_per_process)))
    return {p: dict(cells) for p, cells in plan.items()}


def cell_rows(runs: list[RunRecord], plan: Optional[Plan] = None, not_run: Optional[NotRun] = None) -> list[dict[str, Any]]:
    """One row per (task, algorithm) found in ``runs`` (one protocol's), planned by ``plan`` (that
    protocol's cells) or left out of the grid with a reason (``not_run``: (label, env) -> why)."""
    rng = np.random.default_rng(SEED)
    found: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.env != "?":
            found[(r.label, r.env)].append(r)
    done = complete_cells(runs)
    rows = []
    not_run = not_run or {}
    for label, env in sorted(set(found) | set(plan or {}) | set(not_run), key=lambda key: (key[1], key[0])):
        cell, members = done.get((label, env), []), found.get((label, env), [])
        row: dict[str, Any] = {"env": env, "algo": label, "seeds": len(cell), "runs": len(members)}
        if (label, env) in not_run:
            row["reason"] = not_run[(label, env)]
        if plan is not None:
            seeds = plan.get((label, env), set())
            row["planned"] = len(seeds)
            row["not_started"] = len(seeds - {r.seed for r in members})
        row["incomplete"] = sum(r.status == "incomplete" for r in members)
        row["failed"] = sum(r.status == "failed" for r in members)
        # How far the unfinished seeds got, so a cell stopped for compute says where it stood.
        partial = [r for r in members if r.status == "incomplete" and len(r.steps)]
        if partial:
            row.update(
                partial_runs=len(partial),
                partial_steps=(min(int(r.steps[-1]) for r in partial), max(int(r.steps[-1]) for r in partial)),
                partial_budget=max(r.budget for r in partial),
                partial_score=float(np.mean([r.scores[-1] for r in partial])),
            )
        if cell:
            scores = np.array([r.summary["normalized_score"] for r in cell])
            lo, hi = bootstrap_ci(scores, rng)
            reached = [x for x in (r.first_reach(THRESHOLD) for r in cell) if x is not None]
            row.update(
                score_mean=float(scores.mean()),
                ci_low=lo,
                ci_high=hi,
                reached=len(reached),
                steps_to_threshold=int(np.median(reached)) if reached else None,
                env_steps=max(int(r.summary["env_steps"]) for r in cell),
                wall_minutes=float(np.mean([r.summary["wall_time_s"] / r.seeds_per_process for r in cell])) / 60,
                # One core per process: a process of K seeds spent its time on all K.
                core_hours=float(sum(r.summary["wall_time_s"] / r.seeds_per_process for r in cell)) / 3600,
            )
        rows.append(row)
    return rows


# ----- outputs ---------------------------------------------------------------------------------
def _fmt_steps(n: Optional[int]) -> str:
    return "–" if n is None else fmt_steps(n)


def _seeds(row: dict[str, Any]) -> str:
    """``complete of planned`` (of runs found, without a plan or for a cell it does not name), and what the others are."""
    planned = row.get("planned")
    text = f"{row['seeds']} of {planned or row['runs']}"
    rest = [f"{row[k]} {k.replace('_', ' ')}" for k in ("incomplete", "failed", "not_started") if row.get(k)]
    if row.get("reason"):
        rest.append("left out of the grid")
    elif planned == 0:
        rest.append("not in the grid files")
    elif planned is None and 0 < row["seeds"] < 3:
        rest.append("fewer than 3 seeds")
    return f"{text} ({', '.join(rest)})" if rest else text


def _unfinished(row: dict[str, Any]) -> str:
    """The score cell of a row without a complete seed: where its incomplete seeds stand, if they evaluated."""
    if not row["runs"]:
        return f"not run: {row['reason']}" if row.get("reason") else "not run"
    if not row.get("partial_runs"):
        return "not complete"
    lo, hi = (_fmt_steps(n) for n in row["partial_steps"])
    at = lo if lo == hi else f"{lo}–{hi}"
    seeds = count(row["partial_runs"], "incomplete seed")
    return f"not complete: {seeds} at {at} of {_fmt_steps(row['partial_budget'])} env steps, last evaluation {row['partial_score']:.3f} (mean)"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"| task | algorithm | complete seeds | final normalised score: mean [95% CI] | env steps to {THRESHOLD} (median; seeds) "
        f"| env steps | wall time per seed (min) | core-hours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["seeds"]:
            lines.append(f"| {r['env']} | {r['algo']} | {_seeds(r)} | {_unfinished(r)} | | | | |")
            continue
        reach = f"{_fmt_steps(r['steps_to_threshold'])} ({r['reached']}/{r['seeds']})" if r["env_steps"] else "no env steps"
        lines.append(
            f"| {r['env']} | {r['algo']} | {_seeds(r)} | {r['score_mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
            f"| {reach} | {_fmt_steps(r['env_steps']) if r['env_steps'] else '0'} | {r['wall_minutes']:.1f} | {r['core_hours']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_table_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = ["env", "algo", "seeds", "runs", "planned", "incomplete", "failed", "not_started"]
    cols += ["score_mean", "ci_low", "ci_high", "reached", "steps_to_threshold", "env_steps", "wall_minutes", "core_hours"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _band(ax: Any, grid: np.ndarray, values: np.ndarray, rng: np.random.Generator, color: str, label: str) -> None:
    """Mean across seeds (rows of ``values``) with a per-step 95% bootstrap band."""
    mean = values.mean(0)
    if len(values) > 1:
        idx = rng.integers(len(values), size=(RESAMPLES, len(values)))
        boot = values[idx].mean(1)
        lo, hi = np.quantile(boot, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2], axis=0)
        ax.fill_between(grid, lo, hi, color=color, alpha=0.2, lw=0)
    ax.plot(grid, mean, color=color, lw=1.8, label=label)


def curves_figure(path: Path, runs: list[RunRecord]) -> None:
    """One task's curves (``runs``: its complete runs, every algorithm)."""
    plt = pyplot()
    rng = np.random.default_rng(SEED)
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    by_label: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        by_label[r.label].append(r)
    interacting = [r for r in runs if r.interacts and (r.steps > 0).any()]
    x_max = max((int(r.steps[-1]) for r in interacting), default=1_000_000)
    x_min = min((int(r.steps[r.steps > 0].min()) for r in interacting), default=1_000)
    colours = palette(sorted(by_label))
    for label, group in sorted(by_label.items()):
        c = colours[label]
        seeds = count(len(group), "seed")
        scores = np.array([r.summary["normalized_score"] for r in group])
        if not any(r.interacts for r in group):  # no env steps: its final score as a level
            lo, hi = bootstrap_ci(scores, rng)
            ax.axhspan(lo, hi, color=c, alpha=0.15, lw=0)
            ax.axhline(float(scores.mean()), color=c, ls="-.", lw=1.5, label=f"{label} (no env steps, {seeds})")
            continue
        grid = log_grid(group)
        _band(ax, grid, np.stack([scores_at(r, grid) for r in group]), rng, c, f"{label} ({seeds})")
    ref = demo_returns(runs[0])
    if ref is not None and len(ref):
        expert, rand = runs[0].summary["expert_return"], runs[0].summary["random_return"]
        norm = (ref - rand) / (expert - rand)
        ax.axhspan(float(norm.mean() - norm.std()), float(norm.mean() + norm.std()), color=DEMO_COLOR, alpha=0.12, lw=0)
        ax.axhline(float(norm.mean()), color=DEMO_COLOR, lw=1.2, label=f"demonstrations ({len(ref)})")
    steps_axis(ax, x_min, x_max)
    shown = runs[0].protocol.name if runs[0].protocol else f"{runs[0].demos} demonstrations"
    ax.set_title(f"{runs[0].env_id}, {shown}")
    finish_steps_axes(fig, ax, path, "normalised score (expert = 1)")


def write_index(out: Path, protocol: Protocol, written: list[Path], table: str, agg: str) -> Path:
    """``README.md`` of one protocol's folder: its tables and every figure, so the folder reads on its
    own (GitHub renders a folder's README)."""
    names = {p.name for p in written} | {p.name for p in out.glob("*.png")}  # --tables-only keeps the figures drawn before
    parts = [
        f"# The benchmark grid: {protocol.name}",
        "Written by `python -m ail.benchmark` (the command: [../README.md](../README.md)); do not edit by hand. Every "
        "statistic is over the normalised score of the final policy over 50 deterministic episodes: 1 is the shipped "
        "expert's mean return, 0 uniform random actions.",
        "## Cells\n\n" + table.strip(),
    ]
    if agg:
        parts.append("## Across tasks\n\n" + agg.strip() + "\n\n![performance profile](profile.png)")
    if "aggregate_iqm.png" in names:
        parts.append("![IQM against env steps](aggregate_iqm.png)")
    curves = sorted(n for n in names if n.startswith("curves_"))
    if curves:
        parts.append("## Learning curves\n\n" + "\n\n".join(f"![{n[len('curves_') : -len('.png')]}]({n})" for n in curves))
    (out / "README.md").write_text("\n\n".join(parts) + "\n")
    return out / "README.md"


def protocol_report(
    out: Path,
    protocol: Protocol,
    runs: list[RunRecord],
    plan: Optional[Plan],
    figures: bool = True,
    not_run: Optional[NotRun] = None,
) -> dict[str, Any]:
    """One protocol's tables and (``figures``) figures in ``out`` (its runs only: no statistic mixes protocols)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = cell_rows(runs, plan, not_run)
    table = markdown_table(rows)
    (out / "table.md").write_text(table)
    write_table_csv(out / "table.csv", rows)
    written = [out / "table.md", out / "table.csv"]
    matrices, tasks = score_matrices(runs)
    agg = aggregate(matrices) if matrices else {}
    agg_text = markdown_aggregate(agg, matrices, tasks) if matrices else ""
    if matrices:
        (out / "aggregate.md").write_text(agg_text)
        written.append(out / "aggregate.md")
    if figures:
        written += _figures(out, runs, matrices)
    written.append(write_index(out, protocol, written, table, agg_text))
    return {"rows": rows, "aggregate": agg, "table": table, "written": written}


def _figures(out: Path, runs: list[RunRecord], matrices: Any) -> list[Path]:
    """One protocol's figures: its performance profile, every task's curves, the IQM against env steps."""
    written = []
    if matrices:
        profile_figure(out / "profile.png", matrices)
        written.append(out / "profile.png")
    by_env: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.status == "complete" and len(r.steps):
            by_env[r.env].append(r)
    for env, members in sorted(by_env.items()):
        curves_figure(out / f"curves_{env}.png", members)
        written.append(out / f"curves_{env}.png")
    iqm = iqm_curve_figure(out / "aggregate_iqm.png", runs)
    return written + ([iqm] if iqm is not None else [])


def _protocol_of(run: RunRecord, plans: dict[Protocol, Plan]) -> Protocol:
    """A run's protocol; a job that failed before writing its config takes the one its sweep planned it in."""
    if run.protocol is not None:
        return run.protocol
    planned = [p for p, cells in plans.items() if run.seed in cells.get((run.label, run.env), set())]
    return planned[0] if len(planned) == 1 else Protocol(run.demos)


def load_not_run(path: Path) -> NotRun:
    """The cells a grid leaves out, each with why: a YAML list of ``{algo: <label>, env: <name>, reason: <text>}``."""
    accepted = "accepted: a YAML list of entries with algo (a run label), env and reason, as in sweeps/not_run/benchmark_grid.yaml"
    try:
        entries = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--not-run {path} cannot be read ({type(exc).__name__}); {accepted}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and {"algo", "env", "reason"} <= set(e) for e in entries):
        raise ConfigError(f"--not-run {path} is not such a list; {accepted}")
    return {(str(e["algo"]), str(e["env"])): str(e["reason"]).strip() for e in entries}


def benchmark_report(
    roots: Sequence[Path], out: Path, grid: Sequence[Path] = (), figures: bool = True, not_run: Optional[Path] = None
) -> dict[str, Any]:
    """Write the tables and figures of every run below ``roots`` into ``out``, one folder per
    demonstration protocol (:class:`ail.runs.Protocol`: ``out/d4-every20``, ``out/d4-whole``), and
    ``out/README.md`` with the command and every protocol's table; returns what was written.

    :param grid: sweep files that plan the grid; a protocol's table then has a row for every cell
        they run in it, with its complete seeds out of those planned (without: cells found, out of runs found).
    :param figures: draw the figures too (False: the tables only, in seconds).
    :param not_run: a file of the cells the grid leaves out, each with why (:func:`load_not_run`):
        each keeps its row in the grid's tables, with its reason.
    """
    left_out = load_not_run(not_run) if not_run else None
    plans = planned_cells(grid) if grid else {}
    runs = load_runs(list(roots))
    if not runs:
        raise FileNotFoundError(f"no training run directories below {', '.join(map(str, roots))}")
    groups: dict[Protocol, list[RunRecord]] = defaultdict(list)
    for r in runs:
        groups[_protocol_of(r, plans)].append(r)
    # The planned protocols first (the grid's headline), then the others, each by its name.
    order = sorted(plans, key=lambda p: p.name) + sorted(set(groups) - set(plans), key=lambda p: p.name)
    reports = {
        p: protocol_report(out / p.slug, p, groups.get(p, []), plans.get(p) if grid else None, figures, left_out if p in plans else None)
        for p in order
    }
    command = " ".join(["python -m ail.benchmark", *map(display_path, roots), "--out", display_path(out)])
    if grid:
        command += " --grid " + " ".join(map(display_path, grid))
    if not_run:
        command += f" --not-run {display_path(not_run)}"
    parts = [
        "# The benchmark grid",
        f"Written by `{command}`; do not edit by hand. One table per demonstration protocol: runs shown other "
        "demonstrations are never compared in one table or aggregate. Every statistic is over the normalised score of "
        "the final policy over 50 deterministic episodes: 1 is the shipped expert's mean return, 0 uniform random actions.",
    ]
    for p, rep in reports.items():
        parts.append(f"## {p.name}\n\nFolder [{p.slug}]({p.slug}/README.md): its aggregate across tasks and curves.\n\n" + rep["table"].strip())
    (out / "README.md").write_text("\n\n".join(parts) + "\n")
    written = [w for rep in reports.values() for w in rep["written"]] + [out / "README.md"]
    return {"runs": runs, "protocols": reports, "written": written}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ail.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="the grid's experiment directory (paths.runs/benchmark), or several")
    parser.add_argument("--out", type=Path, required=True, help="directory for the tables and figures (docs/results/benchmark)")
    parser.add_argument(
        "--grid",
        type=Path,
        nargs="+",
        default=[],
        help="the sweep files that plan the grid (sweeps/benchmark_grid*.yaml): the table lists every cell they run, not run ones included",
    )
    parser.add_argument("--not-run", type=Path, default=None, help="the cells the grid leaves out, with why (sweeps/not_run/benchmark_grid.yaml)")
    parser.add_argument("--tables-only", action="store_true", help="write the tables and READMEs, not the figures")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(missing)}; accepted: directories holding run directories", file=sys.stderr)
        return 2
    try:
        result = benchmark_report(args.dirs, args.out, args.grid, figures=not args.tables_only, not_run=args.not_run)
    except (FileNotFoundError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p, rep in result["protocols"].items():
        print(f"{p.name} ({args.out / p.slug}):\n{rep['table']}")
    for r in result["runs"]:
        if r.status != "complete":
            print(f"warning: {r.status} run {display_path(r.dir)}" + (f": {r.message}" if r.message else ""), file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in result["written"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
