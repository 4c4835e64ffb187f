"""Every sweep file in sweeps/ composes, gives each job its own run directory, and one really runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO, launch
from omegaconf import OmegaConf

from ail.api import sweep_jobs
from ail.errors import ConfigError

SWEEPS = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("name", SWEEPS)
def test_every_job_of_a_sweep_composes_into_its_own_valid_config_and_run_directory(name: str):
    doc = yaml.safe_load((REPO / "sweeps" / f"{name}.yaml").read_text())
    jobs = sweep_jobs(REPO / "sweeps" / f"{name}.yaml")  # every job's values pass the schema
    dirs = {str(run_dir) for _, run_dir in jobs}
    assert len(dirs) == len(jobs) > 1, sorted(dirs)
    own = doc["hydra"]["sweeper"].get("params", {}) if "hydra" in doc else {}
    for key, values in own.items():  # the file's own axes, each value in some job (a reduced sweep adds its parent's)
        chosen = {str(OmegaConf.select(cfg, f"{key}.name" if key in ("algo", "env") else key)) for cfg, _ in jobs}
        assert chosen >= {v.strip() for v in str(values).split(",")}, key


def test_sweep_jobs_takes_command_line_overrides_and_refuses_a_missing_file(tmp_path: Path):
    jobs = sweep_jobs(REPO / "sweeps" / "benchmark_grid.yaml", ["algo=gail", "env=hopper", "seed=1,0", f"paths.runs={tmp_path}"])
    # an override's values replace the file's; Hydra's order: the last key innermost
    assert [(cfg.algo.label, cfg.seed) for cfg, _ in jobs] == [("gail-ppo", 1), ("gail-ppo", 0)]
    assert [d for _, d in jobs] == [tmp_path / "benchmark" / "gail-ppo-hopper-d4" / f"seed{s}" for s in (1, 0)]
    with pytest.raises(ConfigError, match="sweep file 'nope.yaml' not found; accepted"):
        sweep_jobs("nope.yaml")
    with pytest.raises(ConfigError, match="cannot compose the jobs of"):
        sweep_jobs(REPO / "sweeps" / "benchmark_grid.yaml", ["algo=nope"])


@pytest.mark.slow
def test_a_sweep_file_runs_through_the_real_launcher(tmp_path: Path):
    runs = tmp_path / "runs"
    tiny = [
        "seed=0",
        "train.env_steps=800",
        "algo.warmup_steps=300",
        "eval.episodes=1",
        "eval.final_episodes=1",
        "eval.every=800",
        "algo.batch_size=16",
        "algo.prep_iters=3",
        "algo.block_iters=3",
        "runtime.progress=false",
    ]
    proc = launch(["--config-dir", str(REPO / "sweeps"), "--config-name", "mgail_forward_model", "-m", *tiny], runs, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = sorted(str(p.parent.relative_to(runs)) for p in runs.rglob("summary.json"))
    assert found == ["mgail-forward-model/mgail-fm-advanced-hopper-d4/seed0", "mgail-forward-model/mgail-fm-basic-hopper-d4/seed0"]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["local", "local_parallel"])
def test_a_failed_job_does_not_stop_the_sweep_and_is_reported_by_run_directory(tmp_path: Path, launcher: str):
    runs = tmp_path / "runs"
    proc = launch(
        [
            "-m",
            "algo=bc",
            "env=cartpole",
            "demos=999,4",
            "algo.updates=100",
            "algo.eval_every=50",
            "eval.episodes=1",
            "eval.final_episodes=1",
            "runtime.progress=false",
            f"hydra/launcher={launcher}",
        ],
        runs,
        timeout=600,
    )
    assert proc.returncode == 1
    assert (runs / "default" / "bc-cartpole-d4" / "seed0" / "summary.json").is_file()  # ran after the failure
    bad = runs / "default" / "bc-cartpole-d999" / "seed0"
    assert not bad.exists()  # nothing half-written for the bad job
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"  {bad}: ")]
    assert len(lines) == 1 and "accepted: 1..10" in lines[0], proc.stderr[-2000:]
    assert "error: 1 job(s) failed:" in proc.stderr


def test_an_unknown_launcher_is_refused_before_any_job(tmp_path: Path):
    proc = launch(["-m", "algo=bc", "env=cartpole", "hydra/launcher=slurmm"], tmp_path / "runs", timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "unknown hydra/launcher 'slurmm'; accepted:" in proc.stderr and "slurm_gpu" in proc.stderr
    assert not (tmp_path / "runs").exists()
