"""The run directory under concurrent launches, stale files and bad input (one test per defect found on
the pre-contract main), through the real launch.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, TINY_BC, launch, read_metrics, without_wall_time


def bc_dir(runs: Path, exp: str = "default") -> Path:
    return runs / exp / "bc-cartpole-d4" / "seed0"


def test_a_second_launch_into_a_held_run_directory_is_refused_and_the_first_finishes_cleanly(runs):
    args = [a for a in TINY_BC if not a.startswith("algo.updates")] + ["algo.updates=3000", "algo.eval_every=300"]
    first = subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), *args, f"paths.runs={runs}"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = bc_dir(runs) / "metrics.csv"
    deadline = time.time() + 120
    while not metrics.is_file():
        assert time.time() < deadline and first.poll() is None, first.stderr.read() if first.poll() is not None else "no metrics"
        time.sleep(0.05)
    second = launch(args, runs)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "is in use by host" in lines[0] and f"pid {first.pid}" in lines[0], second.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    rows = read_metrics(bc_dir(runs))
    assert [int(r["updates"]) for r in rows] == list(range(0, 3001, 300))  # no row twice
    assert len(json.loads((bc_dir(runs) / "meta.json").read_text())["launches"]) == 1


def test_a_relaunch_without_a_checkpoint_starts_metrics_over(runs):
    """A launch killed after writing evaluation rows but before its first checkpoint leaves rows that
    the next launch, which starts from scratch, must not keep (nor a row cut short by the kill)."""
    assert launch(TINY_BC + ["experiment=ref"], runs).returncode == 0
    ref = without_wall_time(read_metrics(bc_dir(runs, "ref")))
    assert launch(TINY_BC, runs).returncode == 0
    d = bc_dir(runs)
    shutil.rmtree(d / "checkpoints")
    (d / "summary.json").unlink()
    text = (d / "metrics.csv").read_text()
    (d / "metrics.csv").write_text(text + text.splitlines()[1][:7])  # a duplicate row, cut short
    assert launch(TINY_BC, runs).returncode == 0
    assert without_wall_time(read_metrics(d)) == ref


def test_train_rolls_out_missing_demonstrations_with_the_experts_of_paths_experts(runs, tmp_path):
    experts = tmp_path / "experts"
    shutil.copytree(REPO / "experts" / "cartpole", experts / "cartpole")
    (experts / "cartpole" / "model.zip").write_bytes(b"not a zip")
    proc = launch(TINY_BC + [f"paths.experts={experts}", f"paths.demos={tmp_path / 'demos'}"], runs)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and f"cannot load {experts / 'cartpole'}" in proc.stderr, proc.stderr
    assert not bc_dir(runs).exists()


def test_an_unwritable_runs_directory_is_one_line(tmp_path):
    runs = tmp_path / "locked"
    runs.mkdir()
    if subprocess.run(["chattr", "+i", str(runs)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs an ext* file system and CAP_LINUX_IMMUTABLE)")
    try:
        proc = launch(TINY_BC, runs)
    finally:
        subprocess.run(["chattr", "-i", str(runs)], check=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {runs}/") and "accepted: paths.runs=DIR" in lines[0], proc.stderr


def test_a_bad_bc_value_fails_before_any_file_and_the_corrected_launch_runs(runs):
    for bad in ("algo.eval_every=0", "algo.batch_size=0", "algo.updates=-3"):
        proc = launch(TINY_BC + [bad], runs)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "is invalid; accepted: a positive integer" in proc.stderr, bad
        assert not runs.exists() or not any(runs.rglob("*.yaml"))
    assert launch(TINY_BC, runs).returncode == 0


def test_bc_evaluates_every_eval_every_updates(runs):
    assert launch(TINY_BC + ["eval.every=150"], runs).returncode == 0
    assert [int(r["updates"]) for r in read_metrics(bc_dir(runs))] == [0, 150, 300]


def test_gail_past_its_budget_says_so(runs):
    args = [
        "algo=gail",
        "env=cartpole",
        "algo.ppo.n_steps=256",
        "train.env_steps=3000",
        "eval.every=2048",
        "eval.episodes=1",
        "eval.final_episodes=1",
        "runtime.progress=false",
    ]
    proc = launch(args, runs)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((runs / "default" / "gail-ppo-cartpole-d4" / "seed0" / "summary.json").read_text())
    assert summary["env_steps"] == 4096 and summary["budget"] == 3000
    assert "1096 past the budget of 3000" in summary["budget_note"] and "2048 env steps" in summary["budget_note"]
    assert "note: ran 4096 env steps" in proc.stdout


@pytest.mark.parametrize("algo", ["mgail", "dyna"])
def test_a_budget_spent_by_the_warm_up_is_refused(runs, algo):
    proc = launch([f"algo={algo}", "env=cartpole", "train.env_steps=500", "algo.warmup_steps=700"], runs)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "train.env_steps=500 is spent by the warm-up alone" in proc.stderr and "accepted: train.env_steps > " in proc.stderr
    assert not runs.exists() or not any(runs.rglob("*.yaml"))


def test_task_demos_leaves_no_empty_run_directory(runs, tmp_path):
    proc = launch(["task=demos", "env=cartpole", f"paths.demos={tmp_path / 'demos'}"], runs)
    assert proc.returncode == 0, proc.stderr
    assert any((tmp_path / "demos" / "cartpole").glob("*.npz"))
    assert not runs.exists() or not any(p.is_dir() for p in runs.rglob("*")), list(runs.rglob("*"))


def test_the_lock_file_names_its_holder_and_a_dead_holder_does_not_block(runs):
    assert launch(TINY_BC, runs).returncode == 0
    lock = bc_dir(runs) / ".lock"
    assert lock.read_text().startswith(f"host {os.uname().nodename} pid ")
    again = launch(TINY_BC, runs)  # the first holder exited: its lock went with it
    assert again.returncode == 0 and "already complete" in again.stdout
