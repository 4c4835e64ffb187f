"""Forward models ``s' = f(s, a)`` for MGAIL and Dyna-AIL, trained on the agent's replay.

Both models work in normalised space: states are standardised with the expert data's mean and
std (zero stds replaced by 1, as in mgail's ``set_er_stats``); continuous actions likewise; a
discrete action enters as a (possibly soft) one-hot vector. The interface is raw: ``predict``
takes raw states ``(B, obs_dim)`` and D-encoded actions ``(B, act_dim)`` and returns raw next
states ``(B, obs_dim)``, differentiable in both inputs.

* ``basic``: ``MLP(concat(s_n, a_n))``.
* ``advanced`` (MGAIL section 3.5, mgail ``forward_model.py``): a state encoder
  ``Dense-ReLU -> GRU cell -> Dense-sigmoid``, an action encoder ``Dense-ReLU -> Dense-sigmoid``,
  joined by a Hadamard product, then a ReLU decoder. The GRU's hidden input is a constant ones
  vector at every call, as in the released code (no recurrence across time steps).

``activation`` replaces every ReLU (the sigmoid gates stay): a ReLU network's Jacobian is
piecewise constant in its input, a smooth activation's (SiLU, tanh) is smooth.

``delta=True`` (Dyna-AIL eq. 5) predicts the change: ``s'_n = s_n + f``; ``delta=False``
(MGAIL's code) predicts ``s'_n`` directly.

``members = M`` independently initialised networks of that design form an ensemble (PETS, MBPO):
a prediction is their mean, so the gradient the policy follows is the members' mean Jacobian,
in which what the members disagree on (fitting noise) cancels. M = 1 is the single model.

Training (:meth:`ForwardModel.sequence_loss`): from the true first state of a real sequence of
``train_horizon = H`` steps, each member predicts open-loop with the true actions, and

    L = 0.5 * sum_m mean_{k=1..H} mean ||s'_n(k) - f_m^(k)||^2     (normalised coordinates)

so with H > 1 the model is fitted on the errors that compound along an unroll; H = 1 is the
one-step squared loss of eq. 5. Each member has its own term: the ensemble is not one wider model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ail.activations import ACTIVATIONS
from ail.algos.model_based.config import ForwardModelConfig
from ail.errors import ConfigError

KINDS = ("basic", "advanced")


def _mlp(n_in: int, hidden: Sequence[int], n_out: int, act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, int(width)), act()]
        n_in = int(width)
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class _Network(nn.Module):
    """One member: the output ``(B, obs_dim)`` (a delta when ``delta``) from normalised inputs."""

    def __init__(self, obs_dim: int, act_dim: int, kind: str, width: int, decoder: Sequence[int], act: type[nn.Module]):
        super().__init__()
        self.kind = kind
        if kind == "basic":
            self.net = _mlp(obs_dim + act_dim, [width, *decoder], obs_dim, act)
        else:
            self.state_in = nn.Sequential(nn.Linear(obs_dim, width), act())
            self.gru = nn.GRUCell(width, width)
            self.state_out = nn.Sequential(nn.Linear(width, width), nn.Sigmoid())
            self.action_enc = nn.Sequential(nn.Linear(act_dim, width), act(), nn.Linear(width, width), nn.Sigmoid())
            self.decoder = _mlp(width, decoder, obs_dim, act)

    def forward(self, obs_n: torch.Tensor, act_n: torch.Tensor) -> torch.Tensor:
        if self.kind == "basic":
            return self.net(torch.cat([obs_n, act_n], dim=1))
        h0 = torch.ones(len(obs_n), self.gru.hidden_size)
        s = self.state_out(self.gru(self.state_in(obs_n), h0))
        return self.decoder(s * self.action_enc(act_n))


class ForwardModel(nn.Module):
    """``predict(s, a) -> s'`` in raw units; ``obs_mean/obs_std`` ``(obs_dim,)``, ``act_mean/act_std`` ``(act_dim,)``."""

    def __init__(
        self,
        obs_mean: np.ndarray,
        obs_std: np.ndarray,
        act_mean: np.ndarray,
        act_std: np.ndarray,
        kind: str = "advanced",
        width: int = 100,
        decoder: Sequence[int] = (100, 100, 100),
        delta: bool = True,
        members: int = 1,
        activation: str = "relu",
    ):
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"algo.forward_model.kind={kind} is invalid; accepted: {', '.join(KINDS)}")
        obs_std = np.where(np.asarray(obs_std) > 1e-6, obs_std, 1.0)
        act_std = np.where(np.asarray(act_std) > 1e-6, act_std, 1.0)
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(obs_std, dtype=torch.float32))
        self.register_buffer("act_mean", torch.as_tensor(act_mean, dtype=torch.float32))
        self.register_buffer("act_std", torch.as_tensor(act_std, dtype=torch.float32))
        self.kind, self.delta = kind, bool(delta)
        act = ACTIVATIONS[activation]
        self.members = nn.ModuleList(_Network(len(obs_mean), len(act_mean), kind, width, decoder, act) for _ in range(members))
        self.register_load_state_dict_pre_hook(_single_model_keys)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def raw(self, obs_n: torch.Tensor) -> torch.Tensor:
        return obs_n * self.obs_std + self.obs_mean

    def _next(self, m: int, obs_n: torch.Tensor, act_n: torch.Tensor) -> torch.Tensor:
        out = self.members[m](obs_n, act_n)
        return obs_n + out if self.delta else out

    def predict_normalized(self, obs_n: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The members' mean next state, normalised ``(B, obs_dim)``, from a normalised state and a D-encoded action."""
        act_n = (act - self.act_mean) / self.act_std
        if len(self.members) == 1:
            return self._next(0, obs_n, act_n)
        return torch.stack([self._next(m, obs_n, act_n) for m in range(len(self.members))]).mean(0)

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Next raw state ``(B, obs_dim)`` from raw states and D-encoded actions."""
        return self.raw(self.predict_normalized(self.normalize(obs), act))

    def sequence_loss(self, obs_seq: torch.Tensor, act_seq: torch.Tensor) -> torch.Tensor:
        """The training loss (module docstring) of real sequences: raw ``obs_seq (B, H+1, obs_dim)``,
        D-encoded ``act_seq (B, H, act_dim)``; each member unrolls open-loop from ``obs_seq[:, 0]``."""
        target = self.normalize(obs_seq[:, 1:])
        act_n = (act_seq - self.act_mean) / self.act_std
        total = torch.zeros(())
        for m in range(len(self.members)):
            s = self.normalize(obs_seq[:, 0])
            errors = []
            for k in range(act_seq.shape[1]):
                s = self._next(m, s, act_n[:, k])
                errors.append((s - target[:, k]).pow(2).mean())
            total = total + 0.5 * (errors[0] if len(errors) == 1 else torch.stack(errors).mean())
        return total

    def loss(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """The one-step loss of single transitions ``(B, ·)``: :meth:`sequence_loss` with H = 1."""
        return self.sequence_loss(torch.stack([obs, next_obs], 1), act[:, None])

    @torch.no_grad()
    def multi_step_error(self, obs_seq: torch.Tensor, act_seq: torch.Tensor) -> torch.Tensor:
        """Open-loop error per horizon: ``obs_seq (B, K+1, obs_dim)``, ``act_seq (B, K, act_dim)`` -> ``(K,)``.

        Entry ``k`` is the mean squared normalised error of the state predicted ``k+1`` steps
        ahead (the members' mean) from the true first state and the true actions, with no correction in between.
        """
        s = self.normalize(obs_seq[:, 0])
        errors = []
        for k in range(act_seq.shape[1]):
            s = self.predict_normalized(s, act_seq[:, k])
            errors.append((s - self.normalize(obs_seq[:, k + 1])).pow(2).mean())
        return torch.stack(errors)


_SINGLE_MODEL_PARTS = ("net", "state_in", "gru", "state_out", "action_enc", "decoder")


def _single_model_keys(module: nn.Module, state: dict, prefix: str, *args: object) -> None:
    """A checkpoint from before ensembles held one model's weights at the top level: they are member 0's."""
    for key in [k for k in state if k.startswith(prefix) and k[len(prefix) :].split(".")[0] in _SINGLE_MODEL_PARTS]:
        state[f"{prefix}members.0.{key[len(prefix) :]}"] = state.pop(key)


def build_forward_model(fcfg: ForwardModelConfig, obs: np.ndarray, act_encoded: np.ndarray, continuous: bool) -> ForwardModel:
    """A :class:`ForwardModel` from an ``algo.forward_model`` block, normalised by expert ``obs (N, obs_dim)``
    and D-encoded expert actions ``(N, act_dim)`` (one-hot actions are left as they are)."""
    act_dim = act_encoded.shape[1]
    act_mean = act_encoded.mean(0) if continuous else np.zeros(act_dim)
    act_std = act_encoded.std(0) if continuous else np.ones(act_dim)
    return ForwardModel(
        obs.mean(0),
        obs.std(0),
        act_mean,
        act_std,
        kind=fcfg.kind,
        width=fcfg.width,
        decoder=fcfg.decoder,
        delta=fcfg.delta,
        members=fcfg.members,
        activation=fcfg.activation,
    )
