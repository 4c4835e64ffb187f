"""SAM's batches, per seed: what each update of :mod:`ail.algos.sam.update` is given.

Seed ``k``'s rows come from replay column ``k`` and its random draws (rows, expert pairs, label
smoothing, penalty interpolation, target noise, sac's action noise) from seed ``k``'s own
generators, so a seed trained with others draws what it draws alone. The field names and shapes
are :class:`ail.algos.sam.update.DBatch` and :class:`ail.algos.sam.update.ACBatch`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ail.algos.sam.config import SAMConfig
from ail.algos.sam.replay import CompactReplayBuffer, lookahead, uniform_rows
from ail.algos.sam.update import ACBatch, DBatch
from ail.demos import Demos
from ail.discriminator import absorbing_pairs, sample_loss_noise


class Batches:
    """The discriminator's and the actor-critic's batches of K seeds.

    :param algo: SAM's validated settings.
    :param replay: the replay, one column per seed.
    :param rngs: each seed's numpy generator (replay rows); shared with the learner, which checkpoints it.
    :param gens: each seed's torch generator (every other draw); shared likewise.
    :param demos: the demonstration pairs (env-unit actions).
    :param low: ``(act_dim,)`` the env's action bounds, to scale demonstration actions into [-1, 1].
    :param recompute_rewards: rewards from the current D at sampling time (else the stored ones).
    """

    def __init__(
        self,
        algo: SAMConfig,
        replay: CompactReplayBuffer,
        rngs: list[np.random.Generator],
        gens: list[torch.Generator],
        demos: Demos,
        low: np.ndarray,
        high: np.ndarray,
        recompute_rewards: bool,
    ):
        self.algo, self.replay, self.rngs, self.gens = algo, replay, rngs, gens
        self.k, self.act_dim = len(gens), int(low.shape[0])
        self.low, self.high, self.recompute_rewards = low, high, recompute_rewards
        n = len(demos.obs)
        self.expert_obs = torch.as_tensor(demos.obs, dtype=torch.float32).reshape(n, -1)
        self.expert_act = torch.as_tensor(demos.actions, dtype=torch.float32).reshape(n, -1)
        self.expert_term = torch.as_tensor(demos.terminated, dtype=torch.bool)
        self.expert_next = torch.as_tensor(demos.next_obs, dtype=torch.float32).reshape(n, -1)
        self.expert_rew = torch.as_tensor(demos.rewards, dtype=torch.float32)
        self.expert_rows = round(algo.batch_size * algo.expert_fraction)  # of each actor-critic batch
        self.obs_dim = int(self.expert_obs.shape[1])

    def d_obs(self, obs: np.ndarray) -> np.ndarray:
        """Observations as D sees them: with absorbing states, an indicator column of 0 appended."""
        if not self.algo.absorbing:
            return obs
        return np.concatenate([obs, np.zeros((*obs.shape[:-1], 1), dtype=obs.dtype)], axis=-1)

    def flat(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``(K, ...)`` of each seed's own column as flat rows of the replay: row r of seed k is
        flat row r * K + k (``np.take`` of flat rows: cheaper than a 2-d fancy index)."""
        return rows * self.k + np.arange(self.k).reshape(-1, *([1] * (rows.ndim - 1)))

    def column(self, field: str, flat: np.ndarray) -> np.ndarray:
        """``field`` at flat rows ``flat`` (:meth:`flat`)."""
        data = getattr(self.replay, field)
        return np.take(data.reshape(-1, *data.shape[2:]), flat, axis=0)

    def terminated(self, flat: np.ndarray) -> np.ndarray:
        """Whether the rows ended on a true termination (done, not truncated by the time limit)."""
        return self.column("dones", flat).astype(bool) & ~self.column("timeouts", flat).astype(bool)

    def rows(self, n: Optional[int] = None) -> np.ndarray:
        """``(K, n)`` replay rows of each seed's column (``n``: the actor-critic batch)."""
        return np.stack([uniform_rows(self.replay, n or self.algo.batch_size, rng) for rng in self.rngs])

    def d(self) -> DBatch:
        """Policy pairs from each seed's replay against as many expert pairs, and their random draws."""
        a, k = self.algo, self.k
        b = a.discriminator.batch_size
        flat = self.flat(np.stack([uniform_rows(self.replay, b, rng) for rng in self.rngs]))
        p_obs, p_act = self.column("observations", flat), self.column("actions", flat)
        idx = torch.stack([torch.randint(len(self.expert_obs), (b,), generator=g) for g in self.gens])
        e_obs, e_act = self.expert_obs[idx], self.expert_act[idx]
        out = {"d_stats_obs": torch.cat([torch.as_tensor(p_obs), e_obs], dim=1)}
        n_e = 2 * b if a.absorbing else b  # with absorbing states, B masked absorbing pairs follow
        draws = [sample_loss_noise(n_e, b, a.discriminator.label_smoothing, a.discriminator.grad_penalty, g) for g in self.gens]
        y_e, eps = (torch.stack(d) for d in zip(*draws))
        p_obs_t, e_obs_t = torch.as_tensor(self.d_obs(p_obs)), torch.as_tensor(self.d_obs(e_obs.numpy()))
        p_act_t, ones = torch.as_tensor(p_act), torch.ones(k, b)
        w_p = w_e = ones
        if a.absorbing:
            p_obs_t, p_act_t, w_p = absorbing_pairs(p_obs_t, p_act_t, torch.as_tensor(self.terminated(flat)))
            e_obs_t, e_act, w_e = absorbing_pairs(e_obs_t, e_act, self.expert_term[idx])
        out.update(p_obs=p_obs_t, p_act=p_act_t, e_obs=e_obs_t, e_act=e_act, y_e=y_e, eps=eps, w_p=w_p, w_e=w_e)
        return out

    def ac(self) -> ACBatch:
        """Each seed's sampled rows, their n-step windows and the next observations both bootstraps need."""
        a, k, buf = self.algo, self.k, self.replay
        n, m = a.ac.nstep, self.expert_rows
        b = a.batch_size - m
        rows = self.rows(b)
        envs = np.broadcast_to(np.arange(k)[:, None], rows.shape)
        win = lookahead(buf.dones, buf.timeouts, buf.pos, buf.full, rows.reshape(-1), envs.reshape(-1), n)
        win_idx = win.idx.reshape(k, b, n)
        next1 = buf.next_obs_rows(rows.reshape(-1), envs.reshape(-1)).reshape(k, b, -1)
        next_all = next1 if n == 1 else np.concatenate([next1, buf.next_obs_rows(win.last, envs.reshape(-1)).reshape(k, b, -1)], axis=1)
        flat, win_flat = self.flat(rows), self.flat(win_idx)
        out = {
            "obs": torch.as_tensor(self.column("observations", flat)),
            "act": torch.as_tensor(self.column("actions", flat)),
            "next_obs": torch.as_tensor(next_all),
            "term1": torch.as_tensor(self.terminated(flat)),
            "valid": torch.as_tensor(win.valid.reshape(k, b, n)),
            "length": torch.as_tensor(win.length.reshape(k, b)),
            "terminal": torch.as_tensor(win.terminal.reshape(k, b)),
        }
        if self.recompute_rewards:
            out["win_obs"] = torch.as_tensor(self.d_obs(self.column("observations", win_flat).reshape(k, b * n, -1)))
            out["win_act"] = torch.as_tensor(self.column("actions", win_flat).reshape(k, b * n, -1))
        else:
            out["r_stored"] = torch.as_tensor(self.column("rewards", win_flat).astype(np.float32))
        if m:
            out = self._with_expert_rows(out, m, n)
        if a.stochastic:
            out["next_noise"] = torch.stack([torch.randn(next_all.shape[1], self.act_dim, generator=g) for g in self.gens])
            out["noise"] = torch.stack([torch.randn(a.batch_size, self.act_dim, generator=g) for g in self.gens])
        elif a.ac.critic.target_noise > 0:
            sigma, clip = a.ac.critic.target_noise, a.ac.critic.target_noise_clip
            shape = (next_all.shape[1], self.act_dim)
            out["target_noise"] = torch.stack([(torch.randn(shape, generator=g) * sigma).clamp(-clip, clip) for g in self.gens])
        return out

    def _with_expert_rows(self, out: dict[str, torch.Tensor], m: int, n: int) -> dict[str, torch.Tensor]:
        """``out``'s replay rows followed by ``m`` demonstration transitions ``(s, a, s')`` per seed
        (``algo.expert_fraction``), drawn from each seed's generator. A demonstration pair has no
        window of its own (the set keeps every k-th pair): its window is its one step, rewarded by the
        current D like any other (or the env's, with ``algo.reward=env``)."""
        k = self.k
        idx = torch.stack([torch.randint(len(self.expert_obs), (m,), generator=g) for g in self.gens])
        obs, next_obs, term = self.expert_obs[idx], self.expert_next[idx], self.expert_term[idx]
        scaled = (2.0 * (self.expert_act[idx] - torch.as_tensor(self.low)) / torch.as_tensor(self.high - self.low) - 1.0).clamp(-1.0, 1.0)
        first = torch.zeros(k, m, n, dtype=torch.bool)
        first[..., 0] = True

        def window(x: torch.Tensor) -> torch.Tensor:  # (K, m, d) -> (K, m, n, d): the pair, then masked zeros
            return torch.cat([x.unsqueeze(2), x.new_zeros(k, m, n - 1, x.shape[-1])], dim=2)

        def rows(replay: torch.Tensor, expert: torch.Tensor) -> torch.Tensor:
            return torch.cat([replay, expert.to(replay.dtype)], dim=1)

        b = out["obs"].shape[1]
        nxt = out["next_obs"]
        mixed = {
            "obs": rows(out["obs"], obs),
            "act": rows(out["act"], scaled),
            # s_1 of every row, then (n > 1) each window's last next state: a demonstration pair's is its s'.
            "next_obs": rows(nxt, next_obs) if n == 1 else torch.cat([rows(nxt[:, :b], next_obs), rows(nxt[:, b:], next_obs)], dim=1),
            "term1": rows(out["term1"], term),
            "valid": rows(out["valid"], first),
            "length": rows(out["length"], torch.ones(k, m, dtype=out["length"].dtype)),
            "terminal": rows(out["terminal"], term),
        }
        if "win_obs" in out:
            d_obs = torch.as_tensor(self.d_obs(obs.numpy()))
            mixed["win_obs"] = rows(out["win_obs"].reshape(k, b, n, -1), window(d_obs)).reshape(k, (b + m) * n, -1)
            mixed["win_act"] = rows(out["win_act"].reshape(k, b, n, -1), window(scaled)).reshape(k, (b + m) * n, -1)
        else:  # algo.reward=env: the demonstrations' own rewards
            mixed["r_stored"] = rows(out["r_stored"], window(self.expert_rew[idx].unsqueeze(-1)).squeeze(-1))
        return mixed
