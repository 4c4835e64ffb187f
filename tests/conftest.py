"""Shared helpers: run the real launch.py in a subprocess with outputs under a temp dir."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

# One torch thread per process, as every launch runs (runtime.threads=1): pytest-xdist already runs a
# worker per core, and a second intra-op thread in each worker only spins against the other worker.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
# Small, fast BC settings shared by the end-to-end tests.
TINY_BC = ["env=cartpole", "algo.updates=300", "algo.eval_every=100", "eval.episodes=2", "eval.final_episodes=2", "runtime.progress=false"]


def launch(
    args: list[str], runs: Path, env: dict[str, str] | None = None, timeout: int = 300, launcher: Path = REPO / "launch.py", **kw
) -> subprocess.CompletedProcess:
    """``python LAUNCHER ARGS paths.runs=RUNS`` (this repository's launch.py unless another copy's); returns the finished process (text output)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    cmd = [sys.executable, str(launcher), *args, f"paths.runs={runs}"]
    return subprocess.run(cmd, cwd=launcher.parent, env=full_env, capture_output=True, text=True, timeout=timeout, **kw)


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def without_wall_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def assert_preemption_resumes_exactly(
    args: list[str],
    runs: Path,
    run_dir: Callable[[str], Path],
    rows: int = 3,
    signum: int = 15,
    before_resume: Callable[[Path], None] = lambda _: None,
) -> tuple[str, str]:
    """Run ``args`` once uninterrupted (experiment=ref) and once stopped by ``signum`` (SIGTERM) after
    ``rows`` metrics rows, ``before_resume(its run dir)``, then relaunched (experiment=cut); both curves
    must be identical (wall time aside). Returns the stopped launch's and the resumed launch's stderr."""
    import time

    ref = launch(args + ["experiment=ref"], runs, timeout=900)
    assert ref.returncode == 0, ref.stderr
    cut_args = args + ["experiment=cut"]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), *cut_args, f"paths.runs={runs}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    metrics = run_dir("cut") / "metrics.csv"
    deadline = time.time() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > rows):
        assert time.time() < deadline and proc.poll() is None, f"{metrics} never reached {rows} rows"
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    before_resume(run_dir("cut"))
    resumed = launch(cut_args, runs, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert without_wall_time(read_metrics(run_dir("cut"))) == without_wall_time(read_metrics(run_dir("ref")))
    return err, resumed.stderr


def assert_kills_anywhere_resume_exactly(args: list[str], runs: Path, run_dir: Callable[[str], Path], kills: int, seed: int) -> None:
    """``args`` run once uninterrupted (experiment=ref); then, in experiment=cut, launched and killed at
    ``kills`` random instants over a launch's length (SIGKILL or SIGTERM, seeded by ``seed``), each time
    relaunched, then run to the end: its metrics.csv (wall time aside) and summary must be the reference's."""
    import json
    import random
    import signal
    import time

    t0 = time.time()
    ref = launch(args + ["experiment=ref"], runs, timeout=900)
    assert ref.returncode == 0, ref.stderr
    length = time.time() - t0
    rng = random.Random(seed)
    cut = args + ["experiment=cut"]
    for k in range(kills):
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "launch.py"), *cut, f"paths.runs={runs}"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(rng.uniform(0.5, length + 0.5))
        proc.send_signal(signal.SIGKILL if k % 2 == 0 else signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, -signal.SIGKILL, -signal.SIGTERM, 128 + signal.SIGTERM), err
    final = launch(cut, runs, timeout=900)
    assert final.returncode == 0, final.stderr
    assert without_wall_time(read_metrics(run_dir("cut"))) == without_wall_time(read_metrics(run_dir("ref")))
    summary, reference = (json.loads((run_dir(e) / "summary.json").read_text()) for e in ("cut", "ref"))
    assert summary["status"] == "complete" and summary["env_steps"] == reference["env_steps"] and summary["updates"] == reference["updates"]
    assert not list(run_dir("cut").rglob("*.tmp"))
