"""README.md's commands run as written, at tiny sizes: each is read from the README itself (so the
README cannot drift from what is tested) and run in a subprocess with overrides appended that only
shrink it. A command that does not fit CI's budget is listed in NOT_RUN with what checks it instead,
and a command in neither place fails the test."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

README = REPO / "README.md"

# Overrides appended to a README command, by its algorithm: they only shrink it (budgets, batches,
# episodes) and turn off the progress bar; 4 demo trajectories are rolled out instead of the task's set.
COMMON = ["eval.episodes=2", "eval.final_episodes=2", "runtime.progress=false", "demo_set.trajectories=4"]
TINY = {
    "bc": ["algo.updates=300", "algo.eval_every=100"],
    "gail": ["algo.ppo.n_steps=256", "train.env_steps=2048", "eval.every=1024"],
    "sam": [
        "train.env_steps=600",
        "eval.every=300",
        "algo.ddpg.learning_starts=200",
        "algo.batch_size=32",
        "algo.discriminator.batch_size=32",
        "algo.compile=false",  # the compiled update is the same function (tests/test_sam_update.py); compiling takes a minute
    ],
}

# What is not run here, and what checks it instead.
NOT_RUN = {
    "python -m pytest": "CI's own command (.ci/run)",
    "python -m ail.benchmark docs/results/benchmark/runs/benchmark --out docs/results/benchmark "
    "--grid sweeps/benchmark_grid.yaml sweeps/benchmark_grid_sam.yaml sweeps/benchmark_grid_sam_sac.yaml "
    "sweeps/benchmark_grid_model_based.yaml --not-run sweeps/not_run/benchmark_grid.yaml": (
        "tests/test_benchmark.py regenerates the committed tables from the same files; here its paths are checked"
    ),
    "python launch.py --config-dir sweeps --config-name benchmark_grid -m paths.runs=../grid": "hours per cell; here its jobs are composed",
}


def readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def readme_commands() -> list[str]:
    """Every command of the README's bash blocks, comments dropped, `a && b` split, installs left out."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            commands += [c.strip() for c in line.split("&&") if c.strip() and not c.strip().startswith("pip install")]
    return commands


def run(cmd: str, cwd: Path, env: dict[str, str], extra: list[str] = ()) -> subprocess.CompletedProcess:
    args = shlex.split(cmd)
    assert args[0] == "python", cmd
    args[0] = sys.executable
    if args[1] == "launch.py":
        args[1] = str(REPO / "launch.py")
    proc = subprocess.run([*args, *extra], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def tiny(cmd: str, work: Path) -> list[str]:
    algos = [a.split("=", 1)[1] for a in shlex.split(cmd) if a.startswith("algo=")] or ["bc"]  # conf/config.yaml's default
    assert len(algos) == 1 and "," not in algos[0], f"{cmd}: give the test tiny overrides valid for every algorithm of the sweep"
    return [*TINY[algos[0]], *COMMON, f"paths.runs={work / 'runs'}"]


@pytest.fixture
def work(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true", "AIL_DEMOS_DIR": str(tmp_path / "demos")}
    return tmp_path, env


def test_the_readme_is_a_front_page_of_at_most_150_lines_that_starts_with_its_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    first = readme_blocks("bash")[0].splitlines()
    assert first == ['pip install torch==2.13.0 && pip install -c constraints.txt -e ".[test]" && python launch.py', "python -m pytest"]
    assert text.index("```bash") < text.index("\n## ")  # before anything else


def test_every_readme_command_is_run_below_or_listed_with_what_checks_it():
    commands = readme_commands()
    launched = [c for c in commands if c.startswith(("python launch.py", "python -m ail.report")) and c not in NOT_RUN]
    assert set(commands) == set(launched) | set(NOT_RUN), set(commands) ^ (set(launched) | set(NOT_RUN))
    assert len(launched) == 5, launched  # the default job, the first hour's run, sweep and report, your own task


@pytest.mark.slow
def test_the_default_job_and_your_own_task_run(work):
    tmp, env = work
    default, own = [c for c in readme_commands() if c.startswith("python launch.py") and "-m" not in shlex.split(c) and "algo=sam" not in c]
    proc = run(default, REPO, env, tiny(default, tmp))
    assert "bc-hopper-d4" in proc.stdout and "expert" in proc.stdout
    run(own, REPO, env, tiny(own, tmp))
    for name in ("hopper", "hopper-v5"):
        summary = json.loads((tmp / "runs" / "default" / f"bc-{name}-d4" / "seed0" / "summary.json").read_text())
        assert summary["status"] == "complete"


@pytest.mark.slow
def test_the_first_hour_run_sweep_and_report(work):
    tmp, env = work
    one, sweep, report = [c for c in readme_commands() if "algo=sam" in c or " -m algo=" in c or "ail.report" in c]
    run(one, REPO, env, tiny(one, tmp))
    run(sweep, REPO, env, tiny(sweep, tmp))
    done = sorted(p.parent.relative_to(tmp / "runs" / "default").as_posix() for p in (tmp / "runs" / "default").rglob("summary.json"))
    assert done == ["gail-ppo-cartpole-d1/seed0", "gail-ppo-cartpole-d1/seed1", "gail-ppo-cartpole-d1/seed2"] + [
        "gail-ppo-cartpole-d4/seed0",
        "gail-ppo-cartpole-d4/seed1",
        "gail-ppo-cartpole-d4/seed2",
        "sam-hopper-d4/seed0",
    ]
    run(report, tmp, env)  # as written, from the directory that holds runs/
    table = (tmp / "report" / "table.md").read_text()
    assert "gail-ppo" in table and "sam" in table
    # GAIL's runs saw every 10th pair of CartPole's trajectories (algo.demo_subsample), SAM's the whole
    # trajectories: three groups, never pooled, each with its own figure.
    figures = {"figure_d1-every10.png", "figure_d4-every10.png", "figure_d4.png"}
    assert figures | {"table.csv"} <= {p.name for p in (tmp / "report").iterdir()}
    assert "| cartpole | 4, every 10th |" in table and "| hopper | 4 |" in table


@pytest.mark.slow
def test_the_python_api_snippet_runs_as_written(work):
    tmp, env = work
    (snippet,) = readme_blocks("python")
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp / "runs" / "default" / "bc-cartpole-d2" / "seed0" / "summary.json").is_file()
    path, mean, score = proc.stdout.strip().splitlines()[-1].split()
    assert Path(path) == Path("runs/default/bc-cartpole-d2/seed0") and float(mean) > 0 and float(score) == float(score)


def test_the_commands_not_run_here_compose():
    from ail.api import sweep_jobs

    commands = readme_commands()
    grid = next(c for c in commands if "--config-name benchmark_grid" in c)
    args = shlex.split(grid)
    overrides = [a for a in args[2:] if "=" in a and not a.startswith("--")]
    assert sweep_jobs(REPO / args[args.index("--config-dir") + 1] / f"{args[args.index('--config-name') + 1]}.yaml", overrides)
    bench = shlex.split(next(c for c in commands if "ail.benchmark" in c))
    for arg in bench[3:]:
        if not arg.startswith("--"):
            assert (REPO / arg).exists(), arg
