"""Every sweep file in sweeps/ composes, gives each job its own run directory, and one really runs."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from ail.config import CONF_DIR, register_resolvers
from conftest import REPO, launch

SWEEPS = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))


def _combinations(name: str) -> list[list[str]]:
    params = yaml.safe_load((REPO / "sweeps" / f"{name}.yaml").read_text())["hydra"]["sweeper"]["params"]
    axes = [[f"{k}={v}" for v in str(values).split(",")] for k, values in params.items()]
    return [list(c) for c in itertools.product(*axes)]


@pytest.mark.parametrize("name", SWEEPS)
def test_every_job_of_a_sweep_composes_into_its_own_run_directory(name: str):
    register_resolvers()
    dirs = set()
    combos = _combinations(name)
    with initialize_config_dir(config_dir=str(REPO / "sweeps"), version_base=None):
        for combo in combos:
            cfg = compose(name, overrides=[*combo, f"hydra.searchpath=[file://{CONF_DIR}]"])
            dirs.add(f"{cfg.experiment}/{cfg.algo.label}-{cfg.env.name}-d{cfg.demos}/seed{cfg.seed}")
    assert len(dirs) == len(combos) > 1, sorted(dirs)


@pytest.mark.slow
def test_a_sweep_file_runs_through_the_real_launcher(tmp_path: Path):
    runs = tmp_path / "runs"
    tiny = ["seed=0", "train.env_steps=800", "algo.warmup_steps=300", "eval.episodes=1", "eval.final_episodes=1",
            "eval.every=800", "algo.batch_size=16", "algo.prep_iters=3", "algo.block_iters=3", "runtime.progress=false"]
    proc = launch(["--config-dir", str(REPO / "sweeps"), "--config-name", "mgail_forward_model", "-m", *tiny], runs, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = sorted(str(p.parent.relative_to(runs)) for p in runs.rglob("summary.json"))
    assert found == ["mgail-forward-model/mgail-fm-advanced-hopper-d4/seed0", "mgail-forward-model/mgail-fm-basic-hopper-d4/seed0"]
