"""GAIL end to end: both generators, bad input, NaN handling, exact resume, learning."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, launch, read_metrics, without_wall_time
from hydra import compose, initialize_config_dir

from ail.config import CONF_DIR, register_resolvers
from ail.errors import TrainingError

# 8 envs x 256 steps: one round = 2048 env steps and 16 discriminator minibatches of 128.
TINY = [
    "algo=gail",
    "env=cartpole",
    "algo.ppo.n_steps=256",
    "algo.trpo.n_steps=256",
    "train.env_steps=4096",
    "eval.every=2048",
    "eval.episodes=2",
    "eval.final_episodes=2",
    "runtime.progress=false",
]


def gail_dir(runs: Path, exp: str = "default", generator: str = "ppo", seed: int = 0) -> Path:
    return runs / exp / f"gail-{generator}-cartpole-d4" / f"seed{seed}"


@pytest.mark.parametrize("generator", ["ppo", "trpo"])
def test_gail_runs_end_to_end_with_either_generator(runs, generator):
    proc = launch(TINY + [f"algo.generator={generator}"], runs)
    assert proc.returncode == 0, proc.stderr
    d = gail_dir(runs, generator=generator)
    summary = json.loads((d / "summary.json").read_text())
    assert summary["generator"] == generator and summary["env_steps"] == 4096 and summary["rounds"] == 2
    rows = read_metrics(d)
    assert [int(r["env_steps"]) for r in rows] == [0, 2048, 4096]
    for col in ("d_loss", "d_expert", "d_policy", "d_grad_penalty", "reward_mean", "train_true_return"):
        assert col in rows[0]
    assert 0.0 < float(rows[-1]["d_expert"]) < 1.0
    meta = json.loads((d / "policy" / "policy.json").read_text())
    assert meta["meta"]["generator"] == generator


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["algo.generator=sac"], "algo.generator=sac is invalid; accepted: ppo, trpo"),
        (["algo.reward=log_d"], "algo.reward=log_d is negative every step"),  # CartPole ends on failure too
        (["env=mountaincar", "algo.reward=minimax"], "algo.reward=minimax is positive every step"),
        (["env=reacher", "algo.discriminator.action_encoding=onehot"], "action_encoding=onehot needs a discrete action space"),
        (["algo.reward=airl"], "algo.reward=airl is invalid; accepted: minimax, log_d, logit"),
        (["algo.discriminator.epochs=0"], "algo.discriminator.epochs=0 is invalid; accepted: a positive integer"),
        (
            ["algo.discriminator.obs_slice=[0,5]"],
            "algo.discriminator.obs_slice=[0, 5] is invalid for this task's 4 observation entries; accepted: [start, stop] with 0 <= start",
        ),
    ],
)
def test_bad_input_is_one_line_before_any_run_dir(runs, overrides, expected):
    proc = launch(TINY + overrides, runs)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr
    assert not any(p.is_file() for p in runs.rglob("*")) if runs.exists() else True


def test_nan_discriminator_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from ail.app import train_run
    from ail.discriminator import Discriminator

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(
            "config",
            overrides=TINY[:4] + ["train.env_steps=20480", "eval.every=2048", "eval.episodes=1", "runtime.progress=false", f"paths.runs={tmp_path}"],
        )
    calls = {"n": 0}
    real_loss = Discriminator.loss

    def loss_that_diverges(self, *args, **kwargs):  # D's weights blow up in the 4th round (16 steps per round)
        calls["n"] += 1
        if calls["n"] > 3 * 16:
            with torch.no_grad():
                self.net[0].weight.fill_(float("inf"))
        return real_loss(self, *args, **kwargs)

    monkeypatch.setattr(Discriminator, "loss", loss_that_diverges)
    with pytest.raises(TrainingError, match=r"NaN/inf at env steps \d+; stopped. The last good checkpoint .* is kept"):
        train_run(cfg, tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["env_steps"] == 3 * 2048  # the three good rounds, nothing from the broken one
    assert not (tmp_path / "run" / "summary.json").exists()
    assert all(np.isfinite(float(r["return_mean"])) for r in read_metrics(tmp_path / "run"))


RESUME = [
    "algo=gail",
    "env=cartpole",
    "train.env_steps=4096",
    "eval.every=1024",
    "eval.episodes=2",
    "eval.final_episodes=2",
    "runtime.progress=false",
]


@pytest.mark.slow
# PPO with in-process envs: tests/test_kill_anywhere.py.
@pytest.mark.parametrize("generator,vec_env", [("trpo", "dummy"), ("ppo", "subproc")])
def test_preempted_gail_resumes_to_the_uninterrupted_curve(runs, generator, vec_env):
    # Two subprocess envs, not cartpole's eight: each worker process imports torch (seconds of CPU).
    args = RESUME + [f"algo.generator={generator}", f"algo.vec_env={vec_env}"] + (["algo.n_envs=2"] if vec_env == "subproc" else [])
    ref = launch(args + ["experiment=ref"], runs)
    assert ref.returncode == 0, ref.stderr
    cut_args = args + ["experiment=cut"]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), *cut_args, f"paths.runs={runs}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = gail_dir(runs, "cut", generator) / "metrics.csv"
    from test_train_e2e import _wait_rows

    _wait_rows(metrics, 3, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    resumed = launch(cut_args, runs)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    rows = read_metrics(gail_dir(runs, "cut", generator))
    assert without_wall_time(rows) == without_wall_time(read_metrics(gail_dir(runs, "ref", generator)))
    a = json.loads((gail_dir(runs, "cut", generator) / "summary.json").read_text())
    b = json.loads((gail_dir(runs, "ref", generator) / "summary.json").read_text())
    assert a["final_return_mean"] == b["final_return_mean"]


@pytest.mark.slow
def test_gail_imitates_acrobot_where_a_discriminator_that_learns_nothing_pays_nothing(runs):
    # GAIL's learning test: a generator that does not learn, or a discriminator that does not, stays
    # below the bar. Acrobot's episodes end on success, so no constant reward can teach it: a positive
    # one pays never finishing, a negative one finishing by any route, and GAIL there uses the logit
    # reward (conf/algo_env/gail_acrobot.yaml), zero where D cannot tell. Measured, seed 0 with
    # constraints.txt's packages and this budget: 0.957 over the 10 final episodes (0.9 first at
    # 114,688 steps); the same run with D frozen (algo.discriminator.lr=1e-12): -0.008, every episode
    # at the 500-step limit. Full budgets on MuJoCo: docs/results/benchmark/.
    proc = launch(
        [
            "algo=gail",
            "env=acrobot",
            "train.env_steps=131072",
            "eval.every=131072",
            "eval.episodes=1",
            "eval.final_episodes=10",
            "runtime.progress=false",
        ],
        runs,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((runs / "default" / "gail-ppo-acrobot-d4" / "seed0" / "summary.json").read_text())
    assert summary["normalized_score"] >= 0.8, summary


@pytest.mark.slow
def test_subprocess_envs_give_the_same_curve_as_in_process_envs(runs):
    args = [*TINY, "algo.n_envs=2"]
    dummy = launch(args + ["experiment=dummy"], runs)
    sub = launch(args + ["experiment=subproc", "algo.vec_env=subproc"], runs)
    assert dummy.returncode == 0 and sub.returncode == 0, dummy.stderr + sub.stderr
    assert without_wall_time(read_metrics(gail_dir(runs, "subproc"))) == without_wall_time(read_metrics(gail_dir(runs, "dummy")))
    bad = launch(args + ["algo.vec_env=threads"], runs)
    assert bad.returncode == 2 and "algo.vec_env=threads is invalid; accepted: dummy, subproc" in bad.stderr


def test_the_generator_ceiling_trains_gails_generator_on_the_true_reward():
    # benchmarks/generator_ceiling.py: GAIL's PPO as algo=gail builds it, on CartPole's own reward.
    cmd = [sys.executable, "benchmarks/generator_ceiling.py", "--env", "cartpole", "--steps", "16384", "--eval-every", "8192"]
    proc = subprocess.run([*cmd, "--episodes", "3", "algo.ppo.n_steps=256"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[2:]]
    assert [int(r[0]) for r in rows] == [8192, 16384]
    assert float(rows[-1][4]) > 0.2  # an untrained policy scores about 0 (it falls within 10-50 steps)
