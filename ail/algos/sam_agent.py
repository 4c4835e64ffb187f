"""SAM's learner: SB3 TD3 (DDPG with ``n_critics=1``, no target smoothing) with SAM's train step.

One training step (paper Algorithm 1; ``train(t_max)`` runs ``t_max`` of them):

1. ``d_steps`` discriminator updates: a uniform replay batch (policy, label 0) against as many
   expert pairs (label 1, one-sided smoothing), gradient penalty (:mod:`ail.discriminator`).
2. Every ``adapt_every`` training steps: adapt the parameter-noise scale (:mod:`ail.exploration`).
3. ``g_steps`` actor-critic updates, each followed by a Polyak update of both targets:

   * rewards ``r = reward(D(s, a))`` recomputed with the current D for every sampled step
     (``recompute_rewards``; off: the reward stored at collection time, as sam-tf did);
   * ``y_1 = r_0 + gamma (1 - term_0) Q'(s_1, mu'(s_1))`` and the n-step ``y_n``
     (:mod:`ail.replay`) for the *same* sampled rows; ``Q'`` is the min over target heads;
   * with absorbing states a termination bootstraps from the absorbing state's value
     ``r_abs / (1 - gamma)`` (it loops on itself with D's reward ``r_abs``) instead of 0;
   * Pop-Art (:mod:`ail.popart`) folds ``y_1`` and ``y_n`` into its statistics, rescales the
     online and target heads, and the loss compares normalised prediction and target;
   * ``L_critic = l(Q_n, y1_n) + l(Q_n, yn_n) + nu/2 * sum ||W_hidden||^2`` (l: Huber or MSE);
   * ``L_actor = -q_scale * mean Q(s, mu(s)) - d_scale * mean r(s, mu(s))`` (paper eq. 10-13:
     the reward-gradient term is off by default).

Gradients are averaged across workers (:mod:`ail.distributed`) and clipped before each step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import TD3

from ail import distributed
from ail.discriminator import Discriminator, reward_from_logits
from ail.errors import TrainingError
from ail.exploration import AdaptiveParamNoise
from ail.popart import PopArt
from ail.replay import lookahead, nstep_targets, sample_rows


@dataclass
class SAMSettings:
    nstep: int = 10
    one_step_loss: bool = True
    critic_loss: str = "huber"  # huber | mse
    weight_decay: float = 1e-3
    popart: bool = True
    d_steps: int = 1
    g_steps: int = 1
    d_batch_size: int = 256
    grad_penalty: float = 10.0
    label_smoothing: Any = (0.7, 1.2)
    entropy_weight: float = 0.0
    reward: str = "minimax"
    recompute_rewards: bool = True
    absorbing: bool = False
    q_scale: float = 1.0
    d_scale: float = 0.0
    grad_clip: Optional[float] = 5.0
    adapt_every: int = 20


class SAM(TD3):
    """TD3 subclass; attach the adversarial parts with :meth:`setup_imitation` before training."""

    def setup_imitation(
        self,
        disc: Discriminator,
        d_optimizer: torch.optim.Optimizer,
        expert: dict[str, np.ndarray],
        settings: SAMSettings,
        param_noise: Optional[AdaptiveParamNoise],
        seed: int,
    ) -> None:
        """``expert``: ``obs (N, obs_dim)``, ``actions (N, act_dim)`` raw env actions, ``terminated (N,)``."""
        self.disc, self.d_opt, self.s = disc, d_optimizer, settings
        self.expert_obs = torch.as_tensor(expert["obs"], dtype=torch.float32)
        self.expert_act = torch.as_tensor(expert["actions"], dtype=torch.float32)
        self.expert_term = torch.as_tensor(expert["terminated"], dtype=torch.bool)
        self.param_noise = param_noise
        self.popart = PopArt() if settings.popart else None
        self.rng = np.random.default_rng(seed + 7919 * distributed.rank())
        self.gen = torch.Generator().manual_seed(seed + 104729 * distributed.rank())
        self.train_steps = 0
        self.logs: dict[str, float] = {}
        # Zero-copy torch views of SB3's replay arrays: sampling indexes them without numpy round trips.
        self._t = {f: torch.from_numpy(getattr(self.replay_buffer, f)) for f in
                   ("observations", "actions", "rewards", "dones", "timeouts")}
        self.refresh_obs_stats()
        self._targets = list(self.critic_target.parameters()) + list(self.actor_target.parameters())
        self._sources = list(self.critic.parameters()) + list(self.actor.parameters())
        low, high = self.action_space.low, self.action_space.high
        self._act_low = torch.as_tensor(low, dtype=torch.float32)
        self._act_span = torch.as_tensor(high - low, dtype=torch.float32)

    # ----- discriminator inputs ----------------------------------------------------------------
    def _env_action(self, scaled: torch.Tensor) -> torch.Tensor:
        """Actor/buffer actions in [-1, 1] -> the env's units, which the expert's actions are in."""
        return self._act_low + (scaled + 1.0) * 0.5 * self._act_span

    def _d_obs(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.s.absorbing:
            return obs
        return torch.cat([obs, torch.zeros(len(obs), 1)], dim=1)

    def _absorbing_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        obs = torch.zeros(n, self.disc.obs_dim)
        obs[:, -1] = 1.0
        return obs, torch.zeros(n, self.expert_act.shape[1])

    def d_reward(self, obs: torch.Tensor, env_actions: torch.Tensor) -> torch.Tensor:
        """Reward ``(B,)`` of raw obs and env-unit actions under the current D."""
        r = reward_from_logits(self.disc.logits(self._d_obs(obs), env_actions), self.s.reward)
        if not torch.isfinite(r).all():
            raise TrainingError("the discriminator returned NaN/inf rewards")
        return r

    def absorbing_value(self) -> torch.Tensor:
        """Value of the absorbing state: it loops forever on D's reward for it."""
        obs, act = self._absorbing_pairs(1)
        with torch.no_grad():
            r = reward_from_logits(self.disc.logits(obs, act), self.s.reward)
        return r[0] / (1.0 - self.gamma)

    # ----- raw replay access -------------------------------------------------------------------
    def _rows(self, field: str, rows: np.ndarray, envs: np.ndarray) -> torch.Tensor:
        if field == "next_observations":  # stored once (CompactReplayBuffer): looked up by index
            return torch.from_numpy(self.replay_buffer.next_obs_rows(rows, envs))
        return self._t[field][torch.from_numpy(rows), torch.from_numpy(envs)].float()

    def refresh_obs_stats(self) -> None:
        """Cache the actor/critic observation statistics as tensors (after every update of them)."""
        venv = self._vec_normalize_env
        if venv is None:
            self._obs_mean = None
            return
        self._obs_mean = torch.as_tensor(venv.obs_rms.mean, dtype=torch.float32)
        self._obs_std = torch.as_tensor(np.sqrt(venv.obs_rms.var + venv.epsilon), dtype=torch.float32)
        self._obs_clip = float(venv.clip_obs)

    def _norm(self, obs: torch.Tensor) -> torch.Tensor:
        """VecNormalize's observation transform, in torch."""
        if self._obs_mean is None:
            return obs
        return ((obs - self._obs_mean) / self._obs_std).clamp(-self._obs_clip, self._obs_clip)

    def _step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[torch.nn.Parameter]) -> None:
        optimizer.zero_grad()
        loss.backward()
        distributed.average_gradients(params)
        if self.s.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.s.grad_clip)
        optimizer.step()

    # ----- one update of each module -----------------------------------------------------------
    def update_discriminator(self) -> dict[str, float]:
        b = self.s.d_batch_size
        rows, envs = sample_rows(self.replay_buffer, b, self.rng)
        p_obs, p_act = self._rows("observations", rows, envs), self._env_action(self._rows("actions", rows, envs))
        e_idx = torch.randint(len(self.expert_obs), (b,), generator=self.gen)
        e_obs, e_act = self.expert_obs[e_idx], self.expert_act[e_idx]
        self.disc.update_obs_stats(distributed.gather_rows(self._d_obs(torch.cat([p_obs, e_obs])).numpy()))
        p_obs, e_obs = self._d_obs(p_obs), self._d_obs(e_obs)
        if self.s.absorbing:
            # DAC: each terminal transition also leads into the absorbing state, on both sides.
            term = self.replay_buffer.dones[rows, envs].astype(bool) & ~self.replay_buffer.timeouts[rows, envs].astype(bool)
            ap = self._absorbing_pairs(int(term.sum()))
            ae = self._absorbing_pairs(int(self.expert_term[e_idx].sum()))
            p_obs, p_act = torch.cat([p_obs, ap[0]]), torch.cat([p_act, ap[1]])
            e_obs, e_act = torch.cat([e_obs, ae[0]]), torch.cat([e_act, ae[1]])
        loss, logs = self.disc.loss(e_obs, e_act, p_obs, p_act, grad_penalty=self.s.grad_penalty,
                                    label_smoothing=self.s.label_smoothing, entropy_weight=self.s.entropy_weight, generator=self.gen)
        self._step(self.d_opt, loss, list(self.disc.parameters()))
        return logs

    def adapt_param_noise(self) -> None:
        rows, envs = sample_rows(self.replay_buffer, self.batch_size, self.rng)
        obs = self._norm(self._rows("observations", rows, envs))
        self.param_noise.adapt(self.actor, obs, self.gen, reduce=distributed.mean_scalar)

    def _target_q(self, next_obs_n: torch.Tensor) -> torch.Tensor:
        """``min_k Q'_k(s', mu'(s'))`` in return units ``(B,)``."""
        next_act = self.actor_target(next_obs_n)
        if self.target_policy_noise > 0:
            noise = (torch.randn(next_act.shape, generator=self.gen) * self.target_policy_noise).clamp(-self.target_noise_clip, self.target_noise_clip)
            next_act = (next_act + noise).clamp(-1, 1)
        q = torch.cat(self.critic_target(next_obs_n, next_act), dim=1).min(dim=1).values
        return self.popart.denormalize(q) if self.popart else q

    def update_actor_critic(self) -> dict[str, float]:
        s, buf = self.s, self.replay_buffer
        rows, envs = sample_rows(buf, self.batch_size, self.rng)
        win = lookahead(buf.dones, buf.timeouts, buf.pos, buf.full, rows, envs, s.nstep)
        b, n = win.idx.shape
        with torch.no_grad():
            if s.recompute_rewards:
                flat_rows, flat_envs = win.idx.reshape(-1), np.repeat(envs, n)
                r_win = self.d_reward(self._rows("observations", flat_rows, flat_envs),
                                      self._env_action(self._rows("actions", flat_rows, flat_envs))).reshape(b, n)
            else:
                r_win = torch.as_tensor(buf.rewards[win.idx, envs[:, None]], dtype=torch.float32)
            # 1-step target on the sampled rows themselves (window slot 0).
            next1 = self._norm(self._rows("next_observations", rows, envs))
            term1 = torch.as_tensor(buf.dones[rows, envs].astype(bool) & ~buf.timeouts[rows, envs].astype(bool))
            v_abs = self.absorbing_value() if s.absorbing else torch.zeros(())
            # Both bootstraps in one pass of the target networks: s_1 (1-step) and s_L (n-step).
            next_n = self._norm(self._rows("next_observations", win.last, envs)) if n > 1 else next1[:0]
            q_next = self._target_q(torch.cat([next1, next_n]))
            y1 = r_win[:, 0] + self.gamma * torch.where(term1, v_abs, q_next[:b])
            if n > 1:
                yn = nstep_targets(r_win, win, q_next[b:], self.gamma, terminal_value=v_abs)
            else:
                yn = y1
            if self.popart:
                self.popart.update(torch.cat([y1, yn]), self.critic.heads() + self.critic_target.heads(), reduce=distributed.sum_moments)
                y1_t, yn_t = self.popart.normalize(y1), self.popart.normalize(yn)
            else:
                y1_t, yn_t = y1, yn
        obs = self._norm(self._rows("observations", rows, envs))
        act = self._rows("actions", rows, envs)
        loss_fn = F.smooth_l1_loss if s.critic_loss == "huber" else F.mse_loss
        critic_loss = torch.zeros(())
        for q in self.critic(obs, act):
            q = q.squeeze(1)
            critic_loss = critic_loss + loss_fn(q, yn_t) + (loss_fn(q, y1_t) if s.one_step_loss else 0.0)
        wd = 0.5 * sum((w**2).sum() for w in self.critic.hidden_weights())
        critic_loss = critic_loss + s.weight_decay * wd
        if not torch.isfinite(critic_loss):
            raise TrainingError("the critic loss is NaN/inf")
        self._step(self.critic.optimizer, critic_loss, list(self.critic.parameters()))
        self._n_updates += 1
        logs = {"critic_loss": float(critic_loss.detach()), "target_mean": float(yn.mean()), "reward_mean": float(r_win[:, 0].mean())}
        if self._n_updates % self.policy_delay == 0:
            mu = self.actor(obs)
            q_pi = self.critic.q1_forward(obs, mu).squeeze(1)
            q_pi = self.popart.denormalize(q_pi) if self.popart else q_pi
            actor_loss = -s.q_scale * q_pi.mean()
            if s.d_scale:
                raw_obs = self._rows("observations", rows, envs)
                actor_loss = actor_loss - s.d_scale * self.d_reward(raw_obs, self._env_action(mu)).mean()
            self._step(self.actor.optimizer, actor_loss, list(self.actor.parameters()))
            self.disc.zero_grad(set_to_none=True)  # the reward-gradient term must not leak into D's next step
            with torch.no_grad():
                torch._foreach_lerp_(self._targets, self._sources, self.tau)  # Polyak, one fused call for all tensors
            logs["actor_loss"] = float(actor_loss.detach())
        return logs

    # ----- SB3 hooks ---------------------------------------------------------------------------
    def _excluded_save_params(self) -> list[str]:
        # model.save() keeps SB3's TD3 part (policy, optimisers, settings); the adversarial state
        # lives in the run's checkpoint (ail/algos/sam.py), as does the replay buffer.
        return super()._excluded_save_params() + [
            "disc", "d_opt", "s", "expert_obs", "expert_act", "expert_term", "param_noise", "popart", "rng", "gen",
            "_t", "_targets", "_sources", "_obs_mean", "_obs_std", "_obs_clip", "_act_low", "_act_span", "logs",
        ]

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """``gradient_steps`` SAM training steps (t_max), each with d_steps D and g_steps AC updates."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for _ in range(gradient_steps):
            parts = [self.update_discriminator() for _ in range(self.s.d_steps)]
            if self.param_noise is not None and self.train_steps % self.s.adapt_every == 0:
                self.adapt_param_noise()
            parts += [self.update_actor_critic() for _ in range(self.s.g_steps)]
            self.train_steps += 1
            for part in parts:
                for k, v in part.items():
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
        self.logs = {k: sums[k] / counts[k] for k in sums}
        if self.param_noise is not None:
            self.logs.update(param_noise_sigma=self.param_noise.sigma, param_noise_distance=self.param_noise.last_distance)

    def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        if self.param_noise is None or self.num_timesteps < learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        with torch.no_grad():
            scaled = self.param_noise.perturbed(torch.as_tensor(self._last_obs, dtype=torch.float32)).numpy()
        if action_noise is not None:
            scaled = np.clip(scaled + action_noise(), -1, 1)
        return self.policy.unscale_action(scaled), scaled

    def _store_transition(self, replay_buffer: Any, buffer_action: np.ndarray, new_obs: Any, reward: np.ndarray, dones: np.ndarray, infos: list) -> None:
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        venv = self._vec_normalize_env
        if venv is not None:
            # The actor/critic statistics follow the agent's own observations (all workers' alike).
            venv.obs_rms.update(distributed.gather_rows(venv.get_original_obs().astype(np.float64)))
            self.refresh_obs_stats()
        if self.param_noise is not None and dones.any():
            self.param_noise.resample(self.actor, self.gen)
