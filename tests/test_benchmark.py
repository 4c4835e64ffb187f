"""The benchmark grid's report (ail/benchmark.py) on a synthetic grid of run directories whose numbers are known."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ail.benchmark import benchmark_report, bootstrap_ci, main
from ail.figures import DEMO_COLOR, SPARE_COLORS, palette
from ail.runs import Protocol, load_runs

EXPERT, RANDOM = 3000.0, 0.0


def _run(root: Path, algo: str, label: str, env: str, seed: int, final: float, steps: list[int], scores: list[float], per_process: int = 1) -> Path:
    d = root / f"{label}-{env}-d4" / f"seed{seed}"
    d.mkdir(parents=True)
    cfg = {
        "task": "train",
        "demos": 4,
        "seed": seed,
        "algo": {"name": algo, "label": label},
        "env": {"name": env, "id": f"{env.title()}-v5"},
        "train": {"env_steps": 0 if algo == "bc" else steps[-1], "seeds_per_process": per_process},
        "demo_set": {"subsample": 20 if algo == "gail" else 1, "select_seed": None},  # each algorithm's default, as the grid once ran
    }
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env_steps", "updates", "wall_time", "return_mean", "normalized_score"])
        for s, sc in zip(steps, scores):
            w.writerow([s, 0, 1.0, sc * EXPERT, sc])
    summary = {
        "status": "complete",
        "normalized_score": final,
        "env_steps": steps[-1],
        "wall_time_s": 600.0 * (seed + 1),
        "expert_return": EXPERT,
        "random_return": RANDOM,
        "demo_returns": [2900.0, 3000.0, 3100.0, 3000.0],
    }
    (d / "summary.json").write_text(json.dumps(summary))
    return d


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    root = tmp_path / "benchmark"
    for env, base in (("hopper", 0.9), ("walker", 0.6)):
        for seed in range(3):
            final = base + 0.05 * seed
            steps = [0, 10_000, 30_000, 100_000, 300_000]
            # walker's SAM seeds as one 3-seed process: each run directory holds the process's wall time
            _run(root, "sam", "sam", env, seed, final, steps, [0.0, 0.3, 0.6, final - 0.01, final], 3 if env == "walker" else 1)
            _run(root, "gail", "gail-ppo", env, seed, final - 0.3, [0, 100_000, 1_000_000], [0.0, 0.2, final - 0.3])
            _run(root, "bc", "bc", env, seed, 0.5, [0, 0], [0.0, 0.5])
    d = root / "sam-ant-d4" / "seed0"  # an incomplete cell: counted, not in the statistics
    d.mkdir(parents=True)
    cfg = {"task": "train", "demos": 4, "seed": 0, "algo": {"name": "sam", "label": "sam"}, "env": {"name": "ant", "id": "Ant-v5"},
           "train": {"env_steps": 500000}}  # fmt: skip
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    return root


def _sweep(path: Path, algo: str, params: str) -> Path:
    """A sweep file over the project's config (first algorithm ``algo``), its ``hydra.sweeper.params`` lines ``params``."""
    path.write_text(
        f"defaults:\n  - config\n  - override /algo: {algo}\n  - override /env: hopper\n  - _self_\n"
        "experiment: benchmark\nhydra:\n  sweeper:\n    params:\n" + params
    )
    return path


WHOLE, EVERY20 = Protocol(4, 1), Protocol(4, 20)


def test_the_tables_hold_each_cell_s_mean_interval_and_reach(grid, tmp_path):
    result = benchmark_report([grid], tmp_path / "report")["protocols"][WHOLE]
    out = tmp_path / "report" / "d4-whole"
    rows = {(r["env"], r["algo"]): r for r in result["rows"]}
    sam = rows[("hopper", "sam")]
    assert sam["seeds"] == 3 and sam["score_mean"] == pytest.approx(0.95)
    assert 0.9 - 1e-9 <= sam["ci_low"] <= sam["score_mean"] <= sam["ci_high"] <= 1.0 + 1e-9
    assert sam["reached"] == 3 and sam["steps_to_threshold"] == 100_000  # median first reach: 300k (seed 0), 100k, 100k
    assert rows[("walker", "sam")]["reached"] == 0 and rows[("walker", "sam")]["steps_to_threshold"] is None
    assert rows[("hopper", "sam")]["wall_minutes"] == pytest.approx(20.0)
    assert rows[("walker", "sam")]["wall_minutes"] == pytest.approx(20.0 / 3)  # a 3-seed process: its wall time / 3 per seed
    assert rows[("walker", "sam")]["core_hours"] == pytest.approx((10 + 20 + 30) / 3 / 60)  # one core shared by the 3 seeds
    assert rows[("ant", "sam")]["seeds"] == 0 and rows[("ant", "sam")]["runs"] == 1
    table = (out / "table.md").read_text()
    assert "| ant | sam | 0 of 1 (1 incomplete) | not complete |" in table and "| hopper | bc | 3 of 3 |" in table
    # Aggregates: the IQM over 3 seeds x 2 tasks of SAM's scores (0.9..1.0 and 0.6..0.7) trims one from each end.
    iqm, lo, hi = result["aggregate"]["sam"]["iqm"]
    pooled = np.sort([0.9, 0.95, 1.0, 0.6, 0.65, 0.7])
    assert iqm == pytest.approx(pooled[1:5].mean(), abs=0.03) and lo <= iqm <= hi
    assert "| sam |" in (out / "aggregate.md").read_text()
    for name in ("curves_hopper.png", "curves_walker.png", "aggregate_iqm.png", "profile.png"):
        assert (out / name).stat().st_size > 10_000, name
        assert f"]({name})" in (out / "README.md").read_text(), name  # the folder's page shows every figure
    assert "| hopper | sam | 3 of 3 |" in (out / "README.md").read_text()


def test_runs_shown_other_demonstrations_are_never_in_one_table_or_aggregate(grid, tmp_path):
    result = benchmark_report([grid], tmp_path, figures=False)
    assert list(result["protocols"]) == [EVERY20, WHOLE]  # by name
    whole, every20 = (tmp_path / p.slug for p in (WHOLE, EVERY20))
    assert "gail-ppo" not in (whole / "table.md").read_text() and "gail-ppo" not in (whole / "aggregate.md").read_text()
    assert "| sam |" not in (every20 / "table.md").read_text() and "| bc |" not in (every20 / "aggregate.md").read_text()
    assert "| hopper | gail-ppo | 3 of 3 |" in (every20 / "table.md").read_text()
    index = (tmp_path / "README.md").read_text()
    assert "## 4 whole trajectories" in index and "## 4 trajectories, every 20th pair" in index
    assert "# The benchmark grid: 4 trajectories, every 20th pair" in (every20 / "README.md").read_text()


def test_a_grid_file_gives_every_planned_cell_a_row_with_its_seeds_out_of_those_planned(grid, tmp_path):
    sweep = _sweep(tmp_path / "grid.yaml", "sam", "      algo: sam,gail\n      env: hopper,ant\n      seed: 0,1,2,3\n")
    out = tmp_path / "out"
    # Each algorithm's own default protocol: SAM whole trajectories, GAIL every 20th pair.
    reports = benchmark_report([grid], out, [sweep], figures=False)["protocols"]
    rows = {(r["env"], r["algo"]): r for r in reports[WHOLE]["rows"] + reports[EVERY20]["rows"]}
    assert rows[("hopper", "sam")]["seeds"] == 3 and rows[("hopper", "sam")]["planned"] == 4
    assert (rows[("ant", "gail-ppo")]["runs"], rows[("ant", "gail-ppo")]["not_started"]) == (0, 4)
    table = (out / "d4-whole" / "table.md").read_text()
    assert "| hopper | sam | 3 of 4 (1 not started) | 0.950" in table
    assert "| ant | sam | 0 of 4 (1 incomplete, 3 not started) | not complete |" in table
    assert "| walker | sam | 3 of 3 (not in the grid files) | 0.650" in table  # run, though the grid files no longer plan it
    assert "| ant | gail-ppo | 0 of 4 (4 not started) | not run |" in (out / "d4-every20" / "table.md").read_text()
    # A sweep that says its protocol once plans every algorithm in it.
    one = tmp_path / "one.yaml"
    one.write_text(sweep.read_text() + "demo_set:\n  subsample: 20\n")
    reports = benchmark_report([grid], tmp_path / "one", [one], figures=False)["protocols"]
    every20 = {(r["env"], r["algo"]): r for r in reports[EVERY20]["rows"]}
    assert every20[("hopper", "sam")]["planned"] == 4 and every20[("hopper", "sam")]["runs"] == 0
    assert every20[("hopper", "gail-ppo")]["seeds"] == 3
    # one job training three seeds (train.seeds_per_process=3) plans all three
    stacked = tmp_path / "stacked.yaml"
    text = sweep.read_text().replace("algo: sam,gail", "algo: sam").replace("env: hopper,ant", "env: walker")
    stacked.write_text(text.replace("seed: 0,1,2,3", "seed: 0") + "train:\n  seeds_per_process: 3\n")
    rows = {(r["env"], r["algo"]): r for r in benchmark_report([grid], out, [stacked], figures=False)["protocols"][WHOLE]["rows"]}
    assert (rows[("walker", "sam")]["seeds"], rows[("walker", "sam")]["planned"]) == (3, 3)
    assert main([str(grid), "--out", str(out), "--grid", str(tmp_path / "nope.yaml")]) == 2


def test_a_cell_without_a_complete_seed_says_how_far_its_incomplete_seeds_got(tmp_path):
    root = tmp_path / "benchmark"
    for seed, (steps, scores) in enumerate((([0, 50_000, 100_000], [0.0, 0.05, 0.1]), ([0, 75_000, 150_000], [0.0, 0.2, 0.3]))):
        d = _run(root, "gail", "gail-ppo", "ant", seed, 0.0, steps, scores)
        (d / "summary.json").unlink()  # stopped before its budget: no summary
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg["train"]["env_steps"] = 3_000_000
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    (row,) = benchmark_report([root], out, figures=False)["protocols"][EVERY20]["rows"]
    out = out / "d4-every20"
    assert (row["seeds"], row["incomplete"], row["partial_steps"]) == (0, 2, (100_000, 150_000))
    expected = "| ant | gail-ppo | 0 of 2 (2 incomplete) | not complete: 2 incomplete seeds at 100k–150k of 3M env steps, "
    expected += "last evaluation 0.200 (mean) |"
    assert expected in (out / "table.md").read_text()


def test_the_bootstrap_interval_is_seeded_and_brackets_the_mean():
    v = np.array([0.2, 0.5, 0.9])
    a, b = bootstrap_ci(v, np.random.default_rng(0)), bootstrap_ci(v, np.random.default_rng(0))
    assert a == b and a[0] < v.mean() < a[1] and v.min() <= a[0] and a[1] <= v.max()
    assert bootstrap_ci(np.array([0.7]), np.random.default_rng(0)) == (0.7, 0.7)


def test_the_command_line_refuses_a_missing_directory(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_every_algorithm_of_the_grid_has_its_own_colour():
    # Dyna-AIL's label (dyna-tp10) once fell back to matplotlib's C1, the orange SAM is drawn in.
    from matplotlib.colors import to_hex

    labels = ["bc", "dyna-tp10", "gail-ppo", "gail-trpo", "mgail", "sam", "my-algo"]
    colours = {lab: to_hex(c) for lab, c in palette(labels).items()}  # compared as drawn: two names can be one colour
    assert len(set(colours.values())) == len(labels), colours
    assert to_hex(DEMO_COLOR) not in colours.values()
    assert palette(["dyna-tp5"]) == {"dyna-tp5": "tab:purple"}  # one algorithm, one colour in every figure


def test_two_variants_of_one_algorithm_in_one_figure_get_two_colours():
    # mgail-tp5 and mgail-tp10 side by side were once both MGAIL green.
    colours = palette(["gail-ppo", "gail-ppo-lr3", "mgail", "mgail-tp5", "mgail-tp10", "x", "y"])
    assert len(set(colours.values())) == 7, colours
    assert colours["gail-ppo"] == "tab:blue" and colours["mgail"] == "tab:green"
    assert palette(["gail-ppo-lr3", "mgail-tp5"]) == {"gail-ppo-lr3": "tab:blue", "mgail-tp5": "tab:green"}
    many = palette([f"algo{i}" for i in range(len(SPARE_COLORS) + 1)])
    assert len(set(many.values())) == len(SPARE_COLORS)  # past the spare colours, they repeat


def test_the_committed_benchmark_tables_regenerate_from_the_committed_run_files(tmp_path):
    repo = Path(__file__).resolve().parent.parent
    committed = repo / "docs" / "results" / "benchmark"
    grid = [repo / "sweeps" / f"benchmark_grid{suffix}.yaml" for suffix in ("", "_sam", "_sam_sac", "_model_based")]
    protocols = benchmark_report([committed / "runs" / "benchmark"], tmp_path, grid, False, repo / "sweeps" / "not_run/benchmark_grid.yaml")[
        "protocols"
    ]
    assert [p.slug for p in protocols] == ["d4-every20", "d4-whole"]  # the grid's protocol first
    names = [Path(p.slug) / n for p in protocols for n in ("table.md", "table.csv", "aggregate.md") if (tmp_path / p.slug / n).exists()]
    tables = [[line for line in (d / "README.md").read_text().splitlines() if not line.startswith("Written by")] for d in (tmp_path, committed)]
    assert len(names) >= 5 and tables[0] == tables[1]  # every protocol's table, the command aside (its --out differs)
    for name in names:
        assert (tmp_path / name).read_text() == (committed / name).read_text(), f"{name}: rerun the README's ail.benchmark command"


def test_a_task_with_fewer_seeds_is_left_out_of_the_aggregate_rather_than_cutting_the_others_down():
    from ail.aggregate import equal_seeds

    # GAIL's grid on 2026-12-02: 3 seeds on three tasks, 1 on Ant. min() would keep 4 runs, this 9.
    assert equal_seeds({"ant": [0], "hopper": [0, 1, 2], "walker": [0, 1, 2], "halfcheetah": [0, 1, 2]}) == (
        3,
        ["halfcheetah", "hopper", "walker"],
    )
    # 2 seeds on two tasks keeps 4 runs, 3 seeds on one only 3.
    assert equal_seeds({"a": [0, 1], "b": [0, 1, 2]}) == (2, ["a", "b"])
    # a tie (3 x 1 = 1 x 3) takes the larger n.
    assert equal_seeds({"a": [0], "b": [0], "c": [0, 1, 2]}) == (3, ["c"])
    assert equal_seeds({"a": [0, 1, 2], "b": [0, 1, 2]}) == (3, ["a", "b"])


def test_whether_a_run_acts_in_its_env_comes_from_its_learners_recorded_traits_not_its_name(tmp_path):
    def recorded(d: Path, interacts: bool) -> None:
        summary = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**summary, "unit": "updates", "interacts_with_env": interacts}))

    root = tmp_path / "runs"
    recorded(_run(root, "toy", "toy", "hopper", 0, 0.5, [0, 0], [0.0, 0.5]), False)
    recorded(_run(root, "bc", "bc", "hopper", 0, 0.5, [0, 0], [0.0, 0.5]), True)  # a name says nothing
    _run(root, "older", "older", "hopper", 0, 0.5, [0, 0], [0.0, 0.5])  # from before the traits were recorded: its curve
    by_label = {r.label: r for r in load_runs([root])}
    assert not by_label["toy"].interacts and by_label["bc"].interacts and not by_label["older"].interacts


def test_a_cell_the_grid_leaves_out_keeps_its_row_with_why(grid, tmp_path):
    sweep = _sweep(tmp_path / "grid.yaml", "gail", "      env: hopper\n      seed: 0,1,2\n")
    left_out = tmp_path / "not_run.yaml"
    left_out.write_text("- algo: sam\n  env: ant\n  reason: its generator's ceiling there is 0.248\n")
    benchmark_report([grid], tmp_path / "out", [sweep], False, left_out)
    table = (tmp_path / "out" / "d4-every20" / "table.md").read_text()  # the grid's protocol
    assert "| ant | sam | 0 of 0 (left out of the grid) | not run: its generator's ceiling there is 0.248 |" in table
    left_out.write_text("sam: ant\n")
    assert main([str(grid), "--out", str(tmp_path / "bad"), "--grid", str(sweep), "--not-run", str(left_out), "--tables-only"]) == 2
