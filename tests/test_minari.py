"""Minari datasets in and out (ail/minari_io.py), built here with Minari's own DataCollector; no network."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import TINY_BC, launch, read_metrics, without_wall_time
from test_sam import TINY as TINY_SAM


def collect(root: Path, dataset_id: str, env_id: str, episodes: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dataset of ``episodes`` random-policy episodes recorded by Minari's DataCollector under ``root``."""
    from minari import DataCollector

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    env = DataCollector(gym.make(env_id))
    env.action_space.seed(0)
    for ep in range(episodes):
        env.reset(seed=ep)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    env.create_dataset(dataset_id=dataset_id, algorithm_name="random")
    return root / dataset_id


def test_a_demo_set_exported_to_minari_trains_bc_exactly_as_the_set_itself(runs, tmp_path):
    env = {"MINARI_DATASETS_PATH": str(tmp_path / "minari")}
    out = launch(["task=demos", "env=cartpole", "demo_set.export=minari"], runs, env=env)
    assert out.returncode == 0, out.stderr
    assert "written as Minari dataset ail/cartpole/expert-v0" in out.stdout
    via = launch(TINY_BC + ["demo_set.source=minari:ail/cartpole/expert-v0", f"paths.demos={tmp_path / 'demos'}", "experiment=minari"], runs, env=env)
    assert via.returncode == 0, via.stderr
    ref = launch(TINY_BC + ["experiment=ref"], runs)
    assert ref.returncode == 0, ref.stderr
    a, b = runs / "minari" / "bc-cartpole-d4" / "seed0", runs / "ref" / "bc-cartpole-d4" / "seed0"
    assert without_wall_time(read_metrics(a)) == without_wall_time(read_metrics(b))
    # Exporting again never overwrites a dataset.
    before = sorted((tmp_path / "minari").rglob("*"))
    again = launch(["task=demos", "env=cartpole", "demo_set.export=minari"], runs, env=env)
    assert again.returncode == 2 and "Minari dataset ail/cartpole/expert-v0 already exists" in again.stderr
    assert sorted((tmp_path / "minari").rglob("*")) == before


def test_sam_on_a_gym_id_from_a_data_collector_dataset_without_an_expert(runs, tmp_path, monkeypatch):
    # No expert anywhere: the dataset's mean return stands for the expert's, a random policy's is measured once.
    path = collect(tmp_path / "minari", "test/pendulum/random-v0", "Pendulum-v1", episodes=3, monkeypatch=monkeypatch)
    args = [a for a in TINY_SAM if not a.startswith("env=")] + [
        "env=gym",
        "env.id=Pendulum-v1",
        f"demo_set.source=minari:{path}",
        "demos=2",
    ]
    proc = launch(args + [f"paths.demos={tmp_path / 'demos'}"], runs)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((runs / "default" / "sam-pendulum-v1-d2" / "seed0" / "summary.json").read_text())
    from minari import MinariDataset

    returns = [float(np.sum(ep.rewards)) for ep in MinariDataset(path / "data").iterate_episodes()]
    assert summary["expert_return"] == pytest.approx(np.mean(returns))
    record = next((tmp_path / "demos" / "pendulum-v1" / "minari").glob("*.expert.json"))
    assert json.loads(record.read_text())["random_return_mean"] == summary["random_return"]
    assert summary["env_steps"] == 600 and np.isfinite(summary["normalized_score"])


def test_bad_minari_input_is_one_line_before_any_run_dir(runs, tmp_path, monkeypatch):
    pendulum = collect(tmp_path / "minari", "test/pendulum/random-v0", "Pendulum-v1", episodes=1, monkeypatch=monkeypatch)
    empty = collect(tmp_path / "minari", "test/cartpole/empty-v0", "CartPole-v1", episodes=0, monkeypatch=monkeypatch)
    cases = [
        (
            f"demo_set.source=minari:{pendulum}",
            "has observation space Box(3,), but CartPole-v1 has Box(4,); accepted: a dataset recorded on CartPole-v1",
        ),
        ("demo_set.source=minari:test/nowhere-v0", "no Minari dataset at"),
        (f"demo_set.source=minari:{empty}", "holds no episodes; accepted: a dataset with at least one episode"),
        ("demo_set.source=d4rl:hopper", "demo_set.source=d4rl:hopper is invalid; accepted: expert, or minari:<dataset id or directory>"),
    ]
    for override, expected in cases:
        proc = launch(TINY_BC + [override], runs, env={"MINARI_DATASETS_PATH": str(tmp_path / "minari")})
        assert proc.returncode == 2 and expected in proc.stderr and proc.stderr.count("\n") == 1, (override, proc.stderr)
        assert not runs.exists() or not any(runs.rglob("*")), override
