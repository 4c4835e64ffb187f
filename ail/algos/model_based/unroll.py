"""What MGAIL and Dyna-AIL share: the differentiable unrolls, D and forward-model steps, the replay.

The policy's cost at a pair is D's non-saturating generator loss ``c(s, a) = -log D(s, a) =
softplus(-f(s, a))`` (expert = 1), and an unroll's loss is ``sum_t gamma^k_t c(s_t, a_t)``
averaged over its parallel chains (``k_t``: steps since the chain's start). Because the loss is
differentiated along the path, not through returns, its constant sign gives no survival or
suicide bias: termination is not differentiable.

**Real unroll** (MGAIL eq. 10-12): ``n_envs`` real envs step in lock-step with actions
``a_t = pi(s_t) + noise`` (reparameterised) and the next state is
``s_{t+1} = f(s_t, a_t) + stopgrad(s_env - f(s_t, a_t))``: the value is the real state, the
gradient that of the forward model, so ``dc/dtheta`` reaches earlier actions through
``grad_s D`` and ``grad_s f``. A chain whose episode ends restarts, detached, at the reset state.
Every env step counts towards ``env_steps`` and, with ``store_unroll``, enters the replay.
The unroll stops early (logged) once the summed transition error ``sum_t mean|s_env - f|``
exceeds ``forward_model.max_error`` or the prediction is not finite (mgail's
``total_trans_err_allowed``).

**Imagined unroll** (Dyna-AIL eq. 8): start states from the replay, ``s_{t+1} = f(s_t, a_t)``
with no environment at all; a chain whose prediction is not finite or leaves
``|s_n| < forward_model.plan_bound`` (normalised units) stops contributing from that step on.
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.buffers import ReplayBuffer

from ail.algos.model_based.diff_policy import DiffPolicy
from ail.algos.model_based.forward_model import ForwardModel
from ail.discriminator import Discriminator
from ail.envs import env_id
from ail.errors import ConfigError


def episode_limit(env_name: str) -> Optional[int]:
    """The registered time limit of a task (no env is built)."""
    return gym.spec(env_id(env_name)).max_episode_steps


def check_horizon(value: Any, key: str, limit: Optional[int]) -> None:
    """An unroll or planning horizon must be a positive integer no longer than an episode."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{key}={value} is invalid; accepted: a positive integer (steps)")
    if limit is not None and value > limit:
        raise ConfigError(f"{key}={value} is longer than this task's episodes ({limit} steps); accepted: 1..{limit}")


def encode_actions(actions: torch.Tensor, space: gym.Space) -> torch.Tensor:
    """Replay/demo actions in D's and the forward model's encoding ``(B, act_dim)``."""
    if isinstance(space, gym.spaces.Discrete):
        return F.one_hot(actions.reshape(-1).long(), int(space.n)).float()
    return actions.float().reshape(len(actions), -1)


def policy_cost(disc: Discriminator, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """``-log D(s, a)`` per pair ``(B,)``, differentiable in ``obs`` and ``act`` (D-encoded)."""
    return F.softplus(-disc.logits(obs, act, encoded=True))


class Unrolled:
    """The pairs of one unroll with their discount weights; :meth:`loss` is evaluated with D as it is then."""

    def __init__(self) -> None:
        self.obs: list[torch.Tensor] = []
        self.act: list[torch.Tensor] = []
        self.weight: list[torch.Tensor] = []
        self.overshoot: list[torch.Tensor] = []
        self.stopped_early = False

    def add(self, obs: torch.Tensor, act: torch.Tensor, weight: torch.Tensor, overshoot: Optional[torch.Tensor] = None) -> None:
        self.obs.append(obs)
        self.act.append(act)
        self.weight.append(weight)
        self.overshoot.append(overshoot if overshoot is not None else torch.zeros(len(obs)))

    def loss(self, disc: Discriminator, bound_penalty: float = 0.0) -> torch.Tensor:
        """``mean_chains sum_t w_t (c(s_t, a_t) + bound_penalty * overshoot_t)``: one D pass over all steps."""
        n = len(self.obs[0])
        cost = policy_cost(disc, torch.cat(self.obs), torch.cat(self.act))
        if bound_penalty > 0:
            cost = cost + bound_penalty * torch.cat(self.overshoot)
        return (cost * torch.cat(self.weight)).sum() / n


class RealUnroller:
    """Steps ``venv`` with the reparameterised policy, keeping the MGAIL state re-parameterisation."""

    def __init__(
        self, venv: Any, policy: DiffPolicy, fm: ForwardModel, replay: ReplayBuffer, gamma: float, max_error: float, generator: torch.Generator
    ):
        self.venv, self.policy, self.fm, self.replay = venv, policy, fm, replay
        self.gamma, self.max_error, self.g = float(gamma), float(max_error), generator
        self.discrete = isinstance(venv.action_space, gym.spaces.Discrete)
        self.last_obs: np.ndarray = venv.reset()
        self.env_steps = 0
        self.stopped_unrolls = 0

    def _step(self, actions: np.ndarray, obs: np.ndarray, store: bool, venv: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        venv = self.venv if venv is None else venv
        next_obs, rewards, dones, infos = venv.step(actions)
        real_next = next_obs.copy()
        for i, done in enumerate(dones):
            if done:
                real_next[i] = infos[i]["terminal_observation"]
        if store:
            self.replay.add(obs, real_next, actions, rewards, dones, infos)
        self.env_steps += venv.num_envs
        if venv is self.venv:
            self.last_obs = next_obs
        return next_obs, real_next, dones

    @torch.no_grad()
    def collect(self, steps: int, store: bool = True, start: Optional[tuple[Any, np.ndarray]] = None) -> None:
        """``steps`` noisy steps in every env (no gradients), e.g. to fill the replay; ``start``:
        (another VecEnv of as many envs, its current observations) to collect there instead of
        continuing the live episodes (mgail's collections from expert states)."""
        venv, obs = start if start is not None else (self.venv, self.last_obs)
        for _ in range(steps):
            act, _ = self.policy.rsample(torch.as_tensor(obs, dtype=torch.float32), self.g)
            obs, _, _ = self._step(self.policy.to_env(act, self.discrete), obs, store, venv)

    def unroll(self, steps: int, store: bool) -> Unrolled:
        """``steps`` real steps with the differentiable chain; returns the pairs to score with D."""
        out = Unrolled()
        s = torch.as_tensor(self.last_obs, dtype=torch.float32)
        age = torch.zeros(len(s))  # discount restarts at each unroll, as in mgail
        trans_err = 0.0
        for _ in range(steps):
            obs_np = self.last_obs
            a, over = self.policy.rsample(s, self.g)
            out.add(s, a, self.gamma**age, over)
            next_obs, real_next, dones = self._step(self.policy.to_env(a, self.discrete), obs_np, store)
            pred = self.fm.predict(s, a)
            real_t = torch.as_tensor(real_next, dtype=torch.float32)
            err = float((pred.detach() - real_t).abs().mean())
            if not np.isfinite(err):
                out.stopped_early = True
                break
            trans_err += err
            s_next = pred + (real_t - pred).detach()
            done_t = torch.as_tensor(dones, dtype=torch.bool)
            s = torch.where(done_t[:, None], torch.as_tensor(next_obs, dtype=torch.float32), s_next)
            age = torch.where(done_t, torch.zeros_like(age), age + 1)
            if trans_err > self.max_error:
                out.stopped_early = True
                break
        self.stopped_unrolls += int(out.stopped_early)
        return out


def reset_to_states(venv: Any, qpos: np.ndarray, qvel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put every env of ``venv`` (a DummyVecEnv of MuJoCo envs) into a state drawn from
    ``qpos (N, nq)``/``qvel (N, nv)``; returns the observations there ``(n_envs, obs_dim)``.

    Each env is reset with a seed from ``rng`` first (episode counters restart, and the resets
    that follow inside the collection are reproducible), then ``set_state`` overwrites the
    whole simulator state.
    """
    obs = []
    for env in venv.envs:
        j = int(rng.integers(len(qpos)))
        env.reset(seed=int(rng.integers(2**31 - 1)))
        env.unwrapped.set_state(qpos[j], qvel[j])
        obs.append(env.unwrapped._get_obs())
    return np.asarray(obs, dtype=venv.observation_space.dtype)


def imagined_unroll(
    policy: DiffPolicy, fm: ForwardModel, start_obs: torch.Tensor, steps: int, gamma: float, bound: float, generator: torch.Generator
) -> tuple[Unrolled, float]:
    """Rollouts of ``steps`` in the forward model alone from ``start_obs (B, obs_dim)``.

    Returns the pairs (weights zero for chains that diverged) and the fraction of chain-steps kept.
    """
    out = Unrolled()
    s = start_obs.float()
    alive = torch.ones(len(s))
    kept = 0.0
    for t in range(steps):
        a, over = policy.rsample(s, generator)
        out.add(s, a, alive * gamma**t, over)
        kept += float(alive.mean())
        nxt = fm.predict(s, a)
        ok = torch.isfinite(nxt).all(1) & (fm.normalize(nxt).abs() < bound).all(1)
        alive = alive * ok.float()
        # A diverged chain keeps a finite placeholder state so D's pass stays finite; its weight is 0.
        s = torch.where(ok[:, None], nxt, s.detach())
    return out, kept / steps


def policy_step(policy: DiffPolicy, opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float) -> bool:
    """Backprop ``loss``, clip each gradient element to ``[-clip, clip]`` (mgail), step; False if not finite."""
    opt.zero_grad()
    loss.backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    if not grads or not all(torch.isfinite(g).all() for g in grads):
        opt.zero_grad()
        return False
    for g in grads:
        g.clamp_(-clip, clip)
    opt.step()
    return True


def replay_sequences(replay: ReplayBuffer, horizon: int, count: int, rng: np.random.Generator) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Up to ``count`` stored real sequences of ``horizon`` steps within one episode:
    ``obs (B, horizon+1, obs_dim)``, ``actions (B, horizon, act_dim_stored)``; None if none exist."""
    size = replay.buffer_size if replay.full else replay.pos
    if size <= horizon:
        return None
    starts = []
    for _ in range(count * 10):
        t = int(rng.integers(0, size - horizon))
        e = int(rng.integers(0, replay.n_envs))
        rows = (np.arange(t, t + horizon) + (replay.pos if replay.full else 0)) % replay.buffer_size
        if replay.dones[rows[:-1], e].any():
            continue
        starts.append((rows, e))
        if len(starts) == count:
            break
    if not starts:
        return None
    obs = np.stack([np.concatenate([replay.observations[r, e], replay.next_observations[r[-1:], e]]) for r, e in starts])
    acts = np.stack([replay.actions[r, e] for r, e in starts])
    return obs, acts
