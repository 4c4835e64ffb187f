"""The benchmark grid's report: per-cell tables with bootstrap intervals, rliable aggregates, figures.

    python -m ail.benchmark ../grid/benchmark --out docs/results/benchmark

The grid is ``sweeps/benchmark_grid*.yaml``: algorithms x tasks x seeds (4 demonstrations). Every
statistic is over the **normalised score** of the final policy (``summary.json``: 50 deterministic
episodes, ``(R - R_random) / (R_expert - R_random)``, expert = 1). Writes into ``--out``:

- ``table.md`` / ``table.csv``: one row per task x algorithm: complete seeds (of runs found); final
  score, mean and 95% percentile-bootstrap interval over seeds; env steps to a score of 0.9 (median
  over the seeds that reached it, with how many did); wall time per seed (mean, minutes).
- ``aggregate.md``: per algorithm, the interquartile mean (IQM) and mean over its runs on all the
  tasks it has, with 95% stratified-bootstrap intervals (``rliable``: runs resampled within each
  task); with an unequal number of seeds per task, each task's first ``min`` seeds are used (said there).
- ``curves_<env>.png``: normalised score against env steps (log axis), mean across seeds with the
  95% bootstrap interval band, per algorithm; the demonstrations' band (mean ± std, normalised);
  learners without env steps (BC) as a level with its interval.
- ``aggregate_iqm.png``: IQM across the tasks of the normalised score against env steps, with its
  stratified-bootstrap band; ``profile.png``: the performance profile (fraction of runs whose
  final score exceeds tau) with intervals.

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

from ail.report import RunRecord, _show, demo_returns, load_runs

THRESHOLD = 0.9
CONFIDENCE = 0.95
RESAMPLES = 2000  # bootstrap resamples (rliable's default is 50k; 2k keeps a report under a minute)
SEED = 0  # the bootstrap's own generator: the same runs always give the same intervals
COLORS = {"bc": "tab:gray", "gail-ppo": "tab:blue", "gail-trpo": "tab:cyan", "sam": "tab:orange", "mgail": "tab:green"}


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``values`` (a single value: that value)."""
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    means = rng.choice(values, size=(RESAMPLES, len(values)), replace=True).mean(1)
    lo, hi = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(lo), float(hi)


def _complete(runs: list[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    cells: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.status == "complete":
            cells[(r.label, r.env)].append(r)
    for cell in cells.values():
        cell.sort(key=lambda r: r.seed)
    return cells


def cell_rows(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per (task, algorithm) found below the roots."""
    rng = np.random.default_rng(SEED)
    found: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.env != "?":
            found[(r.label, r.env)].append(r)
    done = _complete(runs)
    rows = []
    for (label, env), members in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cell = done.get((label, env), [])
        row: dict[str, Any] = {"env": env, "algo": label, "seeds": len(cell), "runs": len(members)}
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
                wall_minutes=float(np.mean([r.summary["wall_time_s"] for r in cell])) / 60,
            )
        rows.append(row)
    return rows


def score_matrices(runs: list[RunRecord]) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per algorithm, final scores shaped ``(seeds, tasks)`` as rliable takes them (each task's first
    ``min`` seeds) and the tasks they cover."""
    by_algo: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for (label, env), cell in _complete(runs).items():
        by_algo[label][env] = [float(r.summary["normalized_score"]) for r in cell]
    matrices, tasks = {}, {}
    for label, cells in sorted(by_algo.items()):
        envs = sorted(cells)
        n = min(len(cells[e]) for e in envs)
        matrices[label] = np.array([cells[e][:n] for e in envs]).T
        tasks[label] = envs
    return matrices, tasks


def aggregate(matrices: dict[str, np.ndarray]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """IQM and mean per algorithm, each ``(point, low, high)`` with a stratified-bootstrap interval."""
    from rliable import library as rly
    from rliable import metrics

    def both(scores: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_mean(scores)])

    np.random.seed(SEED)  # rliable's bootstrap draws from numpy's global generator
    points, intervals = rly.get_interval_estimates(matrices, both, reps=RESAMPLES, confidence_interval_size=CONFIDENCE)
    return {
        k: {name: (float(points[k][j]), float(intervals[k][0][j]), float(intervals[k][1][j])) for j, name in enumerate(("iqm", "mean"))}
        for k in matrices
    }


def _scores_at(run: RunRecord, grid: np.ndarray) -> np.ndarray:
    """The run's evaluation score at each grid step: its last evaluation at or before it."""
    idx = np.searchsorted(run.steps, grid, side="right") - 1
    return run.scores[np.clip(idx, 0, None)]


def _log_grid(runs: list[RunRecord], points: int = 40) -> np.ndarray:
    """Env steps every run reached, log-spaced from the first evaluation after step 0."""
    first = max(int(r.steps[r.steps > 0].min()) for r in runs)
    last = min(int(r.steps[-1]) for r in runs)
    return np.unique(np.geomspace(first, max(first, last), points).astype(np.int64))


# ----- outputs ---------------------------------------------------------------------------------
def _fmt_steps(n: Optional[int]) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 1_000_000 else f"{n / 1e3:.0f}k"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"| task | algorithm | seeds | final normalised score: mean [95% CI] | env steps to {THRESHOLD} (median; seeds) "
        f"| env steps | wall time per seed (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["seeds"]:
            lines.append(f"| {r['env']} | {r['algo']} | 0 of {r['runs']} | not complete | | | |")
            continue
        marker = "" if r["seeds"] >= 3 else " (fewer than 3 seeds)"
        reach = f"{_fmt_steps(r['steps_to_threshold'])} ({r['reached']}/{r['seeds']})" if r["algo"] != "bc" else "no env steps"
        lines.append(
            f"| {r['env']} | {r['algo']} | {r['seeds']} of {r['runs']}{marker} | {r['score_mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
            f"| {reach} | {_fmt_steps(r['env_steps']) if r['env_steps'] else '0'} | {r['wall_minutes']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_table_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = ["env", "algo", "seeds", "runs", "score_mean", "ci_low", "ci_high", "reached", "steps_to_threshold", "env_steps", "wall_minutes"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def markdown_aggregate(agg: dict[str, dict[str, tuple[float, float, float]]], matrices: dict[str, np.ndarray], tasks: dict[str, list[str]]) -> str:
    lines = [
        f"Final normalised score across tasks; {int(CONFIDENCE * 100)}% stratified-bootstrap intervals ({RESAMPLES} resamples, rliable).",
        "",
        "| algorithm | IQM [95% CI] | mean [95% CI] | tasks | seeds per task |",
        "|---|---|---|---|---|",
    ]
    for k in sorted(agg):
        (iqm, ilo, ihi), (mean, mlo, mhi) = agg[k]["iqm"], agg[k]["mean"]
        lines.append(
            f"| {k} | {iqm:.3f} [{ilo:.3f}, {ihi:.3f}] | {mean:.3f} [{mlo:.3f}, {mhi:.3f}] | {', '.join(tasks[k])} | {matrices[k].shape[0]} |"
        )
    return "\n".join(lines) + "\n"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(label: str, i: int) -> str:
    return COLORS.get(label, f"C{i % 10}")


def _band(ax: Any, grid: np.ndarray, values: np.ndarray, rng: np.random.Generator, color: str, label: str) -> None:
    """Mean across seeds (rows of ``values``) with a per-step 95% bootstrap band."""
    mean = values.mean(0)
    if len(values) > 1:
        idx = rng.integers(len(values), size=(RESAMPLES, len(values)))
        boot = values[idx].mean(1)
        lo, hi = np.quantile(boot, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2], axis=0)
        ax.fill_between(grid, lo, hi, color=color, alpha=0.2, lw=0)
    ax.plot(grid, mean, color=color, lw=1.8, label=label)


def _save_steps_figure(plt: Any, fig: Any, ax: Any, path: Path, ylabel: str) -> None:
    """Axes against env steps: labels, grid, the legend beside the plot (never over a curve), saved and closed."""
    ax.set_xlabel("environment interactions")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both", lw=0.4)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def curves_figure(path: Path, runs: list[RunRecord]) -> None:
    """One task's curves (``runs``: its complete runs, every algorithm)."""
    plt = _plt()
    from matplotlib.ticker import LogLocator

    rng = np.random.default_rng(SEED)
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    by_label: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        by_label[r.label].append(r)
    interacting = [r for r in runs if r.algo != "bc" and (r.steps > 0).any()]
    x_max = max((int(r.steps[-1]) for r in interacting), default=1_000_000)
    x_min = min((int(r.steps[r.steps > 0].min()) for r in interacting), default=1_000)
    for i, (label, group) in enumerate(sorted(by_label.items())):
        color = _color(label, i)
        scores = np.array([r.summary["normalized_score"] for r in group])
        if all(r.algo == "bc" for r in group):  # no env steps: its final score as a level
            lo, hi = bootstrap_ci(scores, rng)
            ax.axhspan(lo, hi, color=color, alpha=0.15, lw=0)
            ax.axhline(float(scores.mean()), color=color, ls="-.", lw=1.5, label=f"{label} (no env steps, {len(group)} seeds)")
            continue
        grid = _log_grid(group)
        _band(ax, grid, np.stack([_scores_at(r, grid) for r in group]), rng, color, f"{label} ({len(group)} seeds)")
    ref = demo_returns(runs[0])
    if ref is not None and len(ref):
        expert, rand = runs[0].summary["expert_return"], runs[0].summary["random_return"]
        norm = (ref - rand) / (expert - rand)
        ax.axhspan(float(norm.mean() - norm.std()), float(norm.mean() + norm.std()), color="tab:red", alpha=0.12, lw=0)
        ax.axhline(float(norm.mean()), color="tab:red", lw=1.2, label=f"demonstrations ({len(ref)})")
    ax.set_xscale("log")
    ax.set_xlim(x_min * 0.8, x_max * 1.25)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.set_title(f"{runs[0].env_id}, {runs[0].demos} demonstrations")
    _save_steps_figure(plt, fig, ax, path, "normalised score (expert = 1)")


def iqm_curve_figure(path: Path, runs: list[RunRecord]) -> Optional[Path]:
    """IQM across tasks against env steps, per interacting algorithm (its tasks, equal seeds per task)."""
    from rliable import library as rly
    from rliable import metrics

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    drawn = 0
    cells = _complete(runs)
    for i, label in enumerate(sorted({lab for lab, _ in cells})):
        group = {env: cell for (lab, env), cell in cells.items() if lab == label and all(r.algo != "bc" for r in cell)}
        if not group:
            continue
        n = min(len(c) for c in group.values())
        grid = _log_grid([r for c in group.values() for r in c[:n]])
        # (seeds, tasks, steps), as rliable's sample-efficiency curves take it
        scores = np.stack([np.stack([_scores_at(r, grid) for r in group[env][:n]]) for env in sorted(group)], axis=1)

        def iqm_per_step(s: np.ndarray) -> np.ndarray:
            return np.array([metrics.aggregate_iqm(s[..., t]) for t in range(s.shape[-1])])

        np.random.seed(SEED)
        point, interval = rly.get_interval_estimates({label: scores}, iqm_per_step, reps=RESAMPLES // 4)
        color = _color(label, i)
        ax.fill_between(grid, interval[label][0], interval[label][1], color=color, alpha=0.2, lw=0)
        ax.plot(grid, point[label], color=color, lw=1.8, label=f"{label} ({len(group)} tasks, {n} seeds each)")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.axhline(1.0, color="tab:red", lw=1, ls="--", label="expert")
    ax.set_xscale("log")
    _save_steps_figure(plt, fig, ax, path, "IQM normalised score across tasks")
    return path


def profile_figure(path: Path, matrices: dict[str, np.ndarray]) -> None:
    from rliable import library as rly

    plt = _plt()
    taus = np.linspace(0.0, 1.2, 61)
    np.random.seed(SEED)
    profiles, cis = rly.create_performance_profile(matrices, taus, reps=RESAMPLES // 4)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, k in enumerate(sorted(matrices)):
        color = _color(k, i)
        ax.plot(taus, profiles[k], color=color, lw=1.8, label=k)
        ax.fill_between(taus, cis[k][0], cis[k][1], color=color, alpha=0.2, lw=0)
    ax.set_xlabel("normalised score tau")
    ax.set_ylabel("fraction of runs with final score > tau")
    ax.grid(alpha=0.3, lw=0.4)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def benchmark_report(roots: Sequence[Path], out: Path) -> dict[str, Any]:
    """Write the tables and figures of every run below ``roots`` into ``out``; returns what was written."""
    runs = load_runs(list(roots))
    if not runs:
        raise FileNotFoundError(f"no training run directories below {', '.join(map(str, roots))}")
    out.mkdir(parents=True, exist_ok=True)
    rows = cell_rows(runs)
    (out / "table.md").write_text(markdown_table(rows))
    write_table_csv(out / "table.csv", rows)
    written = [out / "table.md", out / "table.csv"]
    matrices, tasks = score_matrices(runs)
    agg = aggregate(matrices) if matrices else {}
    if matrices:
        (out / "aggregate.md").write_text(markdown_aggregate(agg, matrices, tasks))
        profile_figure(out / "profile.png", matrices)
        written += [out / "aggregate.md", out / "profile.png"]
    by_env: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.status == "complete" and len(r.steps):
            by_env[r.env].append(r)
    for env, members in sorted(by_env.items()):
        curves_figure(out / f"curves_{env}.png", members)
        written.append(out / f"curves_{env}.png")
    iqm = iqm_curve_figure(out / "aggregate_iqm.png", runs)
    if iqm is not None:
        written.append(iqm)
    return {"runs": runs, "rows": rows, "aggregate": agg, "written": written}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ail.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="the grid's experiment directory (paths.runs/benchmark), or several")
    parser.add_argument("--out", type=Path, required=True, help="directory for the tables and figures (docs/results/benchmark)")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(missing)}; accepted: directories holding run directories", file=sys.stderr)
        return 2
    try:
        result = benchmark_report(args.dirs, args.out)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "table.md").read_text())
    for r in result["runs"]:
        if r.status != "complete":
            print(f"warning: {r.status} run {_show(r.dir)}" + (f": {r.message}" if r.message else ""), file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in result["written"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
