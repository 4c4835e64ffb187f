"""Aggregates across tasks with ``rliable`` (Agarwal et al. 2021), shared by ``ail.report --aggregate``
and ``ail.benchmark``: per algorithm, the interquartile mean (IQM) and mean of the final normalised
score over all its runs on all its tasks, with stratified-bootstrap intervals (runs resampled within
each task), the performance profile, and the IQM against env steps.

Score matrices are ``(seeds, tasks)`` as rliable takes them, so an algorithm's tasks need as many
seeds each: with an unequal number of complete seeds per task, ``equal_seeds`` takes the ``n`` that
keeps the most runs (``n`` x the tasks with at least ``n``; ties: more seeds), each such task's first
``n`` seeds (by seed); a task with fewer is left out of that algorithm's row rather than cutting every
other task down to it, and the tables say which tasks and how many seeds.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from ail.figures import DEMO_COLOR, count, finish_steps_axes, palette, pyplot, steps_axis

if TYPE_CHECKING:
    from ail.runs import RunRecord

CONFIDENCE = 0.95
RESAMPLES = 2000  # bootstrap resamples (rliable's default is 50k; 2k keeps a report under a minute)
SEED = 0  # the bootstrap's own generator: the same runs always give the same intervals


def complete_cells(runs: list[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    cells: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.status == "complete":
            cells[(r.label, r.env)].append(r)
    for cell in cells.values():
        cell.sort(key=lambda r: r.seed)
    return cells


def equal_seeds(cells: dict[str, list]) -> tuple[int, list[str]]:
    """The seeds per task and the tasks (sorted) of one algorithm's aggregate: the ``n`` that keeps the
    most runs, ``n`` x the tasks with at least ``n`` complete seeds (ties: the larger ``n``).

    :param cells: task -> that task's complete runs (or scores), at least one task
    """
    n = max({len(c) for c in cells.values()}, key=lambda k: (k * sum(len(c) >= k for c in cells.values()), k))
    return n, sorted(e for e, c in cells.items() if len(c) >= n)


def score_matrices(runs: list[RunRecord]) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per algorithm, final scores shaped ``(seeds, tasks)`` as rliable takes them (``equal_seeds``)
    and the tasks they cover."""
    by_algo: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for (label, env), cell in complete_cells(runs).items():
        by_algo[label][env] = [float(r.summary["normalized_score"]) for r in cell]
    matrices, tasks = {}, {}
    for label, cells in sorted(by_algo.items()):
        n, envs = equal_seeds(cells)
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


def scores_at(run: RunRecord, grid: np.ndarray) -> np.ndarray:
    """The run's evaluation score at each grid step: its last evaluation at or before it."""
    idx = np.searchsorted(run.steps, grid, side="right") - 1
    return run.scores[np.clip(idx, 0, None)]


def log_grid(runs: list[RunRecord], points: int = 40) -> np.ndarray:
    """Step 0 and env steps every run reached, log-spaced from the first evaluation after step 0."""
    first = max(int(r.steps[r.steps > 0].min()) for r in runs)
    last = min(int(r.steps[-1]) for r in runs)
    return np.unique(np.concatenate([[0], np.geomspace(first, max(first, last), points).astype(np.int64)]))


def markdown_aggregate(agg: dict[str, dict[str, tuple[float, float, float]]], matrices: dict[str, np.ndarray], tasks: dict[str, list[str]]) -> str:
    lines = [
        f"Final normalised score across tasks; {int(CONFIDENCE * 100)}% stratified-bootstrap intervals ({RESAMPLES} resamples, rliable).",
        "Each row needs as many seeds on each of its tasks: a task with fewer complete seeds than the algorithm's",
        "others is left out of its row (`ail.aggregate.equal_seeds`), its cells still have their rows in the per-cell table.",
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


def iqm_curve_figure(path: Path, runs: list[RunRecord]) -> Optional[Path]:
    """IQM across tasks against env steps, per interacting algorithm (its tasks, equal seeds per task)."""
    from rliable import library as rly
    from rliable import metrics

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    drawn, first, last = 0, np.inf, 0
    cells = complete_cells(runs)
    labels = sorted({lab for lab, _ in cells})
    colours = palette(labels)
    for label in labels:
        group = {env: cell for (lab, env), cell in cells.items() if lab == label and all(r.interacts for r in cell)}
        if not group:
            continue
        n, envs = equal_seeds(group)
        group = {env: group[env] for env in envs}
        grid = log_grid([r for c in group.values() for r in c[:n]])
        first, last = min(first, grid[1]), max(last, grid[-1])
        # (seeds, tasks, steps), as rliable's sample-efficiency curves take it
        scores = np.stack([np.stack([scores_at(r, grid) for r in group[env][:n]]) for env in sorted(group)], axis=1)

        def iqm_per_step(s: np.ndarray) -> np.ndarray:
            return np.array([metrics.aggregate_iqm(s[..., t]) for t in range(s.shape[-1])])

        np.random.seed(SEED)
        point, interval = rly.get_interval_estimates({label: scores}, iqm_per_step, reps=RESAMPLES // 4)
        c = colours[label]
        ax.fill_between(grid, interval[label][0], interval[label][1], color=c, alpha=0.2, lw=0)
        ax.plot(grid, point[label], color=c, lw=1.8, label=f"{label} ({count(len(group), 'task')}, {count(n, 'seed')} each)")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.axhline(1.0, color=DEMO_COLOR, lw=1, ls="--", label="expert")
    steps_axis(ax, first, last)
    finish_steps_axes(fig, ax, path, "IQM normalised score across tasks")
    return path


def profile_figure(path: Path, matrices: dict[str, np.ndarray]) -> None:
    from rliable import library as rly

    plt = pyplot()
    taus = np.linspace(0.0, 1.2, 61)
    np.random.seed(SEED)
    profiles, cis = rly.create_performance_profile(matrices, taus, reps=RESAMPLES // 4)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = palette(sorted(matrices))
    for k in sorted(matrices):
        c = colours[k]
        ax.plot(taus, profiles[k], color=c, lw=1.8, label=k)
        ax.fill_between(taus, cis[k][0], cis[k][1], color=c, alpha=0.2, lw=0)
    ax.set_xlabel("normalised score tau")
    ax.set_ylabel("fraction of runs with final score > tau")
    ax.grid(alpha=0.3, lw=0.4)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
