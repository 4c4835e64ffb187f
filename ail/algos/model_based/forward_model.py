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

``delta=True`` (Dyna-AIL eq. 5) predicts the change: ``s'_n = s_n + f``; ``delta=False``
(MGAIL's code) predicts ``s'_n`` directly. The loss is ``0.5 * mean ||target - f||^2`` over
normalised coordinates either way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ail.algos.model_based.config import ForwardModelConfig
from ail.errors import ConfigError

KINDS = ("basic", "advanced")


def _mlp(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, int(width)), nn.ReLU()]
        n_in = int(width)
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


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
        obs_dim, act_dim = len(obs_mean), len(act_mean)
        if kind == "basic":
            self.net = _mlp(obs_dim + act_dim, [width, *decoder], obs_dim)
        else:
            self.state_in = nn.Sequential(nn.Linear(obs_dim, width), nn.ReLU())
            self.gru = nn.GRUCell(width, width)
            self.state_out = nn.Sequential(nn.Linear(width, width), nn.Sigmoid())
            self.action_enc = nn.Sequential(nn.Linear(act_dim, width), nn.ReLU(), nn.Linear(width, width), nn.Sigmoid())
            self.decoder = _mlp(width, decoder, obs_dim)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def raw(self, obs_n: torch.Tensor) -> torch.Tensor:
        return obs_n * self.obs_std + self.obs_mean

    def forward(self, obs_n: torch.Tensor, act_n: torch.Tensor) -> torch.Tensor:
        """The network's output ``(B, obs_dim)`` from normalised inputs (a delta when ``delta``)."""
        if self.kind == "basic":
            return self.net(torch.cat([obs_n, act_n], dim=1))
        h0 = torch.ones(len(obs_n), self.gru.hidden_size)
        s = self.state_out(self.gru(self.state_in(obs_n), h0))
        return self.decoder(s * self.action_enc(act_n))

    def predict_normalized(self, obs_n: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        act_n = (act - self.act_mean) / self.act_std
        out = self(obs_n, act_n)
        return obs_n + out if self.delta else out

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Next raw state ``(B, obs_dim)`` from raw states and D-encoded actions."""
        return self.raw(self.predict_normalized(self.normalize(obs), act))

    def loss(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """``0.5 * mean ||s'_n - f(s_n, a_n)||^2`` (per coordinate), the squared loss of eq. 5."""
        obs_n, next_n = self.normalize(obs), self.normalize(next_obs)
        pred = self.predict_normalized(obs_n, act)
        return 0.5 * (pred - next_n).pow(2).mean()

    @torch.no_grad()
    def multi_step_error(self, obs_seq: torch.Tensor, act_seq: torch.Tensor) -> torch.Tensor:
        """Open-loop error per horizon: ``obs_seq (B, K+1, obs_dim)``, ``act_seq (B, K, act_dim)`` -> ``(K,)``.

        Entry ``k`` is the mean squared normalised error of the state predicted ``k+1`` steps
        ahead from the true first state and the true actions, with no correction in between.
        """
        s = self.normalize(obs_seq[:, 0])
        errors = []
        for k in range(act_seq.shape[1]):
            s = self.predict_normalized(s, act_seq[:, k])
            errors.append((s - self.normalize(obs_seq[:, k + 1])).pow(2).mean())
        return torch.stack(errors)


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
    )
