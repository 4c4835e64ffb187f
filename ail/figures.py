"""Figures against environment steps, shared by the report (``ail.report``) and the benchmark
(``ail.benchmark``): every figure's colours (:func:`palette`: an algorithm has one colour in all
of them), the step axis, and the report's one-panel-per-task learning curves.

The step axis is log-like but keeps step 0: ``symlog`` with the linear part ``[0, first evaluation]``
squeezed to a third of a decade, so the untrained policy's evaluation is drawn at the left edge, and
labelled ticks at 1-2-5 (or every integer multiple, when the data spans less than a decade), so
a short run's axis is never unlabelled.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ail.runs import RunRecord, band, demo_returns, mean_curve

ALGO_COLORS = {"bc": "tab:gray", "gail-ppo": "tab:blue", "gail-trpo": "tab:cyan", "sam": "tab:orange", "mgail": "tab:green", "dyna": "tab:purple"}
SPARE_COLORS = ["tab:brown", "tab:pink", "tab:olive", "black", "gold", "navy", "lime", "teal"]  # none is in ALGO_COLORS
DEMO_COLOR = "tab:red"


def palette(labels: Sequence[str]) -> dict[str, str]:
    """Each label's colour in one figure, so that the same algorithm has the same colour in every
    figure: its own (``sam``), else its family's (``dyna-tp10``: dyna; ``gail-ppo-lr3``: gail-ppo)
    while no other label of the figure holds it, else the next spare one. Two labels of one figure
    share a colour only past the spare colours.

    :param labels: the figure's labels in drawing order. A label that is a family's own name
        (``mgail``) keeps its colour wherever it comes; else the first of a family gets it.
    """
    colours = {lab: ALGO_COLORS[lab] for lab in labels if lab in ALGO_COLORS}
    taken = set(colours.values())
    spare = itertools.cycle(SPARE_COLORS)
    for lab in labels:
        if lab in colours:
            continue
        families = [k for k in ALGO_COLORS if lab.startswith(k + "-")]
        family = ALGO_COLORS[max(families, key=len)] if families else None
        colours[lab] = family if family is not None and family not in taken else next(spare)
        taken.add(colours[lab])
    return {lab: colours[lab] for lab in labels}


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only backend (no display on compute nodes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fmt_steps(n: float) -> str:
    """``0``, ``500``, ``2k``, ``12.5k``, ``1M``, ``1.5M``: a tick label for a number of env steps."""
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.4g}{unit}"
    return f"{n:.4g}"


def step_ticks(x_min: float, x_max: float) -> list[float]:
    """0 and round step counts from about ``x_min`` to ``x_max``: 1-2-5 per decade, or every multiple
    of ``x_max``'s decade when that gives under 3 ticks (data within one decade)."""
    lo, hi = int(np.floor(np.log10(0.75 * x_min))), int(np.ceil(np.log10(x_max)))
    ticks = [m * 10.0**k for k in range(lo, hi + 1) for m in (1, 2, 5) if 0.75 * x_min <= m * 10.0**k <= x_max]
    if len(ticks) < 3:
        unit = 10.0 ** np.floor(np.log10(x_max))
        ticks = [float(m * unit) for m in range(1, 10) if 0.75 * x_min <= m * unit <= x_max]
    return [0.0, *ticks]


def steps_axis(ax: Any, x_min: float, x_max: float) -> None:
    """Env steps on ``ax``'s x axis: 0 plus ``[x_min, x_max]`` (first evaluation after 0, last one) on a log scale."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    x_min, x_max = float(x_min), float(max(x_max, x_min * 1.01))
    ax.set_xscale("symlog", linthresh=x_min, linscale=0.33)
    ax.xaxis.set_major_locator(FixedLocator(step_ticks(x_min, x_max)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_steps(v)))
    ax.set_xlim(0.0, x_max * 1.15)
    ax.set_xlabel("environment interactions")


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1, as the figures' legends say it: "1 seed", "3 seeds"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def seed_counts(counts: list[str]) -> str:
    """A panel's ``"label: N seeds"`` entries as one subtitle: ``"N seeds each"`` when they agree,
    else wrapped to lines a panel is wide enough for (a long line is cut off at the figure's edges)."""
    if len(counts) > 1 and len({c.split(": ", 1)[1] for c in counts}) == 1:
        return counts[0].split(": ", 1)[1] + " each"
    return textwrap.fill(", ".join(counts), width=70)


def panel_figure(runs: list["RunRecord"], demos: int) -> Any:
    """The report's ``figure_d<demos>.png``: one panel per task for the runs given ``demos`` demonstrations.

    Per algorithm: each seed's evaluations as points, the mean across seeds as a line (complete runs
    only, unless none is) with a ± one-std band clipped to the seeds' range; learners without env
    steps (BC) as a level. The demonstrations' return in red (mean, ± std band, dotted min, dashed
    max) when it fits the curves' scale; when it is more than the curves' own span above them, the
    y axis stays on the curves and the demonstrations' mean is written at the top. One legend below
    the panels, so none covers a curve. Returns the matplotlib Figure.
    """
    plt = pyplot()
    chosen = [r for r in runs if r.demos == demos and r.env != "?" and len(r.steps)]
    envs = sorted({r.env for r in chosen})
    labels = sorted({r.label for r in chosen})
    color = palette(labels)
    cols = min(3, len(envs))
    rows_n = (len(envs) + cols - 1) // cols
    width, height = 5.2 * cols, 4.0 * rows_n
    fig, axes = plt.subplots(rows_n, cols, figsize=(width, height), squeeze=False)
    handles: dict[str, Any] = {}
    for ax, env in zip(axes.flat, envs):
        here = [r for r in chosen if r.env == env]
        interacting = [r for r in here if r.budget > 0 and (r.steps > 0).any()]
        x_max = max((int(r.steps.max()) for r in interacting), default=1000)
        x_min = min((int(r.steps[r.steps > 0].min()) for r in interacting), default=100)
        drawn: list[np.ndarray] = []
        counts = []
        for lab in labels:
            group = [r for r in here if r.label == lab]
            if not group:
                continue
            # Complete runs only, so the mean never mixes curves of different lengths; a group with
            # none complete yet (a sweep in progress) is drawn from what its runs have logged.
            done = [r for r in group if r.status == "complete"]
            group = done or group
            counts.append(f"{lab}: {count(len(group), 'seed')}{'' if done else ' (incomplete)'}")
            c = color[lab]
            if all(r.budget == 0 for r in group):  # BC: no interactions, its final return as a level
                level = float(np.mean([r.summary.get("final_return_mean", r.returns[-1]) for r in group]))
                handles[f"{lab} (no env steps)"] = ax.axhline(level, color=c, ls="-.", lw=1.5, zorder=3)
                drawn.append(np.array([level]))
                continue
            for r in group:
                ax.scatter(r.steps, r.returns, s=6, color=c, alpha=0.35, linewidths=0)
                drawn.append(r.returns)
            grid, mean, _ = mean_curve(group)
            (handles[lab],) = ax.plot(grid, mean, color=c, lw=1.8)
            _, lo, hi = band(group)
            ax.fill_between(grid, lo, hi, color=c, alpha=0.2, lw=0)
        _demonstrations(ax, demo_returns(here[0]), np.concatenate(drawn), handles)
        steps_axis(ax, x_min, x_max)
        ax.set_title(f"{here[0].env_id}, {demos} demonstrations\n" + seed_counts(counts), fontsize=9)
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3, lw=0.4)
    for ax in list(axes.flat)[len(envs) :]:
        ax.set_visible(False)
    # Below the panels, in as many rows as the width needs: never over a curve, never cut off.
    ncol = max(1, min(len(handles), int(width // 2.6)))
    legend_h = 0.25 + 0.22 * -(-len(handles) // ncol)
    fig.set_size_inches(width, height + legend_h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_h / (height + legend_h), 1, 1))
    return fig


def _demonstrations(ax: Any, ref: Optional[np.ndarray], drawn: np.ndarray, handles: dict[str, Any]) -> None:
    """The demonstrations' return on ``ax``: drawn when it fits the curves' scale, else named at the top."""
    lo, hi = float(drawn.min()), float(drawn.max())
    span = max(hi - lo, 1e-6 * max(abs(hi), 1.0))
    if ref is None or not len(ref):
        ax.set_ylim(lo - 0.05 * span, hi + 0.05 * span)
        return
    m, s = float(ref.mean()), float(ref.std())
    if lo - span <= m - s and m + s <= hi + span:  # at most doubles the axis: draw it
        handles["demonstrations: mean ± std, min, max"] = ax.axhline(m, color=DEMO_COLOR, lw=1.5)
        ax.axhspan(m - s, m + s, color=DEMO_COLOR, alpha=0.12, lw=0)
        ax.axhline(float(ref.min()), color=DEMO_COLOR, lw=1, ls=":")
        ax.axhline(float(ref.max()), color=DEMO_COLOR, lw=1, ls="--")
        return
    ax.set_ylim(lo - 0.05 * span, hi + 0.15 * span)
    where = "above" if m > hi else "below"
    ax.text(
        0.99, 0.98 if where == "above" else 0.02, f"demonstrations {where}: {m:.4g} ± {s:.2g}", transform=ax.transAxes,
        ha="right", va="top" if where == "above" else "bottom", fontsize=8, color=DEMO_COLOR,
    )  # fmt: skip


def finish_steps_axes(fig: Any, ax: Any, path: Path, ylabel: str) -> None:
    """A one-axes figure against env steps: y label, grid, the legend beside the plot (never over a curve), saved and closed."""
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, lw=0.4)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    save(fig, path)


def save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=130)
    pyplot().close(fig)
