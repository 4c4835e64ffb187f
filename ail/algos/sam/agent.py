"""SAM's learner: SB3 TD3 (DDPG with ``n_critics=1``, no target smoothing) with SAM's train step.

One training step (paper Algorithm 1; ``train(t_max)`` runs ``t_max`` of them):

1. ``d_steps`` discriminator updates: a uniform replay batch (policy, label 0) against as many
   expert pairs (label 1, one-sided smoothing), gradient penalty (:mod:`ail.discriminator`).
2. Every ``adapt_every`` training steps: adapt the parameter-noise scale (:mod:`ail.algos.sam.exploration`).
3. ``g_steps`` actor-critic updates, each followed by a Polyak update of both targets:

   * rewards ``r = reward(D(s, a))`` recomputed with the current D for every sampled step
     (``recompute_rewards``; off: the reward stored at collection time, as sam-tf did);
   * ``y_1 = r_0 + gamma (1 - term_0) Q'(s_1, mu'(s_1))`` and the n-step ``y_n``
     (:mod:`ail.algos.sam.replay`) for the *same* sampled rows; ``Q'`` is the min over target heads;
   * with absorbing states a termination bootstraps from the absorbing state's value
     ``r_abs / (1 - gamma)`` (it loops on itself with D's reward ``r_abs``) instead of 0;
   * Pop-Art (:mod:`ail.algos.sam.popart`) folds ``y_1`` and ``y_n`` into its statistics, rescales the
     online and target heads, and the loss compares normalised prediction and target;
   * ``L_critic = l(Q_n, y1_n) + l(Q_n, yn_n) + nu/2 * sum ||W_hidden||^2`` (l: Huber or MSE);
   * ``L_actor = -q_scale * mean Q(s, mu(s)) - d_scale * mean r(s, mu(s))`` (paper eq. 10-13:
     the reward-gradient term is off by default).

Gradients are averaged across workers (:mod:`ail.distributed`) and clipped before each step.
With ``compile`` on, the gradients and targets come from :mod:`ail.algos.sam.compiled` (the same
math as compiled graphs); the sampling, Pop-Art statistics and optimiser steps stay here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import TD3

from ail import distributed
from ail.algos.sam.compiled import CompiledSteps, set_grads
from ail.algos.sam.exploration import AdaptiveParamNoise
from ail.algos.sam.popart import PopArt
from ail.algos.sam.replay import lookahead, nstep_targets, sample_rows
from ail.discriminator import LOSS_LOGS, Discriminator, reward_from_logits, sample_loss_noise
from ail.errors import TrainingError
from ail.seeding import derive_seed


@dataclass
class SAMSettings:
    nstep: int
    one_step_loss: bool
    critic_loss: str  # huber | mse
    weight_decay: float
    popart: bool
    popart_min_var: float
    d_steps: int
    g_steps: int
    d_batch_size: int
    grad_penalty: float
    label_smoothing: Any
    entropy_weight: float
    reward: str
    recompute_rewards: bool
    absorbing: bool
    q_scale: float
    d_scale: float
    grad_clip: Optional[float]
    adapt_every: int
    compile: bool  # torch.compile the update (ail/algos/sam/compiled.py)
    stacked: bool  # one of K seeds whose updates are stacked: the functional update even uncompiled


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
        """``expert``: ``obs (N, obs_dim)``, ``actions (N, act_dim)`` raw env actions, ``terminated (N,)``.

        On a GPU (``device``): the networks, optimisers and Pop-Art statistics live there; replay,
        expert pairs and every random draw stay on the CPU (the draws in the CPU run's order) and
        each batch crosses once, after it is gathered.
        """
        self.disc, self.d_opt, self.s = disc, d_optimizer, settings
        self.expert_obs = torch.as_tensor(expert["obs"], dtype=torch.float32)
        self.expert_act = torch.as_tensor(expert["actions"], dtype=torch.float32)
        self.expert_term = torch.as_tensor(expert["terminated"], dtype=torch.bool)
        self.param_noise = param_noise
        self.popart = PopArt(settings.popart_min_var).to(self.device) if settings.popart else None
        self.rng = np.random.default_rng(derive_seed("sam_replay", seed, distributed.rank()))
        self.gen = torch.Generator().manual_seed(derive_seed("sam_update", seed, distributed.rank()))
        self.train_steps = 0
        self.logs: dict[str, float] = {}
        # Zero-copy torch views of SB3's replay arrays: sampling indexes them without numpy round trips.
        self._t = {f: torch.from_numpy(getattr(self.replay_buffer, f)) for f in ("observations", "actions", "rewards", "dones", "timeouts")}
        self.refresh_obs_stats()
        self._targets = list(self.critic_target.parameters()) + list(self.actor_target.parameters())
        self._sources = list(self.critic.parameters()) + list(self.actor.parameters())
        low, high = self.action_space.low, self.action_space.high
        self._act_low = torch.as_tensor(low, dtype=torch.float32, device=self.device)
        self._act_span = torch.as_tensor(high - low, dtype=torch.float32, device=self.device)
        self.fast = CompiledSteps(self, enabled=settings.compile) if settings.compile or settings.stacked else None
        # Left eager: spectral norm's power iteration mutates buffers inside the forward; absorbing
        # pairs change D's batch size every update; the reward-gradient actor term is a rare option.
        self._fast_d = self.fast is not None and not settings.absorbing and not any("parametrizations" in k for k, _ in disc.named_parameters())
        self._fast_actor = self.fast is not None and not settings.d_scale

    # ----- discriminator inputs ----------------------------------------------------------------
    def _env_action(self, scaled: torch.Tensor) -> torch.Tensor:
        """Actor/buffer actions in [-1, 1] -> the env's units, which the expert's actions are in."""
        return self._act_low + (scaled + 1.0) * 0.5 * self._act_span

    def _d_obs(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.s.absorbing:
            return obs
        return torch.cat([obs, obs.new_zeros(len(obs), 1)], dim=1)

    def _absorbing_pairs(self, n: int, device: Any = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        obs = torch.zeros(n, self.disc.obs_dim, device=device)
        obs[:, -1] = 1.0
        return obs, torch.zeros(n, self.expert_act.shape[1], device=device)

    def d_reward(self, obs: torch.Tensor, env_actions: torch.Tensor) -> torch.Tensor:
        """Reward ``(B,)`` of raw obs and env-unit actions under the current D."""
        r = reward_from_logits(self.disc.logits(self._d_obs(obs), env_actions), self.s.reward)
        if not torch.isfinite(r).all():
            raise TrainingError("the discriminator returned NaN/inf rewards")
        return r

    def absorbing_value(self) -> torch.Tensor:
        """Value of the absorbing state: it loops forever on D's reward for it."""
        obs, act = self._absorbing_pairs(1, self.device)
        with torch.no_grad():
            r = reward_from_logits(self.disc.logits(obs, act), self.s.reward)
        return r[0] / (1.0 - self.gamma)

    # ----- raw replay access -------------------------------------------------------------------
    def _rows(self, field: str, rows: np.ndarray, envs: np.ndarray, cpu: bool = False) -> torch.Tensor:
        """Replay rows of ``field`` as float32 on the training device (``cpu``: left on the CPU)."""
        if field == "next_observations":  # stored once (CompactReplayBuffer): looked up by index
            out = torch.from_numpy(self.replay_buffer.next_obs_rows(rows, envs))
        else:
            out = self._t[field][torch.from_numpy(rows), torch.from_numpy(envs)].float()
        return out if cpu else self._dev(out)

    def _dev(self, t: torch.Tensor) -> torch.Tensor:
        """A CPU tensor (a gathered batch, a random draw) onto the training device; a no-op on the CPU."""
        # Skipped outright on the CPU: ~16 calls per update, each a dispatch even when it copies nothing.
        return t if self.device.type == "cpu" else t.to(self.device, non_blocking=True)

    def refresh_obs_stats(self) -> None:
        """Cache the actor/critic observation statistics as tensors (after every update of them)."""
        venv = self._vec_normalize_env
        if venv is None:
            self._obs_mean = None
            return
        self._obs_mean = torch.as_tensor(venv.obs_rms.mean, dtype=torch.float32, device=self.device)
        self._obs_std = torch.as_tensor(np.sqrt(venv.obs_rms.var + venv.epsilon), dtype=torch.float32, device=self.device)
        self._obs_clip = float(venv.clip_obs)

    def _norm(self, obs: torch.Tensor) -> torch.Tensor:
        """VecNormalize's observation transform, in torch."""
        if self._obs_mean is None:
            return obs
        return ((obs - self._obs_mean) / self._obs_std).clamp(-self._obs_clip, self._obs_clip)

    def _step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[torch.nn.Parameter]) -> None:
        optimizer.zero_grad()
        loss.backward()
        self._apply(optimizer, params)

    def _apply(self, optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> None:
        """Average the gradients in ``p.grad`` across workers, clip them, take the optimiser step."""
        distributed.average_gradients(params)
        if self.s.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.s.grad_clip)
        optimizer.step()
        if self.fast is not None and self.fast.cuda_graphs:
            for p in params:  # CUDA-graph outputs: overwritten by the next graph call (ail/algos/sam/compiled.py)
                p.grad = None

    # ----- one update of each module -----------------------------------------------------------
    # The compiled path is split in phases (inputs -> gradients -> finish) so that K seeds in one
    # process (ail.algos.sam.compiled.StackedSteps) can run the middle phase for all of them in one call.
    def _d_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Expert and policy pairs for D (its observation statistics updated with them)."""
        b = self.s.d_batch_size
        rows, envs = sample_rows(self.replay_buffer, b, self.rng)
        p_obs = self._rows("observations", rows, envs, cpu=True)
        p_act = self._env_action(self._rows("actions", rows, envs))
        e_idx = torch.randint(len(self.expert_obs), (b,), generator=self.gen)
        e_obs, e_act = self.expert_obs[e_idx], self._dev(self.expert_act[e_idx])
        self.disc.update_obs_stats(distributed.gather_rows(self._d_obs(torch.cat([p_obs, e_obs])).numpy()))
        p_obs, e_obs = self._d_obs(self._dev(p_obs)), self._d_obs(self._dev(e_obs))
        if self.s.absorbing:
            # DAC: each terminal transition also leads into the absorbing state, on both sides.
            term = self.replay_buffer.dones[rows, envs].astype(bool) & ~self.replay_buffer.timeouts[rows, envs].astype(bool)
            ap = self._absorbing_pairs(int(term.sum()), self.device)
            ae = self._absorbing_pairs(int(self.expert_term[e_idx].sum()), self.device)
            p_obs, p_act = torch.cat([p_obs, ap[0]]), torch.cat([p_act, ap[1]])
            e_obs, e_act = torch.cat([e_obs, ae[0]]), torch.cat([e_act, ae[1]])
        return e_obs, e_act, p_obs, p_act

    def d_inputs(self) -> tuple[torch.Tensor, ...]:
        """Compiled path: ``(x_e, x_p, y_e, eps)`` for :attr:`CompiledSteps.d_grads`."""
        e_obs, e_act, p_obs, p_act = self._d_batch()
        x_e, x_p = self.disc.features(e_obs, e_act), self.disc.features(p_obs, p_act)
        y_e, eps = sample_loss_noise(len(x_e), len(x_p), self.s.label_smoothing, self.s.grad_penalty, self.gen)
        return x_e, x_p, self._dev(y_e), self._dev(eps)

    def d_finish(self, grads: dict[str, torch.Tensor], values: torch.Tensor) -> dict[str, float]:
        if not torch.isfinite(values[0]):
            raise TrainingError("the discriminator loss is NaN/inf")
        set_grads(self.disc, grads)
        self._apply(self.d_opt, list(self.disc.parameters()))
        return dict(zip(LOSS_LOGS, values.tolist()))

    def update_discriminator(self) -> dict[str, float]:
        if self._fast_d:
            return self.d_finish(*self.fast.d_grads(self.fast.params["disc"], *self.d_inputs()))
        e_obs, e_act, p_obs, p_act = self._d_batch()
        loss, logs = self.disc.loss(
            e_obs,
            e_act,
            p_obs,
            p_act,
            grad_penalty=self.s.grad_penalty,
            label_smoothing=self.s.label_smoothing,
            entropy_weight=self.s.entropy_weight,
            generator=self.gen,
        )
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
            noise = (torch.randn(next_act.shape, generator=self.gen) * self.target_policy_noise).clamp(
                -self.target_noise_clip, self.target_noise_clip
            )
            next_act = (next_act + self._dev(noise)).clamp(-1, 1)
        q = torch.cat(self.critic_target(next_obs_n, next_act), dim=1).min(dim=1).values
        return self.popart.denormalize(q) if self.popart else q

    def ac_batch(self) -> dict[str, Any]:
        """The sampled rows, their n-step windows and everything the targets need but D and Q'."""
        s, buf = self.s, self.replay_buffer
        rows, envs = sample_rows(buf, self.batch_size, self.rng)
        win = lookahead(buf.dones, buf.timeouts, buf.pos, buf.full, rows, envs, s.nstep)
        n = win.idx.shape[1]
        with torch.no_grad():
            # 1-step target on the sampled rows themselves (window slot 0).
            next1 = self._norm(self._rows("next_observations", rows, envs))
            # Both bootstraps in one pass of the target networks: s_1 (1-step) and s_L (n-step).
            next_n = self._norm(self._rows("next_observations", win.last, envs)) if n > 1 else next1[:0]
            return {
                "rows": rows,
                "envs": envs,
                "win": win,
                "flat_rows": win.idx.reshape(-1),
                "flat_envs": np.repeat(envs, n),
                "next_all": torch.cat([next1, next_n]),
                "term1": self._dev(torch.as_tensor(buf.dones[rows, envs].astype(bool) & ~buf.timeouts[rows, envs].astype(bool))),
                "v_abs": self.absorbing_value() if s.absorbing else torch.zeros((), device=self.device),
                "obs": self._norm(self._rows("observations", rows, envs)),
                "act": self._rows("actions", rows, envs),
            }

    def popart_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.popart:
            return self.popart.mean, self.popart.sigma
        return torch.zeros((), dtype=torch.float64, device=self.device), torch.ones((), dtype=torch.float64, device=self.device)

    def target_inputs(self, batch: dict[str, Any]) -> tuple[Any, ...]:
        """Compiled path: the inputs of :attr:`CompiledSteps.targets` after its three parameter dicts."""
        s, buf, win, envs = self.s, self.replay_buffer, batch["win"], batch["envs"]
        with torch.no_grad():
            r_stored = x_win = None
            if s.recompute_rewards:
                x_win = self.disc.features(
                    self._d_obs(self._rows("observations", batch["flat_rows"], batch["flat_envs"])),
                    self._env_action(self._rows("actions", batch["flat_rows"], batch["flat_envs"])),
                )
            else:
                r_stored = self._dev(torch.as_tensor(buf.rewards[win.idx, envs[:, None]], dtype=torch.float32))
            noise = None
            if self.target_policy_noise > 0:
                noise = (
                    torch.randn((len(batch["next_all"]), self.actor.action_space.shape[0]), generator=self.gen) * self.target_policy_noise
                ).clamp(-self.target_noise_clip, self.target_noise_clip)
                noise = self._dev(noise)
        return (
            x_win,
            r_stored,
            batch["next_all"],
            noise,
            batch["term1"],
            *(self._dev(torch.from_numpy(a)) for a in (win.valid, win.length, win.terminal)),
            batch["v_abs"],
            *self.popart_inputs(),
        )

    def _eager_targets(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s, buf, win, envs = self.s, self.replay_buffer, batch["win"], batch["envs"]
        b, n = win.idx.shape
        with torch.no_grad():
            if s.recompute_rewards:
                r_win = self.d_reward(
                    self._rows("observations", batch["flat_rows"], batch["flat_envs"]),
                    self._env_action(self._rows("actions", batch["flat_rows"], batch["flat_envs"])),
                ).reshape(b, n)
            else:
                r_win = self._dev(torch.as_tensor(buf.rewards[win.idx, envs[:, None]], dtype=torch.float32))
            q_next = self._target_q(batch["next_all"])
            y1 = r_win[:, 0] + self.gamma * torch.where(batch["term1"], batch["v_abs"], q_next[:b])
            yn = nstep_targets(r_win, win, q_next[b:], self.gamma, terminal_value=batch["v_abs"]) if n > 1 else y1
        return r_win, y1, yn

    def critic_inputs(self, batch: dict[str, Any], r_win: torch.Tensor, y1: torch.Tensor, yn: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Pop-Art folds the targets in (rescaling the heads); returns ``(obs, act, y1_t, yn_t)``."""
        if self.fast is not None and self.s.recompute_rewards and not torch.isfinite(r_win).all():  # eager: d_reward checked
            raise TrainingError("the discriminator returned NaN/inf rewards")
        batch["logs"] = {"target_mean": yn.mean(), "reward_mean": r_win[:, 0].mean()}
        with torch.no_grad():
            if self.popart:
                self.popart.update(torch.cat([y1, yn]), self.critic.heads() + self.critic_target.heads(), reduce=distributed.sum_moments)
                y1, yn = self.popart.normalize(y1), self.popart.normalize(yn)
            elif self.fast is not None and self.fast.cuda_graphs:
                y1, yn = y1.clone(), yn.clone()  # outputs of the target graph, which the critic graph's call may overwrite
        return batch["obs"], batch["act"], y1, yn

    def critic_finish(self, batch: dict[str, Any], grads: Optional[dict[str, torch.Tensor]], critic_loss: torch.Tensor) -> dict[str, float]:
        """Apply the critic gradients (``grads``; None: the eager path already checked and stepped) and count the update."""
        if grads is not None:
            if not torch.isfinite(critic_loss):
                raise TrainingError("the critic loss is NaN/inf")
            set_grads(self.critic, grads)
            self._apply(self.critic.optimizer, list(self.critic.parameters()))
        self._n_updates += 1
        logs = batch.pop("logs")
        return {"critic_loss": float(critic_loss.detach()), "target_mean": float(logs["target_mean"]), "reward_mean": float(logs["reward_mean"])}

    def actor_due(self) -> bool:
        return self._n_updates % self.policy_delay == 0

    def actor_finish(self, grads: Optional[dict[str, torch.Tensor]], actor_loss: torch.Tensor) -> dict[str, float]:
        if grads is not None:
            set_grads(self.actor, grads)
            self._apply(self.actor.optimizer, list(self.actor.parameters()))
        with torch.no_grad():
            torch._foreach_lerp_(self._targets, self._sources, self.tau)  # Polyak, one fused call for all tensors
        return {"actor_loss": float(actor_loss.detach())}

    def update_actor_critic(self) -> dict[str, float]:
        s, p = self.s, self.fast.params if self.fast is not None else {}
        batch = self.ac_batch()
        if self.fast is not None:
            r_win, y1, yn = self.fast.targets(p["disc"], p["actor_target"], p["critic_target"], *self.target_inputs(batch))
        else:
            r_win, y1, yn = self._eager_targets(batch)
        obs, act, y1_t, yn_t = self.critic_inputs(batch, r_win, y1, yn)
        if self.fast is not None:
            logs = self.critic_finish(batch, *self.fast.critic_grads(p["critic"], obs, act, y1_t, yn_t))
        else:
            loss_fn = F.smooth_l1_loss if s.critic_loss == "huber" else F.mse_loss
            critic_loss = torch.zeros((), device=self.device)
            for q in self.critic(obs, act):
                q = q.squeeze(1)
                critic_loss = critic_loss + loss_fn(q, yn_t) + (loss_fn(q, y1_t) if s.one_step_loss else 0.0)
            wd = 0.5 * sum((w**2).sum() for w in self.critic.hidden_weights())
            critic_loss = critic_loss + s.weight_decay * wd
            if not torch.isfinite(critic_loss):
                raise TrainingError("the critic loss is NaN/inf")
            self._step(self.critic.optimizer, critic_loss, list(self.critic.parameters()))
            logs = self.critic_finish(batch, None, critic_loss)
        if self.actor_due():
            if self._fast_actor:
                logs.update(self.actor_finish(*self.fast.actor_grads(p["actor"], p["critic"], obs, *self.popart_inputs())))
            else:
                mu = self.actor(obs)
                q_pi = self.critic.q1_forward(obs, mu).squeeze(1)
                q_pi = self.popart.denormalize(q_pi) if self.popart else q_pi
                actor_loss = -s.q_scale * q_pi.mean()
                if s.d_scale:
                    raw_obs = self._rows("observations", batch["rows"], batch["envs"])
                    actor_loss = actor_loss - s.d_scale * self.d_reward(raw_obs, self._env_action(mu)).mean()
                self._step(self.actor.optimizer, actor_loss, list(self.actor.parameters()))
                self.disc.zero_grad(set_to_none=True)  # the reward-gradient term must not leak into D's next step
                logs.update(self.actor_finish(None, actor_loss))
        return logs

    # ----- SB3 hooks ---------------------------------------------------------------------------
    def _excluded_save_params(self) -> list[str]:
        # model.save() keeps SB3's TD3 part (policy, optimisers, settings); the adversarial state
        # lives in the run's checkpoint (ail/algos/sam/learner.py), as does the replay buffer.
        return super()._excluded_save_params() + [
            "disc",
            "d_opt",
            "s",
            "expert_obs",
            "expert_act",
            "expert_term",
            "param_noise",
            "popart",
            "rng",
            "gen",
            "_t",
            "_targets",
            "_sources",
            "_obs_mean",
            "_obs_std",
            "_obs_clip",
            "_act_low",
            "_act_span",
            "logs",
            "fast",
            "_fast_d",
            "_fast_actor",
        ]

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """``gradient_steps`` SAM training steps (t_max), each with d_steps D and g_steps AC updates."""
        train_agents([self], gradient_steps, lambda: [self.update_discriminator()], lambda: [self.update_actor_critic()])

    def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        if self.param_noise is None or self.num_timesteps < learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        with torch.no_grad():
            scaled = self.param_noise.perturbed(torch.as_tensor(self._last_obs, dtype=torch.float32, device=self.device)).cpu().numpy()
        if action_noise is not None:
            scaled = np.clip(scaled + action_noise(), -1, 1)
        return self.policy.unscale_action(scaled), scaled

    def _store_transition(
        self, replay_buffer: Any, buffer_action: np.ndarray, new_obs: Any, reward: np.ndarray, dones: np.ndarray, infos: list
    ) -> None:
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        venv = self._vec_normalize_env
        if venv is not None:
            # The actor/critic statistics follow the agent's own observations (all workers' alike).
            venv.obs_rms.update(distributed.gather_rows(venv.get_original_obs().astype(np.float64)))
            self.refresh_obs_stats()
        if self.param_noise is not None and dones.any():
            self.param_noise.resample(self.actor, self.gen)


def train_agents(
    agents: list[SAM], gradient_steps: int, update_d: Callable[[], list[dict[str, float]]], update_ac: Callable[[], list[dict[str, float]]]
) -> None:
    """The training steps of one agent or of K stacked ones (``update_*``: one log dict per agent).

    Sets each agent's ``logs`` to the means of its update logs plus its parameter-noise state.
    """
    sums: list[dict[str, float]] = [{} for _ in agents]
    counts: list[dict[str, int]] = [{} for _ in agents]
    s = agents[0].s
    for _ in range(gradient_steps):
        parts = [update_d() for _ in range(s.d_steps)]
        for a in agents:
            if a.param_noise is not None and a.train_steps % s.adapt_every == 0:
                a.adapt_param_noise()
        parts += [update_ac() for _ in range(s.g_steps)]
        for i, a in enumerate(agents):
            a.train_steps += 1
            for part in parts:
                for k, v in part[i].items():
                    sums[i][k] = sums[i].get(k, 0.0) + v
                    counts[i][k] = counts[i].get(k, 0) + 1
    for i, a in enumerate(agents):
        a.logs = {k: sums[i][k] / counts[i][k] for k in sums[i]}
        if a.param_noise is not None:
            a.logs.update(param_noise_sigma=a.param_noise.sigma, param_noise_distance=a.param_noise.last_distance)
