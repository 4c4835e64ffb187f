"""The real launch.py end to end on tiny budgets: run dir contract, logging, determinism, resume, sweeps."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, TINY_BC, launch, read_metrics, without_wall_time

from ail import load_policy
from ail.evaluation import evaluate


def run_dir(runs: Path, exp: str = "default", name: str = "bc-cartpole-d4", seed: int = 0) -> Path:
    return runs / exp / name / f"seed{seed}"


def test_run_directory_contract(runs):
    proc = launch(TINY_BC, runs)
    assert proc.returncode == 0, proc.stderr
    d = run_dir(runs)
    assert {"config.yaml", "meta.json", "metrics.csv", "checkpoints", "policy", "summary.json"} <= {p.name for p in d.iterdir()}
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    assert cfg["algo"]["name"] == "bc" and cfg["env"]["id"] == "CartPole-v1" and cfg["demos"] == 4
    meta = json.loads((d / "meta.json").read_text())
    assert meta["versions"]["stable-baselines3"] and meta["git_sha"] and meta["launches"][0]["status"] == "new"
    rows = read_metrics(d)
    assert [int(r["updates"]) for r in rows] == [0, 100, 200, 300]
    for col in ("env_steps", "wall_time", "return_mean", "return_std", "return_min", "return_max", "normalized_score", "loss"):
        assert col in rows[0]
    summary = json.loads((d / "summary.json").read_text())
    for key in ("env_steps", "final_return_mean", "final_return_std", "normalized_score", "expert_return", "wall_time_s", "status"):
        assert key in summary
    assert summary["status"] == "complete"
    # The printed summary names the run dir and compares with the expert.
    assert f"run directory: {d}" in proc.stdout and "expert 500.0" in proc.stdout
    # The public loader acts on raw observations.
    policy = load_policy(d)
    ret = evaluate(policy.predict, "cartpole", 2, seed=summary["seed"] + 2_000_000)
    assert np.isclose(ret.mean(), summary["final_return_mean"])
    # A finished run relaunched does nothing and changes nothing.
    # (meta.json records every launch; .lock names the last holder.)
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name not in ("meta.json", ".lock")}
    again = launch(TINY_BC, runs)
    assert again.returncode == 0 and "already complete" in again.stdout
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name not in ("meta.json", ".lock")} == before


def test_resume_mismatch_is_refused_and_nothing_changes(runs):
    assert launch(TINY_BC, runs).returncode == 0
    d = run_dir(runs)
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name != ".lock"}
    proc = launch(TINY_BC + ["algo.lr=0.5"], runs)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()
    assert len(line) == 1 and "was created by a different config (algo.lr=0.001 there, 0.5 now)" in line[0]
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name != ".lock"} == before


def test_foreign_directory_is_not_touched(runs):
    d = run_dir(runs)
    d.mkdir(parents=True)
    (d / "notes.txt").write_text("mine")
    proc = launch(TINY_BC, runs)
    assert proc.returncode == 2 and "no config.yaml; not an ail run" in proc.stderr
    assert [p.name for p in d.iterdir()] == ["notes.txt"]


def test_more_demos_than_dataset_fails_before_run_dir(runs):
    proc = launch(TINY_BC + ["demos=11"], runs)
    assert proc.returncode == 2 and "demos=11 but" in proc.stderr and "accepted: 1..10" in proc.stderr
    assert not run_dir(runs, name="bc-cartpole-d11").exists()


def test_same_seed_same_metrics(runs):
    a = launch(TINY_BC + ["experiment=a"], runs)
    b = launch(TINY_BC + ["experiment=b"], runs)
    c = launch(TINY_BC + ["experiment=c", "seed=1"], runs)
    assert a.returncode == b.returncode == c.returncode == 0
    ra, rb, rc = (read_metrics(run_dir(runs, e, seed=s)) for e, s in (("a", 0), ("b", 0), ("c", 1)))
    assert without_wall_time(ra) == without_wall_time(rb)
    assert [r["loss"] for r in ra] != [r["loss"] for r in rc]


def _wait_rows(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) > n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {n} rows")


LONG_BC = ["env=cartpole", "algo.updates=600", "algo.eval_every=100", "eval.episodes=2", "eval.final_episodes=2", "runtime.progress=false"]


@pytest.mark.slow
# SIGKILL (and SIGTERM) at random instants: tests/test_kill_anywhere.py. Here: the clean stop's message
# and launch record, for SIGTERM and Slurm's pre-timeout SIGUSR2.
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2])
def test_kill_and_relaunch_gives_the_uninterrupted_curve(runs, sig):
    ref = launch(LONG_BC + ["experiment=ref"], runs)
    assert ref.returncode == 0, ref.stderr
    args = LONG_BC + ["experiment=cut"]
    cmd = [sys.executable, str(REPO / "launch.py"), *args, f"paths.runs={runs}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    d = run_dir(runs, "cut")
    _wait_rows(d / "metrics.csv", 4, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (-signal.SIGKILL, 128 + sig), err
    if sig != signal.SIGKILL:
        assert "checkpoint written" in err and "Traceback" not in err
    assert not (d / "summary.json").exists()
    resumed = launch(args, runs)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    rows = read_metrics(d)
    assert [int(r["updates"]) for r in rows] == list(range(0, 601, 100))
    assert without_wall_time(rows) == without_wall_time(read_metrics(run_dir(runs, "ref")))
    summary = json.loads((d / "summary.json").read_text())
    assert summary["updates"] == 600
    launches = json.loads((d / "meta.json").read_text())["launches"]
    assert [x["status"] for x in launches] == ["new", "resume"]


@pytest.mark.slow
def test_tensorboard_and_wandb_offline(runs):
    proc = launch(TINY_BC + ["logger=all"], runs, env={"WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr
    d = run_dir(runs)
    assert list((d / "tensorboard").glob("events.out.tfevents.*"))
    offline = list((d / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("run-*.wandb"))
    assert len(read_metrics(d)) == 4


@pytest.mark.slow
def test_multirun_sweep_over_envs_and_seeds(runs):
    proc = launch(
        [
            "-m",
            "algo=bc",
            "env=cartpole,acrobot",
            "seed=0,1",
            "algo.updates=100",
            "algo.eval_every=100",
            "eval.episodes=1",
            "eval.final_episodes=1",
            "runtime.progress=false",
        ],
        runs,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for env in ("cartpole", "acrobot"):
        for seed in (0, 1):
            d = run_dir(runs, name=f"bc-{env}-d4", seed=seed)
            assert json.loads((d / "summary.json").read_text())["seed"] == seed


@pytest.mark.slow
def test_bc_learns_cartpole(runs):
    proc = launch(
        ["env=cartpole", "algo.updates=1500", "algo.eval_every=500", "eval.episodes=5", "eval.final_episodes=10", "runtime.progress=false"], runs
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run_dir(runs) / "summary.json").read_text())
    assert summary["normalized_score"] >= 0.9, summary


@pytest.mark.slow
def test_wandb_run_keeps_its_id_group_and_provenance_across_a_preemption(runs):
    import os

    from conftest import REPO

    args = [*TINY_BC, "algo.updates=1000", "logger=wandb"]
    cmd = [sys.executable, str(REPO / "launch.py"), *args, f"paths.runs={runs}"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "SLURM_JOB_ID": "4242"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    d = run_dir(runs)
    deadline = time.time() + 300
    while not ((d / "metrics.csv").exists() and len((d / "metrics.csv").read_text().splitlines()) > 3):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    again = launch(args, runs, env={"SLURM_JOB_ID": "4242"})
    assert again.returncode == 0, again.stderr
    wandb_id = json.loads((d / "meta.json").read_text())["wandb_id"]
    offline = sorted((d / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(p.name.endswith(f"-{wandb_id}") for p in offline)  # one W&B run, two sittings
    # Offline runs keep config and metric definitions in the run's protobuf log: look for them there.
    log = (offline[-1] / f"run-{wandb_id}.wandb").read_bytes()
    assert b"slurm_job_id" in log and b'"4242"' in log and b"git_sha" in log
    assert b"bc-cartpole-d4" in log  # the group: mean +- band across seeds in the UI
    assert b"env_steps" in log  # the x-axis of every eval/* and train/* metric
