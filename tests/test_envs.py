"""Env registry, terminated vs truncated, vectorised envs."""

from __future__ import annotations

import numpy as np
import pytest

from ail.envs import ENV_IDS, env_id, make_env, make_vec_env
from ail.errors import ConfigError


def test_registry_names_and_versions():
    assert len(ENV_IDS) == 11
    assert env_id("walker") == "Walker2d-v5" and env_id("cartpole") == "CartPole-v1"
    with pytest.raises(ConfigError, match="unknown env 'pong'; accepted: cartpole"):
        env_id("pong")


@pytest.mark.parametrize("name", list(ENV_IDS))
def test_every_env_builds_and_steps(name):
    env = make_env(name, seed=0)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs.astype(env.observation_space.dtype))
    obs, r, term, trunc, _ = env.step(env.action_space.sample())
    assert isinstance(term, bool) and isinstance(trunc, bool)
    env.close()


def test_seeding_reproduces_trajectories():
    def rollout(seed):
        env = make_env("hopper", seed=seed)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for _ in range(20):
            obs, *_ = env.step(env.action_space.sample())
            out.append(obs)
        return np.array(out)

    assert np.array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))


def test_time_limit_is_truncation_not_termination():
    env = make_env("mountaincar", seed=0)  # random actions never reach the flag in 200 steps
    env.reset(seed=0)
    for t in range(200):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        assert not term
    assert trunc and t == 199


def test_failure_is_termination():
    env = make_env("cartpole", seed=0)
    env.reset(seed=0)
    for t in range(500):
        _, _, term, trunc, _ = env.step(0)  # always push left: falls within a few dozen steps
        if term or trunc:
            break
    assert term and not trunc and t < 100


def test_vec_env_keeps_final_observation():
    venv = make_vec_env("cartpole", n_envs=2, seed=0)
    venv.reset()
    for _ in range(600):
        _, _, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
        if dones.any():
            i = int(np.flatnonzero(dones)[0])
            assert "terminal_observation" in infos[i] and infos[i]["TimeLimit.truncated"] is False
            break
    else:
        raise AssertionError("no episode ended")
