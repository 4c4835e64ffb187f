"""Every sweep file in sweeps/ composes and gives each of its jobs its own run directory."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO, launch

SWEEPS = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))
# Tiny budgets valid for both MGAIL and Dyna-AIL (the keys they share).
TINY = ["train.env_steps=800", "algo.warmup_steps=300", "eval.episodes=1", "eval.final_episodes=1", "eval.every=800",
        "algo.batch_size=16", "runtime.progress=false"]
EXTRA = {"mgail_forward_model": ["algo.prep_iters=3", "algo.block_iters=3"],
         "dyna_plan_steps": ["algo.learn_iters=1", "algo.fm_iters=1", "algo.plan_iters=1", "algo.plan_batch=4"],
         "dyna_vs_mgail": ["algo.unroll_steps=5"]}


def _jobs(name: str) -> int:
    params = yaml.safe_load((REPO / "sweeps" / f"{name}.yaml").read_text())["hydra"]["sweeper"]["params"]
    n = 1
    for key, value in params.items():
        n *= 1 if key == "seed" else len(str(value).split(","))
    return n


@pytest.mark.slow
@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_file_runs_every_job_into_its_own_directory(tmp_path: Path, name: str):
    runs = tmp_path / "runs"
    proc = launch(["--config-dir", str(REPO / "sweeps"), "--config-name", name, "-m", "seed=0", *TINY, *EXTRA.get(name, [])],
                  runs, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = list(runs.rglob("summary.json"))
    assert len(summaries) == _jobs(name), sorted(str(p.relative_to(runs)) for p in summaries)
