"""SAM's actor and critic as an SB3 ``TD3Policy``, the form a seed's networks are evaluated and saved in.

SAM trains them stacked (:mod:`ail.algos.sam.stacked`); :func:`sequential_state` exports one seed.
A ``sac`` actor is exported as its deterministic action ``tanh(m)``: the mean half of its head.

sam-tf's forward passes (``networks.py``): ``[Dense(64) -> leaky_relu(0.2) -> LayerNorm] x 2``,
then a head initialised U(-3e-3, 3e-3): ``tanh`` for the actor (scaled to the action bounds
by SB3), a linear output for the critic (in Pop-Art's normalised units when it is on).
Hidden layers keep PyTorch's default init (sam-tf's critic used U(-3e-3, 3e-3) there too, a
quirk not copied). Being a ``TD3Policy``, it saves, loads and predicts like any SB3 policy.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.td3.policies import Actor, TD3Policy
from torch import nn


def mlp(n_in: int, hidden: Sequence[int], n_out: int, activation: type[nn.Module], layer_norm: bool, head_init: Optional[float]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), activation()]
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        n_in = width
    head = nn.Linear(n_in, n_out)
    if head_init is not None:  # else nn.Linear's own init, as SB3's SAC keeps it
        nn.init.uniform_(head.weight, -head_init, head_init)
        nn.init.uniform_(head.bias, -head_init, head_init)
    layers.append(head)
    return nn.Sequential(*layers)


def sequential_state(p: dict[str, torch.Tensor], k: int, layer_norm: bool) -> dict[str, torch.Tensor]:
    """Seed ``k`` of a stacked MLP (:class:`ail.algos.sam.stacked.MLP`) as the state dict of :func:`mlp`'s ``nn.Sequential``."""
    stride = 3 if layer_norm else 2  # Linear, activation[, LayerNorm]
    state = {}
    for name, t in p.items():
        kind, field = name.split(".")
        index = int(kind[1:]) * stride + (2 if kind[0] == "n" else 0)
        state[f"{index}.{field}"] = t[k] if kind[0] == "l" and field == "weight" else t[k].reshape(-1)
    return state


class SAMActor(Actor):
    """``mu(s) = tanh(MLP(s))`` in [-1, 1]^act_dim (SB3 rescales to the env's bounds)."""

    def __init__(self, *args: Any, layer_norm: bool, head_init: Optional[float], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.layer_norm, self.head_init = layer_norm, head_init
        act_dim = int(self.action_space.shape[0])
        self.mu = nn.Sequential(mlp(self.features_dim, self.net_arch, act_dim, self.activation_fn, layer_norm, head_init), nn.Tanh())

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "layer_norm": self.layer_norm, "head_init": self.head_init}


class SAMCritic(ContinuousCritic):
    """``n_critics`` Q heads over ``concat(s, a)``."""

    def __init__(self, layer_norm: bool, head_init: Optional[float], **kwargs: Any):
        super().__init__(**kwargs)
        act_dim = int(self.action_space.shape[0])
        net_arch = kwargs["net_arch"]
        activation = kwargs.get("activation_fn", nn.ReLU)
        self.q_networks = []
        for idx in range(self.n_critics):
            q_net = mlp(int(kwargs["features_dim"]) + act_dim, net_arch, 1, activation, layer_norm, head_init)
            self.add_module(f"qf{idx}", q_net)  # replaces SB3's plain MLP under the same name
            self.q_networks.append(q_net)


class SAMPolicy(TD3Policy):
    """TD3Policy whose actor and critics are :class:`SAMActor` / :class:`SAMCritic`."""

    def __init__(self, *args: Any, layer_norm: bool, head_init: Optional[float], **kwargs: Any):
        self.layer_norm, self.head_init = layer_norm, head_init  # read by make_actor/make_critic during super().__init__
        super().__init__(*args, **kwargs)

    def make_actor(self, features_extractor: Any = None) -> SAMActor:
        kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return SAMActor(layer_norm=self.layer_norm, head_init=self.head_init, **kwargs).to(self.device)

    def make_critic(self, features_extractor: Any = None) -> SAMCritic:
        kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return SAMCritic(layer_norm=self.layer_norm, head_init=self.head_init, **kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "layer_norm": self.layer_norm, "head_init": self.head_init}
