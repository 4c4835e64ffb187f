"""The plug-in reward VecEnv wrapper, and mid-episode env snapshots."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import A2C, PPO

from ail.env_state import get_vec_env_states, set_vec_env_states
from ail.envs import make_vec_env
from ail.reward_wrapper import RewardVecEnvWrapper


def test_rewards_are_replaced_and_the_true_reward_is_kept_aside():
    seen = []

    def reward_fn(obs, actions, next_obs, dones):
        seen.append((obs.copy(), actions.copy(), next_obs.copy(), dones.copy()))
        return np.full(len(obs), 7.0)

    venv = RewardVecEnvWrapper(make_vec_env("cartpole", n_envs=2, seed=0), reward_fn)
    obs = venv.reset()
    ended = 0
    for _ in range(60):
        actions = np.array([1, 1])  # always right: CartPole falls within ~10 steps
        new_obs, rewards, dones, infos = venv.step(actions)
        assert rewards.tolist() == [7.0, 7.0]
        assert [i["true_reward"] for i in infos] == [1.0, 1.0]
        s_obs, s_act, s_next, _ = seen[-1]
        assert np.array_equal(s_obs, obs) and np.array_equal(s_act, actions)
        for k in range(2):
            if dones[k]:
                ended += 1
                assert np.array_equal(s_next[k], infos[k]["terminal_observation"])  # s', not the reset obs
            else:
                assert np.array_equal(s_next[k], new_obs[k])
        obs = new_obs
    assert ended > 0
    roll = venv.pop_rollout()
    assert roll["obs"].shape == (60, 2, 4) and roll["actions"].shape == (60, 2)
    assert (roll["rewards"] == 7.0).all() and (roll["true_rewards"] == 1.0).all()
    assert venv.pop_rollout() == {}


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_any_sb3_learner_trains_on_the_wrapped_reward_only(algo):
    # A reward of exactly 0 everywhere: if the true reward leaked, the buffer would hold 1s.
    venv = RewardVecEnvWrapper(make_vec_env("cartpole", n_envs=2, seed=0), lambda o, a, n, d: np.zeros(len(o)), record=False)
    model = algo("MlpPolicy", venv, n_steps=64, seed=0, device="cpu")
    model.learn(256)
    # Time-limit bootstraps aside (CartPole rarely truncates this early), every stored reward is 0.
    assert np.allclose(model.rollout_buffer.rewards, 0.0)


@pytest.mark.parametrize("env", ["cartpole", "hopper"])
def test_env_snapshot_continues_bit_for_bit(env):
    a, b = make_vec_env(env, n_envs=2, seed=0), make_vec_env(env, n_envs=2, seed=99)
    a.reset()
    b.reset()
    rng = np.random.default_rng(0)
    for _ in range(7):
        a.step(np.array([a.action_space.sample() for _ in range(2)]))
    set_vec_env_states(b, get_vec_env_states(a))
    for _ in range(200):
        act = np.array([a.action_space.sample() for _ in range(2)]) if env == "hopper" else rng.integers(2, size=2)
        oa, ra, da, _ = a.step(act)
        ob, rb, db, _ = b.step(act)
        assert np.array_equal(oa, ob) and np.array_equal(ra, rb) and np.array_equal(da, db)
