"""Activation names accepted in configs (``tanh``, ``relu``, ``elu``, ``leaky_relu``, ``silu``) -> torch classes.

Classes, not instances: SB3 stores ``activation_fn`` in a saved policy's constructor data, so
each must be importable by name (hence :class:`LeakyReLU02` rather than a lambda).
"""

from __future__ import annotations

from torch import nn

from ail.errors import ConfigError


class LeakyReLU02(nn.LeakyReLU):
    """sam-tf's leaky ReLU, slope 0.2."""

    def __init__(self) -> None:
        super().__init__(0.2)


ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": LeakyReLU02, "silu": nn.SiLU}


def activation(name: str, key: str) -> type[nn.Module]:
    """The class for ``name``; a one-line error naming config ``key`` otherwise."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"{key}={name} is invalid; accepted: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]
