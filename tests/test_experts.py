"""Shipped experts meet their bars; expert training saves, resumes, never overwrites; bad expert dirs."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from ail import load_expert
from ail.errors import ConfigError
from ail.evaluation import evaluate
from ail.experts import expert_info
from ail.paths import experts_root
from conftest import REPO, launch

# Bars of the spine issue: mean deterministic return a shipped expert must reach.
BARS = {"cartpole": 500, "mountaincar": -110, "acrobot": -85, "invertedpendulum": 1000, "hopper": 3000}
SHIPPED = sorted(p.name for p in experts_root().iterdir() if (p / "expert.json").is_file())


def test_spine_experts_are_shipped():
    assert set(BARS) <= set(SHIPPED)


@pytest.mark.parametrize("name", sorted(BARS))
def test_shipped_expert_meets_bar(name):
    info = expert_info(name)
    assert info["return_mean"] >= BARS[name] and info["eval_episodes"] == 50
    expert = load_expert(name)
    # Fresh episodes (not those of expert.json): 10 here; benchmarks/expert_quality.py runs 50.
    ret = evaluate(expert.predict, name, 10, seed=777)
    slack = 0.05 * abs(info["return_mean"] - info["random_return_mean"])
    assert ret.mean() >= min(BARS[name], info["return_mean"]) - slack, ret


def _tiny_expert_args(tmp_path, total=3000):
    return ["task=expert", "env=cartpole", f"env.expert.total_steps={total}", "env.expert.eval_every=1000",
            "env.expert.eval_episodes=2", "env.expert.normalize=true", "runtime.progress=false",
            f"paths.experts={tmp_path / 'experts'}"]


@pytest.mark.slow
def test_expert_train_save_load_and_no_overwrite(tmp_path):
    runs = tmp_path / "runs"
    proc = launch(_tiny_expert_args(tmp_path), runs)
    assert proc.returncode == 0, proc.stderr
    d = tmp_path / "experts" / "cartpole"
    assert {"model.zip", "vecnormalize.pkl", "expert.json", "policy.json"} <= {p.name for p in d.iterdir()}
    info = json.loads((d / "expert.json").read_text())
    for key in ("algorithm", "env_id", "training_steps", "return_mean", "return_std", "return_min", "return_max",
                "random_return_mean", "versions"):
        assert key in info
    assert info["env_id"] == "CartPole-v1" and info["eval_episodes"] == 50
    # load_expert applies VecNormalize itself: same actions as SB3 with the saved statistics.
    expert = load_expert("cartpole", root=tmp_path / "experts")
    model = PPO.load(d / "model.zip", device="cpu")
    import pickle

    vn: VecNormalize = pickle.loads((d / "vecnormalize.pkl").read_bytes())
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    sb3_actions, _ = model.predict(vn.normalize_obs(obs), deterministic=True)
    assert np.array_equal(expert.predict(obs), sb3_actions)
    # A second training run must not replace the installed expert.
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    again = launch(_tiny_expert_args(tmp_path), runs)
    assert again.returncode == 2 and "already holds an expert" in again.stderr
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


@pytest.mark.slow
def test_expert_training_resumes_after_sigterm(tmp_path):
    runs = tmp_path / "runs"
    cmd = [sys.executable, str(REPO / "launch.py"), *_tiny_expert_args(tmp_path, total=200000), f"paths.runs={runs}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = runs / "default" / "expert-cartpole" / "seed0" / "checkpoints" / "state.json"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "checkpoint written" in err
    state = json.loads(ckpt.read_text())
    assert state["evals"] and not state["done"]
    resumed = launch(_tiny_expert_args(tmp_path, total=3000 + 1000 * len(state["evals"])), runs)
    assert "resuming cartpole" in resumed.stdout


def test_corrupt_or_foreign_expert_is_reported(tmp_path):
    src = experts_root() / "cartpole"
    bad = tmp_path / "cartpole"
    shutil.copytree(src, bad)
    (bad / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="cannot load .*model.zip"):
        load_expert("cartpole", root=tmp_path)
    info = json.loads((bad / "expert.json").read_text())
    (bad / "expert.json").write_text(json.dumps({**info, "env_id": "CartPole-v0"}))
    with pytest.raises(ConfigError, match="is an expert for CartPole-v0, but env=cartpole is CartPole-v1"):
        load_expert("cartpole", root=tmp_path)
    shutil.rmtree(bad)
    with pytest.raises(ConfigError, match="no complete expert in .*cartpole"):
        load_expert("cartpole", root=tmp_path)
