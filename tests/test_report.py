"""Golden tests of ``python -m ail.report`` on synthetic run directories."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO

from ail.report import report
from ail.runs import band, mean_curve
from ail.sweep_failures import write_failure

EXPERT, RANDOM = 1000.0, 0.0


def make_run(
    root: Path,
    label: str,
    algo: str,
    seed: int,
    returns: list[float],
    steps_per_eval: int = 1000,
    complete: bool = True,
    demos: int = 4,
    env: str = "hopper",
    budget: int | None = None,
    every: int = 1,
) -> Path:
    d = root / f"{label}-{env}-d{demos}" / f"seed{seed}"
    d.mkdir(parents=True)
    steps = [i * steps_per_eval for i in range(len(returns))] if algo != "bc" else [0] * len(returns)
    cfg = {
        "task": "train",
        "algo": {"name": algo, "label": label},
        "env": {"name": env, "id": "Hopper-v5"},
        "demos": demos,
        "demo_set": {"subsample": every, "select_seed": None},
        "seed": seed,
        "train": {"env_steps": budget or steps[-1]},
    }
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env_steps", "updates", "wall_time", "return_mean", "return_std", "return_min", "return_max", "normalized_score"])
        for i, (s, r) in enumerate(zip(steps, returns)):
            w.writerow([s, i, i, r, 0, r, r, (r - RANDOM) / (EXPERT - RANDOM)])
    if complete:
        summary = {
            "status": "complete",
            "algo": algo,
            "env": env,
            "demos": demos,
            "seed": seed,
            "env_steps": steps[-1],
            "final_return_mean": returns[-1],
            "normalized_score": returns[-1] / EXPERT,
            "expert_return": EXPERT,
            "random_return": RANDOM,
            "demo_returns": [900.0, 1000.0, 1100.0, 1000.0],
        }
        (d / "summary.json").write_text(json.dumps(summary))
    return d


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    root = tmp_path / "runs" / "exp"
    make_run(root, "sam", "sam", 0, [0, 500, 950, 980])  # reaches 0.9 at 2000
    make_run(root, "sam", "sam", 1, [0, 920, 960, 1000])  # reaches 0.9 at 1000
    make_run(root, "sam", "sam", 2, [0, 100], complete=False, budget=3000)  # still running
    make_run(root, "gail-ppo", "gail", 0, [0, 100, 300, 600], steps_per_eval=10000)  # never reaches 0.9
    make_run(root, "gail-ppo", "gail", 1, [0, 200, 400, 800], steps_per_eval=10000)
    make_run(root, "bc", "bc", 0, [500, 700])
    bad = root / "gail-ppo-hopper-d4" / "seed2"  # failed before writing anything
    write_failure(root, bad, "demos=999 but the set holds 50 trajectories")
    return root


def test_table_numbers_and_listing(experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = report([experiment], out)
    rows = {r["algo"]: r for r in csv.DictReader(open(out / "table.csv"))}
    sam = rows["sam"]
    assert (int(sam["seeds"]), int(sam["runs"])) == (2, 3)  # the incomplete seed is counted, not averaged
    assert float(sam["return_mean"]) == pytest.approx(990.0) and float(sam["return_std"]) == pytest.approx(10.0)
    assert float(sam["score_mean"]) == pytest.approx(0.99)
    assert int(sam["reached"]) == 2 and int(sam["steps_to_threshold"]) == 1500  # median of 2000 and 1000
    gail = rows["gail-ppo"]
    assert float(gail["return_mean"]) == pytest.approx(700.0) and float(gail["return_std"]) == pytest.approx(100.0)
    assert int(gail["reached"]) == 0 and gail["steps_to_threshold"] == ""
    assert int(gail["runs"]) == 3  # the failed seed with no directory counts as a run of its group
    assert float(rows["bc"]["return_mean"]) == pytest.approx(700.0)
    md = (out / "table.md").read_text()
    assert "| hopper | 4 | 700.0 ± 0.0 (0.70) | 700.0 ± 100.0 (0.70) | 990.0 ± 10.0 (0.99) |" in md
    assert "never (0/2)" in md and "1,500 (2/2)" in md and "n/a (no env steps)" in md
    assert "incomplete: `" in md and "sam-hopper-d4/seed2` (1,000 of 3,000 env steps)" in md
    assert "failed: `" in md and "demos=999 but the set holds 50 trajectories" in md
    statuses = sorted(r["status"] for r in csv.DictReader(open(out / "runs.csv")))
    assert statuses == ["complete"] * 5 + ["failed", "incomplete"]
    assert [p.name for p in result["figures"]] == ["figure_d4.png"]
    png = (out / "figure_d4.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_runs_shown_other_demonstrations_are_their_own_group_table_row_and_figure(tmp_path: Path) -> None:
    from ail.report import report

    make_run(tmp_path / "whole", "gail", "gail", 0, [100.0, 900.0])
    make_run(tmp_path / "sub", "gail", "gail", 0, [100.0, 300.0], every=20)
    result = report([tmp_path], tmp_path / "out")
    assert [(r["protocol"], r["score_mean"]) for r in result["rows"]] == [("4", 0.9), ("4, every 20th", 0.3)]
    md = result["markdown"]
    assert "| hopper | 4 | 900.0 ± 0.0 (0.90) |" in md and "| hopper | 4, every 20th | 300.0 ± 0.0 (0.30) |" in md
    assert [p.name for p in result["figures"]] == ["figure_d4.png", "figure_d4-every20.png"]


def test_mean_curve_interpolates_on_the_steps_every_seed_reached() -> None:
    from ail.runs import RunRecord

    def rec(steps: list[int], rets: list[float]) -> RunRecord:
        return RunRecord(Path("."), "a", "a", "e", "E", 1, 0, 0, "complete", np.array(steps), np.array(rets), np.array(rets))

    import numpy as np

    grid, mean, std = mean_curve([rec([0, 10, 20], [0, 10, 20]), rec([0, 5, 15], [0, 20, 40])])
    assert grid.tolist() == [0, 5, 10, 15]  # up to the shorter run's end
    assert mean.tolist() == pytest.approx([0, (5 + 20) / 2, (10 + 30) / 2, (15 + 40) / 2])
    assert std[1] == pytest.approx(7.5)


def test_band_is_mean_plus_minus_std_clipped_to_the_seeds_range() -> None:
    from ail.runs import RunRecord

    def rec(ret: float) -> RunRecord:
        return RunRecord(Path("."), "a", "a", "e", "E", 1, 0, 0, "complete", np.array([0, 10]), np.full(2, ret), np.full(2, ret))

    # CartPole-like: two seeds at the 500 ceiling, one at 100. mean 366.7, std 188.6: mean + std would be 555.2.
    grid, lo, hi = band([rec(500.0), rec(500.0), rec(100.0)])
    assert hi.tolist() == [500.0, 500.0]
    assert lo == pytest.approx(np.full(2, 366.6667 - 188.5618), rel=1e-5)
    _, lo2, hi2 = band([rec(10.0), rec(20.0)])  # two seeds: mean ± std is exactly their range
    assert lo2.tolist() == [10.0, 10.0] and hi2.tolist() == [20.0, 20.0]


def test_cli_writes_and_rejects_bad_input(experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    ok = subprocess.run(
        [sys.executable, "-m", "ail.report", str(experiment), "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert "warning: incomplete run" in ok.stderr and "warning: failed run" in ok.stderr
    assert (out / "table.md").is_file() and (out / "figure_d4.png").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "ail.report", str(tmp_path / "nope"), "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a directory" in bad.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = subprocess.run([sys.executable, "-m", "ail.report", str(empty), "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert none.returncode == 2 and "no training run directories" in none.stderr


def test_without_out_the_tables_go_to_stdout_one_row_per_variant_and_column_per_threshold(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root, "dyna-tp5", "dyna", 0, [100, 850, 920])
    make_run(root, "dyna-tp5", "dyna", 1, [500, 960, 970])
    make_run(root, "dyna-tp50", "dyna", 0, [200, 300, 400])
    proc = subprocess.run(
        [sys.executable, "-m", "ail.report", str(root), "--threshold", "0.8", "0.9", "0.95"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line.split(" | ")[0].strip("| "): line for line in proc.stdout.splitlines() if line.startswith("| dyna")}
    assert set(rows) == {"dyna-tp5", "dyna-tp50"}
    # tp5: 0.8 first reached at 1000 by both seeds, 0.9 at 1000 (seed 1) and 2000 (seed 0), 0.95 by seed 1 only.
    assert rows["dyna-tp5"].endswith("| 1,000 (2/2) | 1,500 (2/2) | 1,000 (1/2) |"), rows["dyna-tp5"]
    assert rows["dyna-tp50"].count("never (0/1)") == 3
    assert "(min 0.920)" in rows["dyna-tp5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written


def test_bad_threshold_is_one_line(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", "sam", "sam", 0, [0, 900])
    proc = subprocess.run(
        [sys.executable, "-m", "ail.report", str(tmp_path / "runs"), "--threshold", "0.9", "2"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --threshold 2.0 is invalid; accepted: normalised scores in (0, 1.5]"


def _short_sweep(tmp_path: Path) -> list:
    """A short sweep as a new user makes one: evaluations every 1000 steps up to 4000 (within one
    decade), far below the demonstrations' return (about 1000)."""
    from ail.runs import load_runs

    root = tmp_path / "runs" / "short"
    make_run(root, "gail-ppo", "gail", 0, [20, 30, 45, 40, 60])
    make_run(root, "gail-ppo", "gail", 1, [25, 35, 40, 55, 50])
    make_run(root, "bc", "bc", 0, [70, 80])
    return load_runs([root])


def test_the_figure_labels_its_steps_keeps_step_0_scales_to_the_curves_and_keeps_the_legend_off_them(tmp_path: Path) -> None:
    from ail.figures import panel_figure, pyplot

    fig = panel_figure(_short_sweep(tmp_path), demos=4)
    (ax,) = [a for a in fig.axes if a.get_visible()]
    fig.canvas.draw()
    # 1. Data within one decade still gets labelled x ticks, 0 among them.
    lo, hi = ax.get_xlim()
    labels = [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi and t.get_text()]
    assert labels[0] == "0" and len(labels) >= 4, labels
    assert labels[1:] == ["1k", "2k", "3k", "4k"], labels
    # 2. The step-0 evaluations are drawn: the mean line and the points start at 0.
    (line,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) > 2]
    assert line.get_xdata()[0] == 0 and line.get_ydata()[0] == pytest.approx(22.5)
    assert any(0 in np.asarray(c.get_offsets())[:, 0] for c in ax.collections if len(c.get_offsets()))
    # 3. The y axis is the curves' (20..80 here), not stretched to the demonstrations' 1000; they are named instead.
    y0, y1 = ax.get_ylim()
    assert y0 < 20 and 80 < y1 < 120, (y0, y1)
    assert any(t.get_text().startswith("demonstrations above: 1000") for t in ax.texts)
    # 4. The legend is the figure's, below the panel, not on the axes.
    assert ax.get_legend() is None and len(fig.legends) == 1
    legend_box = fig.legends[0].get_window_extent()
    assert legend_box.y1 <= ax.get_window_extent().y0
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["bc (no env steps)", "gail-ppo"]
    pyplot().close(fig)


def test_a_panel_subtitle_says_each_when_the_seed_counts_agree_and_wraps_otherwise() -> None:
    from ail.figures import seed_counts

    assert seed_counts([f"mgail-probe{i}: 1 seed" for i in range(5)]) == "1 seed each"
    assert seed_counts(["sam: 3 seeds"]) == "sam: 3 seeds"
    many = [f"algorithm-{i}: {i + 1} seeds" for i in range(8)]
    lines = seed_counts(many).splitlines()
    assert len(lines) > 1 and all(len(line) <= 70 for line in lines) and " ".join(lines) == ", ".join(many)


def test_demonstrations_within_the_curves_scale_are_drawn_as_a_band(experiment: Path) -> None:
    from ail.figures import panel_figure, pyplot
    from ail.runs import load_runs

    fig = panel_figure(load_runs([experiment]), demos=4)
    ax = fig.axes[0]
    assert not ax.texts
    assert "demonstrations: mean ± std, min, max" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert ax.get_ylim()[1] >= 1100  # the demonstrations' max
    pyplot().close(fig)


def test_aggregate_view_writes_iqm_tables_and_figures(experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "agg"
    proc = subprocess.run(
        [sys.executable, "-m", "ail.report", str(experiment), "--out", str(out), "--aggregate"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    text = (out / "aggregate_d4.md").read_text()
    # sam: seeds 0 and 1 complete on hopper, final scores 0.98 and 1.0: IQM = mean = 0.99
    row = [line for line in text.splitlines() if line.startswith("| sam |")][0]
    assert row.startswith("| sam | 0.990 [0.980, 1.000] | 0.990 [0.980, 1.000] | hopper | 2 |"), row
    for name in ("profile_d4.png", "aggregate_iqm_d4.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    alone = subprocess.run([sys.executable, "-m", "ail.report", str(experiment), "--aggregate"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert alone.returncode == 2 and alone.stderr == "error: --aggregate writes figures; accepted: --aggregate with --out DIR\n"
