"""n-step lookahead windows over an SB3 ``ReplayBuffer``, and its checkpoint state.

SB3's buffer stores one row per env step and env: ``observations[i, e]``, ``actions``,
``next_observations`` (the true final observation at an episode end), ``dones`` (terminated
*or* truncated) and ``timeouts`` (truncated by the time limit). A window starts at a sampled row
``i`` and runs forward over at most ``n`` rows of the same env column:

* it stops after the first row that ends an episode, so it never crosses into the next one;
* it stops at the write head, where the newest row's ``next_observations`` is still valid;
* the bootstrap mask is 0 when the window ends on a true termination (in *any* slot, the last
  included: sam-tf missed that case), and 1 on a time-limit truncation or an open window.

The n-step target for row ``i`` is then
``y_n = sum_{k<L} gamma^k r_{i+k} + gamma^L * mask * Q'(next_obs[i+L-1])`` with the window's
actual length ``L`` (1 <= L <= n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples


@dataclass
class Windows:
    """``idx (B, n)`` buffer rows (clipped to valid rows past the end), ``valid (B, n)`` bool,
    ``length (B,)`` = L, ``last (B,)`` row of the last included step, ``terminal (B,)`` bool:
    the window ended on a true termination (no bootstrap)."""

    idx: np.ndarray
    valid: np.ndarray
    length: np.ndarray
    last: np.ndarray
    terminal: np.ndarray


def uniform_rows(buffer: ReplayBuffer, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform rows of one env column, as SB3 samples them (a full buffer skips the write head)."""
    if buffer.full:
        return (rng.integers(1, buffer.buffer_size, size=batch_size) + buffer.pos) % buffer.buffer_size
    return rng.integers(0, buffer.pos, size=batch_size)


def lookahead(dones: np.ndarray, timeouts: np.ndarray, pos: int, full: bool, rows: np.ndarray, envs: np.ndarray, n: int) -> Windows:
    """Vectorised n-step windows. ``dones``/``timeouts``: ``(size, n_envs)``; ``rows``, ``envs``: ``(B,)``."""
    size = dones.shape[0]
    k = np.arange(n)
    idx = (rows[:, None] + k[None, :]) % size  # (B, n)
    # Rows written after `rows` (itself included) before reaching the write head.
    available = ((pos - rows - 1) % size) + 1 if full else pos - rows
    in_buffer = k[None, :] < available[:, None]
    ends = dones[idx, envs[:, None]].astype(bool) & in_buffer
    # A step is in the window if no earlier step of the window ended the episode.
    ended_before = np.concatenate([np.zeros((len(rows), 1), dtype=bool), np.cumsum(ends, axis=1)[:, :-1] > 0], axis=1)
    valid = in_buffer & ~ended_before
    length = valid.sum(axis=1)
    last = idx[np.arange(len(rows)), length - 1]
    last_env = envs
    terminal = dones[last, last_env].astype(bool) & ~timeouts[last, last_env].astype(bool)
    idx = np.where(valid, idx, last[:, None])  # harmless rows for the masked slots
    return Windows(idx=idx, valid=valid, length=length, last=last, terminal=terminal)


def nstep_return(
    rewards: torch.Tensor,
    valid: torch.Tensor,
    length: torch.Tensor,
    terminal: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    terminal_value: torch.Tensor,
) -> torch.Tensor:
    """``y_n`` from window rewards ``(..., n)`` and the bootstrap ``next_values (...)`` (module docstring):
    ``valid (..., n)`` bool, ``length (...)`` int, ``terminal (...)`` bool (a window that ends on a
    termination bootstraps from ``terminal_value``: 0, or the absorbing state's value); float64 sums."""
    n = rewards.shape[-1]
    discounts = gamma ** torch.arange(n, dtype=torch.float64, device=rewards.device)
    ret = (rewards.double() * valid * discounts).sum(dim=-1)
    boot = torch.where(terminal, terminal_value.double(), next_values.double())
    return (ret + gamma ** length.double() * boot).to(rewards.dtype)


class CompactReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` with each observation stored once, in float32.

    SB3 keeps ``observations`` and ``next_observations`` in the observation space's dtype (float64
    for MuJoCo): 5.6 GB for 1M Humanoid transitions. Here the next observation of row ``i`` is
    row ``i + 1``'s observation (same env column: rows are consecutive in time), except

    * at an episode end (``dones``), where it is the true final observation, kept in ``finals``
      (one entry per episode, dropped when its row is overwritten);
    * for the newest row, whose successor is not written yet: ``pending``.

    SAM reads every observation as float32, so what it samples is bit-identical to SB3's layout
    (tests/test_replay_memory.py).
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: Any,
        action_space: Any,
        device: Any = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
    ):
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"CompactReplayBuffer stores flat Box observations, got {observation_space}")
        # Let SB3 size everything but the observations (allocated lazily by numpy, so never touched).
        super().__init__(buffer_size, observation_space, action_space, device, n_envs, False, handle_timeout_termination)
        self.observations = np.zeros((self.buffer_size, self.n_envs, *self.obs_shape), dtype=np.float32)
        self.next_observations = None  # type: ignore[assignment]
        self.finals: dict[tuple[int, int], np.ndarray] = {}
        self.pending = np.zeros((self.n_envs, *self.obs_shape), dtype=np.float32)

    def add(
        self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray, reward: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]]
    ) -> None:
        for e in range(self.n_envs):
            self.finals.pop((self.pos, e), None)  # the episode end this row held is overwritten
        self.observations[self.pos] = obs
        self.actions[self.pos] = np.asarray(action).reshape((self.n_envs, self.action_dim))
        self.rewards[self.pos] = reward
        self.dones[self.pos] = done
        if self.handle_timeout_termination:
            self.timeouts[self.pos] = np.array([info.get("TimeLimit.truncated", False) for info in infos])
        next_obs = np.asarray(next_obs, dtype=np.float32)
        for e in np.nonzero(np.asarray(done))[0]:
            self.finals[(self.pos, int(e))] = next_obs[e].copy()
        self.pending = next_obs.copy()
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full, self.pos = True, 0

    def next_obs_rows(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """``(B, obs_dim)`` float32 next observations of rows ``rows`` in env columns ``envs``."""
        out = np.take(self.observations.reshape(-1, *self.obs_shape), ((rows + 1) % self.buffer_size) * self.n_envs + envs, axis=0)
        newest = rows == (self.pos - 1) % self.buffer_size
        out[newest] = self.pending[envs[newest]]
        for i in np.nonzero(self.dones[rows, envs] > 0)[0]:
            out[i] = self.finals[(int(rows[i]), int(envs[i]))]
        return out

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> ReplayBufferSamples:
        """SB3's ``sample()`` (used by plain SB3 learners given this buffer), with next observations by index."""
        envs = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        data = (
            self._normalize_obs(self.observations[batch_inds, envs, :], env),
            self.actions[batch_inds, envs, :],
            self._normalize_obs(self.next_obs_rows(batch_inds, envs), env),
            (self.dones[batch_inds, envs] * (1 - self.timeouts[batch_inds, envs])).reshape(-1, 1),
            self._normalize_reward(self.rewards[batch_inds, envs].reshape(-1, 1), env),
        )
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))


STATE_FIELDS = ("observations", "actions", "rewards", "dones", "timeouts")


def column_state(buffer: CompactReplayBuffer, k: int) -> dict[str, Any]:
    """Env column ``k`` of a compact buffer (one seed of a stacked learner), for that seed's checkpoint."""
    upto = buffer.buffer_size if buffer.full else buffer.pos
    return {
        "pos": buffer.pos,
        "full": buffer.full,
        "finals": {r: v.copy() for (r, e), v in buffer.finals.items() if e == k},
        "pending": buffer.pending[k].copy(),
        **{f: getattr(buffer, f)[:upto, k].copy() for f in STATE_FIELDS},
    }


def load_column_state(buffer: CompactReplayBuffer, k: int, state: dict[str, Any]) -> None:
    """Inverse of :func:`column_state` (every column of a stacked learner is at the same position)."""
    for f in STATE_FIELDS:
        arr = state[f]
        getattr(buffer, f)[: len(arr), k] = arr
    buffer.pos, buffer.full = int(state["pos"]), bool(state["full"])
    buffer.finals = {key: v for key, v in buffer.finals.items() if key[1] != k}
    buffer.finals.update({(int(r), k): v.copy() for r, v in state["finals"].items()})
    buffer.pending[k] = state["pending"]
