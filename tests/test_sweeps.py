"""Every sweep file in sweeps/ composes, gives each job its own run directory, and one really runs."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from conftest import REPO, launch
from hydra import compose, initialize_config_dir

from ail.config import CONF_DIR, register_resolvers
from ail.schema import check_config

SWEEPS = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))


def _params(name: str) -> dict:
    """The grid of a sweep file, over the grid of the sweep file it extends (a reduced sweep)."""
    doc = yaml.safe_load((REPO / "sweeps" / f"{name}.yaml").read_text())
    parents = [d for d in doc.get("defaults", []) if isinstance(d, str) and (REPO / "sweeps" / f"{d}.yaml").is_file()]
    params: dict = {}
    for parent in parents:
        params.update(_params(parent))
    params.update(doc["hydra"]["sweeper"]["params"])
    return params


def _combinations(name: str) -> list[list[str]]:
    params = _params(name)
    axes = [[f"{k}={v}" for v in str(values).split(",")] for k, values in params.items()]
    return [list(c) for c in itertools.product(*axes)]


@pytest.mark.parametrize("name", SWEEPS)
def test_every_job_of_a_sweep_composes_into_its_own_valid_config_and_run_directory(name: str):
    register_resolvers()
    dirs = set()
    combos = _combinations(name)
    with initialize_config_dir(config_dir=str(REPO / "sweeps"), version_base=None):
        for combo in combos:
            cfg = compose(name, overrides=[*combo, f"hydra.searchpath=[file://{CONF_DIR}]"])
            check_config(cfg)  # every job's values pass the schema
            dirs.add(f"{cfg.experiment}/{cfg.algo.label}-{cfg.env.name}-d{cfg.demos}/seed{cfg.seed}")
    assert len(dirs) == len(combos) > 1, sorted(dirs)


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
