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
from typing import Any, Union

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer

BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


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


def sample_rows(buffer: ReplayBuffer, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform ``(rows, env columns)`` as SB3 samples them (a full buffer skips the write head)."""
    if buffer.full:
        rows = (rng.integers(1, buffer.buffer_size, size=batch_size) + buffer.pos) % buffer.buffer_size
    else:
        rows = rng.integers(0, buffer.pos, size=batch_size)
    envs = rng.integers(0, buffer.n_envs, size=batch_size)
    return rows, envs


def lookahead(
    dones: np.ndarray, timeouts: np.ndarray, pos: int, full: bool, rows: np.ndarray, envs: np.ndarray, n: int
) -> Windows:
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


def nstep_targets(
    rewards: torch.Tensor, windows: Windows, next_values: torch.Tensor, gamma: float, terminal_value: Union[float, torch.Tensor] = 0.0
) -> torch.Tensor:
    """``y_n (B,)`` from window rewards ``(B, n)`` and ``Q'(next_obs[last])`` ``(B,)`` (module docstring).

    A window that ends on a termination bootstraps from ``terminal_value`` instead: 0, or the
    absorbing state's value when absorbing states are on.
    """
    n = rewards.shape[1]
    discounts = gamma ** torch.arange(n, dtype=torch.float64)
    ret = (rewards.double() * torch.from_numpy(windows.valid) * discounts).sum(dim=1)
    terminal = torch.from_numpy(windows.terminal)
    boot = torch.where(terminal, torch.as_tensor(terminal_value, dtype=torch.float64), next_values.double())
    return (ret + gamma ** torch.from_numpy(windows.length).double() * boot).to(rewards.dtype)


def buffer_state(buffer: ReplayBuffer) -> dict[str, Any]:
    """The filled part of the buffer plus its cursor, for a checkpoint."""
    upto = buffer.buffer_size if buffer.full else buffer.pos
    return {"pos": buffer.pos, "full": buffer.full, **{f: getattr(buffer, f)[:upto].copy() for f in BUFFER_FIELDS}}


def load_buffer_state(buffer: ReplayBuffer, state: dict[str, Any]) -> None:
    for f in BUFFER_FIELDS:
        arr = state[f]
        getattr(buffer, f)[: len(arr)] = arr
    buffer.pos, buffer.full = int(state["pos"]), bool(state["full"])
