"""CompactReplayBuffer: observations once, float32, and exactly what SB3's layout gives SAM."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from ail.algos.sam.replay import CompactReplayBuffer, column_state, load_column_state

OBS = spaces.Box(-np.inf, np.inf, (5,), np.float64)
ACT = spaces.Box(-1, 1, (2,), np.float32)


def _stream(buffers: list[ReplayBuffer], steps: int, n_envs: int, seed: int = 0) -> None:
    """Feed the same episodes (ends by termination and by truncation) to every buffer, the way SB3's
    off-policy collection does: at an episode end, next_obs is the true final observation and the
    next row starts from a reset observation."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n_envs, 5))
    for _ in range(steps):
        nxt = rng.normal(size=(n_envs, 5))
        done = rng.random(n_envs) < 0.15
        trunc = done & (rng.random(n_envs) < 0.5)
        infos = [{"TimeLimit.truncated": bool(t)} for t in trunc]
        final = nxt.copy()
        reset = rng.normal(size=(n_envs, 5))
        action, reward = rng.uniform(-1, 1, size=(n_envs, 2)).astype(np.float32), rng.normal(size=n_envs)
        for b in buffers:
            b.add(obs, final, action, reward, done, infos)
        obs = np.where(done[:, None], reset, nxt)


@pytest.mark.parametrize("steps", [7, 25, 68])  # partly filled, exactly full (25 rows x 2 envs), wrapped around
def test_next_observations_match_sb3_for_every_row(steps: int):
    sb3 = ReplayBuffer(50, OBS, ACT, device="cpu", n_envs=2)
    compact = CompactReplayBuffer(50, OBS, ACT, device="cpu", n_envs=2)
    _stream([sb3, compact], steps, 2)
    upto = sb3.buffer_size if sb3.full else sb3.pos  # SB3 keeps buffer_size // n_envs rows
    rows, envs = np.meshgrid(np.arange(upto), np.arange(2), indexing="ij")
    rows, envs = rows.ravel(), envs.ravel()
    assert np.array_equal(compact.next_obs_rows(rows, envs), sb3.next_observations[rows, envs].astype(np.float32))
    assert np.array_equal(compact.observations[:upto], sb3.observations[:upto].astype(np.float32))
    for f in ("dones", "timeouts", "rewards"):
        assert np.array_equal(getattr(compact, f), getattr(sb3, f))
    # Episode ends still held: one per (row, env) with done, none left over from overwritten rows.
    assert set(compact.finals) == {(int(r), int(e)) for r, e in zip(*np.nonzero(compact.dones[:upto] > 0))}


def test_memory_is_a_quarter_of_sb3s_for_float64_observations():
    big = spaces.Box(-np.inf, np.inf, (348,), np.float64)  # Humanoid-v5
    sb3 = ReplayBuffer(1000, big, ACT, device="cpu")
    compact = CompactReplayBuffer(1000, big, ACT, device="cpu")
    assert compact.observations.nbytes * 4 == sb3.observations.nbytes + sb3.next_observations.nbytes


@pytest.mark.parametrize("steps", [20, 68])  # partly filled, wrapped around
def test_each_column_checkpoints_and_restores_on_its_own(steps: int):
    # A stacked SAM learner checkpoints each seed's replay column apart (column_state) and restores it
    # into a buffer whose other columns hold other seeds' data.
    compact = CompactReplayBuffer(50, OBS, ACT, device="cpu", n_envs=2)
    _stream([compact], steps, 2)
    rows = np.arange(compact.buffer_size if compact.full else compact.pos)
    fresh = CompactReplayBuffer(50, OBS, ACT, device="cpu", n_envs=2)
    _stream([fresh], steps, 2, seed=5)  # column 1 keeps this other stream
    load_column_state(fresh, 0, column_state(compact, 0))
    assert (fresh.pos, fresh.full) == (compact.pos, compact.full)
    zeros, ones = np.zeros_like(rows), np.ones_like(rows)
    assert np.array_equal(fresh.next_obs_rows(rows, zeros), compact.next_obs_rows(rows, zeros))
    assert not np.array_equal(fresh.next_obs_rows(rows, ones), compact.next_obs_rows(rows, ones))
    for f in ("observations", "actions", "rewards", "dones", "timeouts"):
        assert np.array_equal(getattr(fresh, f)[rows, 0], getattr(compact, f)[rows, 0]), f
    load_column_state(fresh, 1, column_state(compact, 1))
    _stream([compact, fresh], 20, 2, seed=1)  # both go on identically after the restore
    rows = np.arange(fresh.buffer_size if fresh.full else fresh.pos)
    for env in (0, 1):
        envs = np.full_like(rows, env)
        assert np.array_equal(fresh.next_obs_rows(rows, envs), compact.next_obs_rows(rows, envs))


def test_sb3_sample_works_on_the_compact_buffer():
    compact = CompactReplayBuffer(50, OBS, ACT, device="cpu", n_envs=2)
    _stream([compact], 30, 2)
    batch = compact.sample(16)
    assert batch.observations.shape == (16, 5) and batch.next_observations.shape == (16, 5)
