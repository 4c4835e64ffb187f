"""Every sweep file in sweeps/ composes, gives each job its own run directory, and one really runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO, launch
from hydra.core.override_parser.overrides_parser import OverridesParser
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
    for o in OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in own.items()]):
        # the file's own axes, each value in some job (a reduced sweep adds its parent's)
        key = o.get_key_element()
        chosen = {str(OmegaConf.select(cfg, f"{key}.name" if key in ("algo", "env") else key)) for cfg, _ in jobs}
        assert chosen >= set(o.sweep_string_iterator() if o.is_sweep_override() else [o.get_value_element_as_str()]), key


def test_sweep_jobs_takes_command_line_overrides_and_refuses_bad_input(tmp_path: Path):
    grid = REPO / "sweeps" / "benchmark_grid.yaml"
    jobs = sweep_jobs(grid, ["algo=sam,gail", "env=hopper", "seed=1,0", f"paths.runs={tmp_path}"])
    # an override's values replace the file's, in the file's place: algo outermost, seed innermost (Hydra's basic sweeper)
    assert [(cfg.algo.label, cfg.seed) for cfg, _ in jobs] == [("sam", 1), ("sam", 0), ("gail-ppo", 1), ("gail-ppo", 0)]
    assert [d for _, d in jobs][2:] == [tmp_path / "benchmark" / "gail-ppo-hopper-d4" / f"seed{s}" for s in (1, 0)]
    # as Hydra's multirun, a fixed override applies before the file's params are read
    assert [cfg.seed for cfg, _ in sweep_jobs(grid, ["algo=bc", "env=hopper", "hydra.sweeper.params.seed=7"])] == [7]
    with pytest.raises(ConfigError, match="sweep file 'nope.yaml' not found; accepted"):
        sweep_jobs("nope.yaml")
    with pytest.raises(ConfigError, match="is not a .yaml file; accepted"):
        sweep_jobs(REPO / "README.md")
    with pytest.raises(ConfigError, match="^unknown algo 'nope'; accepted: bc, "):
        sweep_jobs(grid, ["algo=nope"])
    with pytest.raises(ConfigError, match=r"'env=glob\(h\*\)': glob\(\) is not listed here; accepted: the values as a list"):
        sweep_jobs(grid, ["env=glob(h*)"])


def test_sweep_jobs_puts_back_the_callers_hydra(tmp_path: Path):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        sweep_jobs(REPO / "sweeps" / "benchmark_grid.yaml", ["algo=bc", "env=hopper", "seed=0"])
        assert GlobalHydra.instance().is_initialized()  # a notebook's own Hydra is still there
    assert not GlobalHydra.instance().is_initialized()


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
    listed = sweep_jobs(REPO / "sweeps" / "mgail_forward_model.yaml", [*tiny, f"paths.runs={runs}"])
    assert sorted(str(d.relative_to(runs)) for _, d in listed) == found  # what sweep_jobs lists is what -m ran


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
