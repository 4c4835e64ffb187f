"""The failure paths a user meets: Ctrl-C (once, twice), a full disk, a checkpoint that cannot be read.
Each ends in one line that says what happened and what to do; nothing written before is lost."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, assert_preemption_resumes_exactly, launch
from test_gail import TINY as TINY_GAIL

from ail.errors import StorageError

pytestmark = pytest.mark.slow

ARGS = [a for a in TINY_GAIL if not a.startswith(("train.env_steps", "eval.every"))] + [
    "train.env_steps=16384",
    "eval.every=2048",
]  # a round is 8 envs x 256 steps


def gail_dir(runs: Path, experiment: str) -> Path:
    return runs / experiment / "gail-ppo-cartpole-d4" / "seed0"


def _start(runs: Path, experiment: str, args: list[str] = ARGS) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), *args, f"experiment={experiment}", f"paths.runs={runs}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_rows(proc: subprocess.Popen, metrics: Path, rows: int) -> None:
    deadline = time.time() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > rows):
        assert time.time() < deadline and proc.poll() is None, f"{metrics} never reached {rows} rows"
        time.sleep(0.02)


def test_a_second_ctrl_c_stops_at_once_and_the_last_checkpoint_stays_valid(runs):
    # Rounds of 8 x 2048 env steps: both presses land inside one round, long before its end.
    args = [a for a in ARGS if not a.startswith(("algo.ppo.n_steps", "train.env_steps", "eval.every"))]
    args += ["algo.ppo.n_steps=2048", "train.env_steps=65536", "eval.every=16384"]
    proc = _start(runs, "twice", args)
    _wait_for_rows(proc, gail_dir(runs, "twice") / "metrics.csv", 2)  # the evaluation at 16384 and its checkpoint
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert time.time() - t0 < 5
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("[interrupted] stopped at once; the last checkpoint, if any, is kept"), err
    checkpoint = gail_dir(runs, "twice") / "checkpoints" / "last.pt"
    assert torch.load(checkpoint, map_location="cpu", weights_only=False)["env_steps"] == 16384


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_ctrl_c_checkpoints_in_one_line_and_an_unreadable_checkpoint_is_set_aside_for_the_previous_one(runs):
    # One interrupted run serves both: Ctrl-C stops it, then its last.pt is truncated before the relaunch,
    # which must still end exactly as the uninterrupted run (from previous.pt, metrics.csv cut back to it).
    def corrupt(run_dir: Path) -> None:
        assert (run_dir / "checkpoints" / "previous.pt").is_file()  # the run directory keeps the one before too
        _truncate(run_dir / "checkpoints" / "last.pt")

    stopped, resumed = assert_preemption_resumes_exactly(ARGS, runs, lambda e: gail_dir(runs, e), rows=4, signum=signal.SIGINT, before_resume=corrupt)
    assert "Traceback" not in stopped and "KeyboardInterrupt" not in stopped, stopped
    last = stopped.strip().splitlines()[-1]
    assert last.startswith("[interrupted] received SIGINT: checkpoint written at env_steps="), stopped
    assert str(gail_dir(runs, "cut") / "checkpoints" / "last.pt") in last and last.endswith("relaunch the same command to resume")
    assert "last.pt cannot be read" in resumed and "set aside as last.pt.unreadable-" in resumed
    assert len(list((gail_dir(runs, "cut") / "checkpoints").glob("last.pt.unreadable-*"))) == 1


def test_with_no_readable_checkpoint_one_line_says_how_to_start_again(runs):
    proc = _start(runs, "none")
    _wait_for_rows(proc, gail_dir(runs, "none") / "metrics.csv", 3)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    for name in ("last.pt", "previous.pt"):
        _truncate(gail_dir(runs, "none") / "checkpoints" / name)
    relaunch = launch(ARGS + ["experiment=none"], runs)
    assert relaunch.returncode == 2
    last = relaunch.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no readable checkpoint in ") and f"accepted: remove {gail_dir(runs, 'none')}" in last


def test_a_checkpoint_write_that_fails_for_space_names_the_file_and_cause_and_keeps_the_previous_one(tmp_path, monkeypatch):
    from ail.run import Run

    run = Run.__new__(Run)  # only what save_checkpoint reads
    run.ckpt_path, run.previous_path = tmp_path / "checkpoints" / "last.pt", tmp_path / "checkpoints" / "previous.pt"
    run.logger, run.last_eval, run.wall_time_before, run._t0 = None, {}, 0.0, time.time()
    run.save_checkpoint({"weights": 1}, env_steps=10, updates=1)

    def full_disk(obj, f, *args, **kwargs):  # torch's writer reports ENOSPC as a RuntimeError raised during the OSError
        f.write(b"partial")
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(StorageError) as exc:
        run.save_checkpoint({"weights": 2}, env_steps=20, updates=2)
    assert str(exc.value) == f"cannot write the checkpoint to {run.ckpt_path}: No space left on device"
    assert not list(run.ckpt_path.parent.glob("*.tmp"))
    monkeypatch.undo()
    assert torch.load(run.ckpt_path, weights_only=False)["state"] == {"weights": 1}


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 600 KB tmpfs (root only). Under CI the machine can mount one: a failure to is a failure."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a small tmpfs: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_ends_the_run_with_one_line_and_leaves_no_temporary(small_disk):
    args = [a for a in ARGS if not a.startswith("train.env_steps")] + ["train.env_steps=40960"]
    proc = launch(args, small_disk)
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write ") and last.endswith(": No space left on device"), last
    assert not list(small_disk.rglob("*.tmp"))


def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("PPid:"))
            if ppid == pid:
                out.append((int(status.parent.name), (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except (OSError, StopIteration):
            continue  # a process that ended while we looked
    return out


def test_a_sam_worker_that_dies_ends_the_job_within_seconds_with_one_line(runs):
    args = ["algo=sam", "env=invertedpendulum", "algo.workers=2", "algo.compile=false", "algo.ddpg.learning_starts=200"]
    args += ["train.env_steps=200000", "eval.every=400", "eval.episodes=2", "eval.final_episodes=2", "runtime.progress=false"]
    proc = _start(runs, "dies", args)
    run_dir = runs / "dies" / "sam-invertedpendulum-d4" / "seed0"
    _wait_for_rows(proc, run_dir / "metrics.csv", 2)
    (worker,) = [pid for pid, cmd in _children(proc.pid) if "spawn_main" in cmd]
    os.kill(worker, signal.SIGKILL)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 30
    assert proc.returncode == 3, err
    assert err.strip().splitlines()[-1] == (
        "error: worker 1 of 2 died (killed by SIGKILL); the job stopped, its last checkpoint is kept: relaunch to resume"
    )
    assert "state" in torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)  # intact
