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
from conftest import REPO, launch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from ail import load_expert
from ail.errors import ConfigError
from ail.evaluation import evaluate
from ail.experts import expert_info, shipped_expert_dirs, zoo_bars
from ail.paths import experts_root

# Bars (issues 2 and 3): the mean deterministic return over 50 episodes a shipped expert must reach.
SHIPPED = [d.name for d in shipped_expert_dirs()]


def test_spine_experts_are_shipped():
    assert {"cartpole", "mountaincar", "acrobot", "invertedpendulum", "hopper"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_expert_meets_bar(name):
    info = expert_info(name)
    assert info["eval_episodes"] == 50
    # A shipped expert meets its bar, or its shortfall is documented with the measured cause.
    bars, shortfalls = zoo_bars()
    assert info["return_mean"] >= bars[name] or name in shortfalls, (name, info["return_mean"], bars[name])
    expert = load_expert(name)
    # A short check on fresh episodes against a bar derived from expert.json: a normalised score
    # of 0.9 relative to the recorded return, or, for an expert whose returns spread widely (one
    # that falls in some starts), the recorded mean less 3 standard errors of an n-episode mean.
    # Either stays far above the random policy (benchmarks/expert_quality.py runs all 50 episodes).
    episodes = 10 if info["env_id"].split("-")[0] not in ("Humanoid", "Ant") else 5
    ret = evaluate(expert.predict, name, episodes, seed=777)
    bar = min(
        info["random_return_mean"] + 0.9 * (info["return_mean"] - info["random_return_mean"]),
        info["return_mean"] - 3 * info["return_std"] / np.sqrt(episodes),
    )
    assert bar > info["random_return_mean"] + 0.25 * (info["return_mean"] - info["random_return_mean"]), bar
    assert ret.mean() >= bar, (ret, bar)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_fresh_clone_imitates_every_shipped_expert_without_training_one(tmp_path, name):
    # Demonstrations come from the shipped expert on first use (a 4-trajectory set keeps this short).
    proc = launch(
        [
            "algo=bc",
            f"env={name}",
            "demos=4",
            "demo_set.trajectories=4",
            "algo.updates=20",
            "algo.eval_every=20",
            "eval.episodes=1",
            "eval.final_episodes=1",
            "runtime.progress=false",
            f"paths.demos={tmp_path / 'demos'}",
        ],
        tmp_path / "runs",
    )
    assert proc.returncode == 0, proc.stderr
    assert "normalised score" in proc.stdout


def _tiny_expert_args(tmp_path, total=3000):
    return [
        "task=expert",
        "env=cartpole",
        f"env.expert.total_steps={total}",
        "env.expert.eval_every=1000",
        "env.expert.eval_episodes=2",
        "env.expert.normalize=true",
        "runtime.progress=false",
        f"paths.experts={tmp_path / 'experts'}",
    ]


@pytest.mark.slow
def test_expert_train_save_load_and_no_overwrite(tmp_path):
    runs = tmp_path / "runs"
    proc = launch(_tiny_expert_args(tmp_path), runs)
    assert proc.returncode == 0, proc.stderr
    d = tmp_path / "experts" / "cartpole"
    assert {"model.zip", "vecnormalize.pkl", "expert.json", "policy.json"} <= {p.name for p in d.iterdir()}
    info = json.loads((d / "expert.json").read_text())
    for key in ("algorithm", "env_id", "training_steps", "return_mean", "return_std", "return_min", "return_max", "random_return_mean", "versions"):
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
    total = 3000 + 1000 * len(state["evals"])
    resumed = launch(_tiny_expert_args(tmp_path, total=total), runs)
    assert "resuming cartpole" in resumed.stdout
    # Longer selection evaluations on resume re-score the kept best instead of comparing apples with pears.
    args = [
        a if not a.startswith("env.expert.eval_episodes") else "env.expert.eval_episodes=4" for a in _tiny_expert_args(tmp_path, total=total + 1000)
    ]
    rebased = launch(args + ["expert.replace=true"], runs)
    assert rebased.returncode == 0, rebased.stderr
    assert "eval_episodes 2 -> 4: best re-scored" in rebased.stdout
    # Changing the recipe of a half-trained expert is refused; the budget may change.
    changed = launch(_tiny_expert_args(tmp_path, total=200000) + ["env.expert.hyperparams.learning_rate=0.5"], runs)
    assert changed.returncode == 2
    assert "hyperparams=" in changed.stderr and "only total_steps, target_return" in changed.stderr, changed.stderr


@pytest.mark.slow
def test_a_lowered_target_is_checked_against_the_kept_best_without_more_training(tmp_path):
    runs = tmp_path / "runs"
    args = _tiny_expert_args(tmp_path, total=2000) + ["env.expert.target_return=600", "env.expert.confirm_episodes=3"]
    first = launch(args, runs)  # CartPole tops out at 500: the budget ends this run, not the target
    assert first.returncode == 0, first.stderr
    ckpt = runs / "default" / "expert-cartpole" / "seed0" / "checkpoints" / "state.json"
    before = json.loads(ckpt.read_text())
    assert not before["done"]
    lowered = [a.replace("target_return=600", "target_return=1") for a in args] + ["expert.replace=true"]
    again = launch(lowered, runs)
    assert again.returncode == 0, again.stderr
    assert "confirmation over 3 episodes" in again.stdout and "confirmed by the kept best; stopping" in again.stdout
    after = json.loads(ckpt.read_text())
    assert after["done"] and after["evals"] == before["evals"]  # no more training was needed


@pytest.mark.slow
def test_a_raised_target_continues_a_run_that_confirmed_the_old_one(tmp_path):
    runs = tmp_path / "runs"
    args = _tiny_expert_args(tmp_path, total=4000) + ["env.expert.target_return=1", "env.expert.confirm_episodes=2"]
    first = launch(args, runs)
    assert first.returncode == 0, first.stderr
    ckpt = runs / "default" / "expert-cartpole" / "seed0" / "checkpoints" / "state.json"
    before = json.loads(ckpt.read_text())
    assert before["done"] and before["evals"][-1][0] < 4000  # stopped at the confirmed target
    raised = [a.replace("target_return=1", "target_return=100000") for a in args] + ["expert.replace=true"]
    again = launch(raised, runs)
    assert again.returncode == 0, again.stderr
    assert "training on" in again.stdout
    after = json.loads(ckpt.read_text())
    assert len(after["evals"]) > len(before["evals"]) and after["evals"][-1][0] >= 4000
    # The same target again: a confirmed run stays finished.
    same = launch(args + ["expert.replace=true"], runs)
    assert same.returncode == 0 and "training on" not in same.stdout, same.stderr


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


def test_a_best_that_failed_its_confirmation_gives_way_to_the_next_policy_at_the_target(tmp_path, monkeypatch):
    # Near a task's ceiling every good policy scores the same: a kept best that failed its
    # confirmation must not block later candidates that tie with it.
    from omegaconf import OmegaConf

    from ail import experts

    cfg = OmegaConf.create(
        {
            "env": {
                "name": "inverteddoublependulum",
                "expert": {
                    "algo": "sac",
                    "eval_episodes": 2,
                    "eval_every": 10,
                    "target_return": 9340,
                    "confirm_episodes": 3,
                    "normalize": False,
                    "hyperparams": {},
                },
            }
        }
    )
    trainer = experts.ExpertTrainer(cfg, tmp_path)
    scores = iter([9359.8, 9359.1, 9359.0])
    confirmations = iter([9241.0, 9359.0])
    monkeypatch.setattr(experts, "_snapshot", lambda model, venv: type("P", (), {"predict": None})())
    monkeypatch.setattr(experts, "load_policy_dir", lambda d: type("P", (), {"predict": None})())
    monkeypatch.setattr(trainer, "_save_model", lambda model, d: None)
    monkeypatch.setattr(experts, "_as_expert_dir", lambda d, algo, name, normalize: d)

    def fake_evaluate(predict, name, episodes, seed):
        return np.array([next(confirmations) if episodes == 3 else next(scores)])

    monkeypatch.setattr(experts, "evaluate", fake_evaluate)
    model = type("M", (), {"num_timesteps": 10, "get_env": lambda self: None})()
    trainer.evaluate_and_keep_best(model)
    assert trainer.state["best_steps"] == 10 and not trainer.target_confirmed()  # 9241 over 3 episodes
    model.num_timesteps = 20
    trainer.evaluate_and_keep_best(model)  # 9359.1 < 9359.8, but the best failed its confirmation
    assert trainer.state["best_steps"] == 20 and trainer.target_confirmed()
    model.num_timesteps = 30
    trainer.evaluate_and_keep_best(model)  # a confirmed best is only replaced by a tie or better
    assert trainer.state["best_steps"] == 20


@pytest.mark.slow
def test_an_off_policy_expert_resumes_with_its_replay_buffer(tmp_path):
    runs = tmp_path / "runs"
    args = [
        "task=expert",
        "env=inverteddoublependulum",
        "env.expert.eval_every=300",
        "env.expert.eval_episodes=1",
        "env.expert.target_return=1e9",
        "env.expert.hyperparams.learning_starts=100",
        "env.expert.hyperparams.batch_size=32",
        "env.expert.hyperparams.buffer_size=5000",
        "runtime.progress=false",
        f"paths.experts={tmp_path / 'experts'}",
    ]
    first = launch(args + ["env.expert.total_steps=600"], runs)
    assert first.returncode == 0, first.stderr
    ckpt = runs / "default" / "expert-inverteddoublependulum" / "seed0" / "checkpoints"
    assert (ckpt / "replay.pkl").is_file()
    from stable_baselines3 import SAC

    model = SAC.load(ckpt / "model.zip", device="cpu")
    model.load_replay_buffer(ckpt / "replay.pkl")
    assert model.replay_buffer.size() == 600
    again = launch(args + ["env.expert.total_steps=900", "expert.replace=true"], runs)
    assert again.returncode == 0, again.stderr
    model.load_replay_buffer(ckpt / "replay.pkl")
    assert model.replay_buffer.size() == 900  # the restored 600 plus 300 new, not 300 alone


def test_td3_expert_action_noise_comes_from_config():
    from omegaconf import OmegaConf
    from stable_baselines3.common.noise import NormalActionNoise

    from ail.envs import make_env
    from ail.experts import _algo_kwargs

    ecfg = OmegaConf.create({"algo": "td3", "hyperparams": {"learning_rate": 1e-3, "action_noise_std": 0.1}})
    space = make_env("inverteddoublependulum").action_space
    kwargs = _algo_kwargs(ecfg, space)
    assert "action_noise_std" not in kwargs and kwargs["learning_rate"] == 1e-3
    noise = kwargs["action_noise"]
    assert isinstance(noise, NormalActionNoise)
    draws = np.stack([noise() for _ in range(4000)])
    assert draws.shape == (4000, 1) and abs(draws.std() - 0.1) < 0.01


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["env=cartpole", "env.expert.algo=dqn", "+env.expert.hyperparams.action_noise_std=0.1"], "needs expert.algo=td3|sac"),
        (["env=inverteddoublependulum", "env.expert.algo=td3", "+env.expert.hyperparams.action_noise_std=-1"], "accepted: a positive number"),
    ],
)
def test_bad_expert_action_noise_is_one_line_before_any_file(tmp_path, overrides, message):
    runs = tmp_path / "runs"
    proc = launch(["task=expert", *overrides, f"paths.experts={tmp_path / 'experts'}"], runs)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "action_noise_std=" in proc.stderr
    assert not runs.exists() or not any(p.is_file() for p in runs.rglob("*"))


def test_every_held_out_check_meets_its_bar_or_the_shortfall_is_documented():
    # experts/heldout.json: benchmarks/expert_quality.py --record, on reset seeds no training or expert.json used.
    bars, shortfalls = zoo_bars()
    held = json.loads((REPO / "experts" / "heldout.json").read_text())
    assert {"mountaincar", "humanoid"} <= set(held)
    for name, h in held.items():
        assert h["episodes"] >= 100 and h["seed"] >= 200_000, (name, h)
        assert h["return_mean"] >= bars[name] or name in shortfalls, (name, h["return_mean"], bars[name])
