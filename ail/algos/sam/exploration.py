"""Adaptive parameter-space noise (Plappert et al. 2018), as SAM explores.

The behaviour policy acts with a *perturbed copy* of the actor: every weight and bias except
LayerNorm's gets ``N(0, sigma^2)`` noise. The perturbation is drawn at each episode start and
held for the whole episode. ``sigma`` adapts so the perturbed policy's actions stay about
``target_distance`` away from the unperturbed ones (RMS over a replay batch, in the actor's
[-1, 1] action units): ``sigma *= factor`` when the distance is below the target, ``/= factor``
otherwise. Action noise (SB3's ``OrnsteinUhlenbeckActionNoise``) is added on top, then clipped.
"""

from __future__ import annotations

import copy
from typing import Callable, Optional

import torch
from torch import nn


def perturbable(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Named parameters that parameter noise may touch: all but LayerNorm's."""
    skip = {id(p) for m in module.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    return [(name, p) for name, p in module.named_parameters() if id(p) not in skip]


class AdaptiveParamNoise:
    """Holds the perturbed actor and its noise scale ``sigma``."""

    def __init__(self, actor: nn.Module, initial_sigma: float, target_distance: float, factor: float):
        self.sigma = float(initial_sigma)
        self.target_distance = float(target_distance)
        self.factor = float(factor)
        self.perturbed = copy.deepcopy(actor)
        self.last_distance = float("nan")

    @torch.no_grad()
    def _perturb_into(self, actor: nn.Module, copy_: nn.Module, sigma: float, generator: Optional[torch.Generator]) -> None:
        copy_.load_state_dict(actor.state_dict())
        for _, p in perturbable(copy_):
            # Drawn on the CPU whatever the actor's device: one stream, the same perturbations on either.
            p.add_((torch.randn(p.shape, generator=generator) * sigma).to(p.device))

    def resample(self, actor: nn.Module, generator: Optional[torch.Generator] = None) -> None:
        """A new perturbation of the current actor (call at every episode start)."""
        self._perturb_into(actor, self.perturbed, self.sigma, generator)

    @torch.no_grad()
    def adapt(
        self,
        actor: nn.Module,
        obs: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        reduce: Optional[Callable[[float], float]] = None,
    ) -> float:
        """Measure the RMS action distance of a fresh perturbation on ``obs (B, obs_dim)`` and adapt sigma.

        ``reduce`` averages the distance across workers. Returns the distance.
        """
        probe = copy.deepcopy(self.perturbed)
        self._perturb_into(actor, probe, self.sigma, generator)
        distance = float(torch.sqrt(((actor(obs) - probe(obs)) ** 2).mean()))
        if reduce is not None:
            distance = reduce(distance)
        self.sigma = self.sigma * self.factor if distance < self.target_distance else self.sigma / self.factor
        self.last_distance = distance
        return distance
