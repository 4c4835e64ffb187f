"""Shared helpers: run the real launch.py in a subprocess with outputs under a temp dir."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Small, fast BC settings shared by the end-to-end tests.
TINY_BC = ["env=cartpole", "algo.updates=300", "algo.eval_every=100", "eval.episodes=2", "eval.final_episodes=2", "runtime.progress=false"]


def launch(args: list[str], runs: Path, env: dict[str, str] | None = None, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    """``python launch.py ARGS paths.runs=RUNS``; returns the finished process (text output)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    cmd = [sys.executable, str(REPO / "launch.py"), *args, f"paths.runs={runs}"]
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout, **kw)


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def without_wall_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"
