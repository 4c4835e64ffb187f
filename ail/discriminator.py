"""The one discriminator every adversarial algorithm here uses (GAIL, SAM, MGAIL, Dyna-AIL).

Label convention (the only one in this project): **expert = 1, policy = 0**.
``D(s, a) = sigmoid(f(s, a))`` is the probability that the pair ``(s, a)`` comes from the expert.
GAIL's paper writes the opposite (D = P(policy), cost log D); the sign flips, the game does not.

Loss on a batch of B expert and B policy pairs (each term a mean, so both weigh 1)::

    L_D = BCE(f(x_p), 0) + BCE(f(x_e), y_e) - w_ent * H(D) + lambda * mean_b (||grad_x f(x_b_hat)||_2 - 1)^2

* ``y_e = 1``, or with one-sided label smoothing a fixed value or ``U(low, high)`` per sample
  (SAM: U(0.7, 1.2)); policy labels always stay 0.
* ``H(D)``: mean Bernoulli entropy of D over both batches (GAIL: w_ent = 1e-3).
* Gradient penalty (WGAN-GP form, per sample): ``x_b_hat = eps_b x_e + (1 - eps_b) x_p`` with
  ``eps_b ~ U(0, 1)`` of shape (B, 1), in the space D sees (normalised observations, encoded
  actions); two-sided, target norm 1. SAM's original takes one norm over the whole batch with
  per-coordinate eps; this is the standard per-sample form (documented deviation).

Reward variants (``reward_from_logits``), all functions of the logit ``f``:

| name | r(s, a) | range | bias |
|---|---|---|---|
| ``minimax`` | ``-log(1 - D) = softplus(f)`` | (0, inf) | positive every step: a survival bonus. Right for tasks that end on failure (Hopper, CartPole); wrong where episodes end on success. |
| ``log_d`` | ``log D = -softplus(-f)`` | (-inf, 0) | negative every step: a push to end episodes. Right for tasks that end on success (MountainCar, Acrobot, GAIL's choice there); wrong where ending is failure. |
| ``logit`` | ``log D - log(1 - D) = f`` | (-inf, inf) | no fixed sign (AIRL-style); the sum of the two above. |

Inputs: observations are standardised by running statistics (SB3 ``RunningMeanStd``, updated
from expert and policy batches) and clipped to [-clip, clip]. Discrete actions are one-hot
encoded (the CartPole blog's 4 + 2 inputs); continuous ones enter raw.

One set of D's math for every algorithm: the loss terms on logits (:func:`loss_from_logits`), the
penalty's inputs and value (:func:`interpolate`, :func:`penalty`) and DAC's absorbing pairs
(:func:`absorbing_pairs`) are functions that :class:`Discriminator` (one network, GAIL, MGAIL,
Dyna-AIL, through :meth:`Discriminator.step`) and SAM's stacked update (K seeds,
:mod:`ail.algos.sam.update`) both call, on ``(B,)`` or ``(K, B)`` rows. What the stacked update
keeps of its own carries a seed axis: its MLP and spectral norm (:mod:`ail.algos.sam.stacked`)
and its float64 running statistics (``fold_moments``), checked against this module and SB3's
``RunningMeanStd`` by tests/test_sam_update.py.

Which observation entries D judges (``obs_slice``): all of them by default, or only the entries
``[start, stop)`` of the observation. The policy and
critic still see everything; only the game is narrowed. Ant-v5 and Humanoid-v5 append contact
forces, inertias and actuator forces to ``qpos, qvel``, which the papers' Ant-v2 reported as zeros
(openai/gym#1541). What narrowing D to ``qpos, qvel`` did on Ant: docs/notes/sam.md, docs/notes/results.md.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.running_mean_std import RunningMeanStd
from torch import nn

from ail.activations import activation as activation_class
from ail.errors import ConfigError, TrainingError
from ail.schema import DiscriminatorConfig

REWARDS = ("minimax", "log_d", "logit")
LOSS_LOGS = ("d_loss", "d_expert", "d_policy", "d_acc_expert", "d_acc_policy", "d_entropy", "d_grad_penalty")
ENCODINGS = ("auto", "onehot", "raw")


def reward_from_logits(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Reward per pair from D's logits ``(B,)`` (see the module table for signs and biases)."""
    if kind == "minimax":
        return F.softplus(logits)
    if kind == "log_d":
        return -F.softplus(-logits)
    if kind == "logit":
        return logits
    raise ConfigError(f"unknown reward '{kind}'; accepted: {', '.join(REWARDS)}")


def check_reward_for_task(kind: str, termination: str, absorbing: bool, allow_biased: bool) -> None:
    """Refuse a reward whose constant sign works against how the task's episodes end.

    ``termination``: ``failure`` (falling ends the episode), ``success`` (reaching the goal
    does), or ``none`` (only the time limit). With absorbing states the bias is learned away,
    so any reward is accepted.
    """
    if kind not in REWARDS:
        raise ConfigError(f"unknown reward '{kind}'; accepted: {', '.join(REWARDS)}")
    if absorbing or allow_biased:
        return
    if kind == "log_d" and termination == "failure":
        raise ConfigError(
            "algo.reward=log_d is negative every step, so on a task whose episodes end on failure it pays the agent to fail early; "
            "accepted here: minimax or logit (or turn on absorbing states, or set algo.allow_biased_reward=true)"
        )
    if kind == "minimax" and termination == "success":
        raise ConfigError(
            "algo.reward=minimax is positive every step, so on a task whose episodes end on success it pays the agent never to finish; "
            "accepted here: log_d or logit (or turn on absorbing states, or set algo.allow_biased_reward=true)"
        )


def _linear(n_in: int, n_out: int, spectral: bool) -> nn.Module:
    layer = nn.Linear(n_in, n_out)
    return nn.utils.parametrizations.spectral_norm(layer) if spectral else layer


class Discriminator(nn.Module):
    """MLP logit ``f(s, a)`` over (normalised obs, encoded action); ``D = sigmoid(f)`` = P(expert).

    ``obs``: ``(B, n)`` raw observations of the task (D judges the entries ``obs_slice``);
    ``actions``: ``(B, act_dim)`` floats or ``(B,)`` integer indices.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.Space,
        hidden: Sequence[int] = (100, 100),
        activation: str = "tanh",
        action_encoding: str = "auto",
        spectral_norm: bool = False,
        layer_norm: bool = False,
        normalize_obs: bool = True,
        clip_obs: float = 5.0,
        obs_slice: Optional[Sequence[int]] = None,
    ):
        super().__init__()
        act_cls = activation_class(activation, "algo.discriminator.activation")
        if action_encoding not in ENCODINGS:
            raise ConfigError(f"algo.discriminator.action_encoding={action_encoding} is invalid; accepted: {', '.join(ENCODINGS)}")
        discrete = isinstance(action_space, gym.spaces.Discrete)
        if action_encoding == "onehot" and not discrete:
            raise ConfigError(
                f"algo.discriminator.action_encoding=onehot needs a discrete action space, but this task's is {action_space}; "
                f"accepted here: auto or raw"
            )
        self.onehot = discrete and action_encoding != "raw"
        self.n_actions = int(action_space.n) if discrete else 0
        self.act_dim = self.n_actions if self.onehot else (1 if discrete else int(np.prod(action_space.shape)))
        n_obs = int(np.prod(observation_space.shape))
        self.judged = check_obs_slice(obs_slice, n_obs)
        self.narrowed = self.judged != slice(0, n_obs)
        n_norm = self.obs_dim = self.judged.stop - self.judged.start  # D's observation input
        self.normalize_obs = normalize_obs
        self.clip_obs = float(clip_obs)
        self.obs_rms = RunningMeanStd(shape=(n_norm,))
        # float64 like RunningMeanStd, so a checkpoint restores the statistics exactly.
        self.register_buffer("obs_mean", torch.zeros(n_norm, dtype=torch.float64))
        self.register_buffer("obs_var", torch.ones(n_norm, dtype=torch.float64))
        self.register_buffer("obs_count", torch.tensor(1e-4, dtype=torch.float64))
        self._cache_norm()
        layers: list[nn.Module] = []
        n_in = self.obs_dim + self.act_dim
        for width in hidden:
            layers.append(_linear(n_in, int(width), spectral_norm))
            layers.append(act_cls())
            if layer_norm:
                layers.append(nn.LayerNorm(int(width)))
            n_in = int(width)
        layers.append(_linear(n_in, 1, spectral_norm))
        self.net = nn.Sequential(*layers)

    # ----- inputs ----------------------------------------------------------------------------
    def update_obs_stats(self, obs: np.ndarray) -> None:
        """Fold a batch of raw observations ``(B, n)`` (their judged entries) into the running statistics."""
        if not self.normalize_obs:
            return
        x = np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)
        self.obs_rms.update(x[:, self.judged])
        self.obs_mean.copy_(torch.as_tensor(self.obs_rms.mean))
        self.obs_var.copy_(torch.as_tensor(self.obs_rms.var))
        self.obs_count.fill_(float(self.obs_rms.count))
        self._cache_norm()

    def _cache_norm(self) -> None:
        # float32 copies for the forward pass, refreshed whenever the statistics change.
        self._mean32 = self.obs_mean.float()
        self._std32 = torch.sqrt(self.obs_var + 1e-8).float()

    def _apply(self, fn: Any, recurse: bool = True) -> "Discriminator":
        out = super()._apply(fn, recurse)  # .to(device) moves the buffers: the float32 copies follow
        self._cache_norm()
        return out

    def _sync_rms(self) -> None:
        self.obs_rms.mean = self.obs_mean.double().cpu().numpy().copy()
        self.obs_rms.var = self.obs_var.double().cpu().numpy().copy()
        self.obs_rms.count = float(self.obs_count)
        self._cache_norm()

    def load_state_dict(self, state: Any, strict: bool = True, assign: bool = False) -> Any:
        out = super().load_state_dict(state, strict=strict, assign=assign)
        self._sync_rms()
        return out

    def features(self, obs: Union[np.ndarray, torch.Tensor], actions: Union[np.ndarray, torch.Tensor], encoded: bool = False) -> torch.Tensor:
        """D's input ``(B, obs_dim + act_dim)``: the judged entries of the raw observations ``obs``
        (normalised, clipped) and the encoded action.

        ``encoded=True``: ``actions`` are already ``(B, act_dim)`` floats in D's encoding (a
        soft or straight-through one-hot for discrete actions), so gradients reach them
        (MGAIL's backpropagation through ``grad_a D``).
        """
        obs_t = torch.as_tensor(np.asarray(obs) if not torch.is_tensor(obs) else obs, dtype=torch.float32).reshape(len(obs), -1)
        if self.narrowed:
            obs_t = obs_t[:, self.judged]
        if self.normalize_obs:
            obs_t = ((obs_t - self._mean32) / self._std32).clamp(-self.clip_obs, self.clip_obs)
        act_t = torch.as_tensor(np.asarray(actions) if not torch.is_tensor(actions) else actions)
        if encoded:
            act_t = act_t.float().reshape(len(obs_t), self.act_dim)
        elif self.onehot:
            act_t = F.one_hot(act_t.reshape(-1).long(), self.n_actions).float()
        else:
            act_t = act_t.float().reshape(len(obs_t), -1)
        return torch.cat([obs_t, act_t], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B,)`` from features ``(B, obs_dim + act_dim)``."""
        return self.net(x).squeeze(-1)

    def logits(self, obs: Any, actions: Any, encoded: bool = False) -> torch.Tensor:
        return self(self.features(obs, actions, encoded))

    @torch.no_grad()
    def reward(self, obs: Any, actions: Any, kind: str = "minimax") -> np.ndarray:
        """Reward ``(B,)`` float32 for raw pairs; raises :class:`TrainingError` if D is not finite."""
        r = reward_from_logits(self.logits(obs, actions), kind)
        if not torch.isfinite(r).all():
            raise TrainingError("the discriminator returned NaN/inf rewards")
        return r.cpu().numpy().astype(np.float32)

    # ----- training --------------------------------------------------------------------------
    def loss(
        self,
        expert_obs: Any,
        expert_actions: Any,
        policy_obs: Any,
        policy_actions: Any,
        grad_penalty: float = 0.0,
        label_smoothing: Optional[Union[float, Sequence[float]]] = None,
        entropy_weight: float = 0.0,
        generator: Optional[torch.Generator] = None,
        encoded: bool = False,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``L_D`` of the module docstring on B expert and B policy pairs; returns (loss, logs).

        ``encoded``: both action batches are already in D's encoding (see :meth:`features`)."""
        x_e = self.features(expert_obs, expert_actions, encoded)
        x_p = self.features(policy_obs, policy_actions, encoded)
        n_e, n_p = len(x_e), len(x_p)
        y_e, eps = sample_loss_noise(n_e, n_p, label_smoothing, grad_penalty, generator)
        y_e, eps = y_e.to(x_e.device), eps.to(x_e.device)  # drawn on the CPU: one stream whatever the device
        parts = [x_e, x_p]
        if grad_penalty > 0:
            x_hat = interpolate(x_e, x_p, eps).requires_grad_(True)
            parts.append(x_hat)
        # One forward pass over expert, policy and interpolated inputs: a third of the kernel launches.
        f = self(torch.cat(parts))
        loss, terms = loss_from_logits(f[:n_e], f[n_e : n_e + n_p], y_e, entropy_weight)
        if grad_penalty > 0:
            (grad,) = torch.autograd.grad(f[n_e + n_p :].sum(), x_hat, create_graph=True)
            terms["d_grad_penalty"] = penalty(grad)
            loss = loss + grad_penalty * terms["d_grad_penalty"]
        if not torch.isfinite(loss):
            raise TrainingError("the discriminator loss is NaN/inf")
        terms["d_loss"] = loss
        # One conversion for all statistics: each float() on a tensor costs a dispatch.
        values = torch.stack([terms[n].detach() for n in LOSS_LOGS]).tolist()
        return loss, dict(zip(LOSS_LOGS, values))

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        expert_obs: Any,
        expert_actions: Any,
        policy_obs: Any,
        policy_actions: Any,
        settings: DiscriminatorConfig,
        generator: Optional[torch.Generator] = None,
        encoded: bool = False,
    ) -> dict[str, float]:
        """One optimiser step on :meth:`loss` with an algorithm's ``algo.discriminator`` settings (its
        penalty, smoothing and entropy weight); returns the loss's logs. The input statistics are
        the caller's to update (:meth:`update_obs_stats`), once per batch or per round."""
        self.train()
        loss, logs = self.loss(
            expert_obs,
            expert_actions,
            policy_obs,
            policy_actions,
            grad_penalty=settings.grad_penalty,
            label_smoothing=settings.label_smoothing,
            entropy_weight=settings.entropy_weight,
            generator=generator,
            encoded=encoded,
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        self.eval()
        return logs


# ----- D's math on logits, shared by the module above (one seed) and SAM's stacked update (K seeds)
def _mean(x: torch.Tensor, w: Optional[torch.Tensor]) -> torch.Tensor:
    """The ``w``-weighted mean over the last axis (rows; masked rows weigh 0), or with ``w`` None the
    plain mean of one seed's ``(B,)`` rows."""
    return x.mean() if w is None else (x * w).sum(-1) / w.sum(-1)


def _bce(f: torch.Tensor, y: torch.Tensor, w: Optional[torch.Tensor]) -> torch.Tensor:
    # Unweighted, torch's own mean reduction: its backward is not the one of an explicit mean, and
    # one seed's D keeps the gradients (so the curves) it had before this math was shared.
    if w is None:
        return F.binary_cross_entropy_with_logits(f, y)
    return _mean(F.binary_cross_entropy_with_logits(f, y, reduction="none"), w)


def loss_from_logits(
    f_e: torch.Tensor,
    f_p: torch.Tensor,
    y_e: torch.Tensor,
    entropy_weight: float,
    w_e: Optional[torch.Tensor] = None,
    w_p: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``BCE(f_p, 0) + BCE(f_e, y_e) - w_ent H(D)`` from logits, rows last: one seed's ``(B,)`` or,
    with row weights ``w_e``, ``w_p`` (SAM's absorbing pairs: masked rows weigh 0), ``(K, B)`` of K
    seeds; and the statistics :data:`LOSS_LOGS` names, each ``()`` or ``(K,)``; ``d_loss`` and the
    penalty are the caller's to add. ``H``: the Bernoulli entropy ``softplus(f) - f sigmoid(f)``
    (stable for large ``|f|``) over both batches."""
    loss_e = _bce(f_e, y_e, w_e)
    loss_p = _bce(f_p, torch.zeros_like(f_p), w_p)
    f_all = torch.cat([f_e, f_p], dim=-1)
    w_all = None if w_e is None else torch.cat([w_e, w_p], dim=-1)
    entropy = _mean(F.softplus(f_all) - f_all * torch.sigmoid(f_all), w_all)
    terms = {
        "d_expert": _mean(torch.sigmoid(f_e), w_e),
        "d_policy": _mean(torch.sigmoid(f_p), w_p),
        "d_acc_expert": _mean((f_e > 0).float(), w_e),
        "d_acc_policy": _mean((f_p < 0).float(), w_p),
        "d_entropy": entropy,
        "d_grad_penalty": torch.zeros_like(entropy),
    }
    return loss_e + loss_p - entropy_weight * entropy, terms


def interpolate(x_e: torch.Tensor, x_p: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The gradient penalty's inputs ``eps x_e + (1 - eps) x_p`` on the first ``eps.shape[-2]`` rows."""
    n = eps.shape[-2]
    return eps * x_e[..., :n, :] + (1 - eps) * x_p[..., :n, :]


def penalty(grad: torch.Tensor) -> torch.Tensor:
    """``mean_b (||grad_b||_2 - 1)^2`` of per-row input gradients ``(..., B, d)``."""
    return (grad.norm(2, dim=-1) - 1).pow(2).mean(-1)


def absorbing_pairs(obs: torch.Tensor, actions: torch.Tensor, terminal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DAC's absorbing states (Kostrikov et al. 2019) on one side of D's batch: after the ``B`` pairs
    ``obs (..., B, n + 1)`` (real states: absorbing indicator 0, last), ``actions (..., B, a)``, B
    more rows follow, the absorbing state (zeros, indicator 1) with a zero action, each weighing 1
    where its pair's transition ended in a true termination (``terminal (..., B)``) and 0 elsewhere,
    so shapes stay fixed. Returns the ``2B`` rows and their weights ``(..., 2B)``."""
    absorbing = torch.zeros_like(obs)
    absorbing[..., -1] = 1.0
    weights = torch.cat([torch.ones(terminal.shape), terminal.float()], dim=-1)
    return torch.cat([obs, absorbing], dim=-2), torch.cat([actions, torch.zeros_like(actions)], dim=-2), weights


def sample_loss_noise(
    n_e: int, n_p: int, label_smoothing: Optional[Union[float, Sequence[float]]], grad_penalty: float, generator: Optional[torch.Generator]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expert labels ``y_e (n_e,)`` and the penalty's interpolation weights ``eps (min(n_e, n_p), 1)``.

    Drawn in this order from ``generator`` (SAM's stacked update draws its seeds' alike, in
    :class:`ail.algos.sam.learner.SAMLearner`).
    """
    if label_smoothing is None:
        y_e = torch.ones(n_e)
    elif isinstance(label_smoothing, (int, float)):
        y_e = torch.full((n_e,), float(label_smoothing))
    else:
        low, high = (float(v) for v in label_smoothing)
        y_e = low + (high - low) * torch.rand((n_e,), generator=generator)
    eps = torch.rand((min(n_e, n_p), 1), generator=generator) if grad_penalty > 0 else torch.zeros((0, 1))
    return y_e, eps


def check_obs_slice(obs_slice: Optional[Sequence[int]], n_obs: int) -> slice:
    """``algo.discriminator.obs_slice`` as a slice of a task's ``n_obs`` observation entries;
    ``None`` is all of them. Raises :class:`ConfigError` naming the bad value and the task's range."""
    if obs_slice is None:
        return slice(0, n_obs)
    start, stop = (int(v) for v in obs_slice)
    if not 0 <= start < stop <= n_obs:
        raise ConfigError(
            f"algo.discriminator.obs_slice=[{start}, {stop}] is invalid for this task's {n_obs} observation entries; "
            f"accepted: [start, stop] with 0 <= start < stop <= {n_obs}, or null (all)"
        )
    return slice(start, stop)


def build_discriminator(observation_space: gym.Space, action_space: gym.Space, dcfg: DiscriminatorConfig) -> Discriminator:
    """A :class:`Discriminator` from an algorithm's validated ``algo.discriminator`` settings."""
    return Discriminator(
        observation_space,
        action_space,
        hidden=dcfg.hidden,
        activation=dcfg.activation,
        action_encoding=dcfg.action_encoding,
        spectral_norm=dcfg.spectral_norm,
        layer_norm=dcfg.layer_norm,
        normalize_obs=dcfg.normalize_obs,
        clip_obs=dcfg.clip_obs,
        obs_slice=None if dcfg.obs_slice is None else list(dcfg.obs_slice),
    )
