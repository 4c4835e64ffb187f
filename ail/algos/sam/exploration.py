"""How SAM explores, for K stacked seeds: adaptive parameter noise and action noise.

**Parameter noise** (Plappert et al. 2018). The behaviour policy acts with a *perturbed copy* of
the actor: every weight and bias except LayerNorm's gets ``N(0, sigma^2)`` noise, drawn when the
seed's episode starts and held for the whole episode. ``sigma`` adapts so the perturbed
policy's actions stay about ``target_distance`` away from the unperturbed ones (RMS over a
replay batch, in the actor's [-1, 1] units): ``sigma *= factor`` when the distance is below the
target, ``/= factor`` otherwise (the distance averaged over gloo workers). Each seed has its own
``sigma`` and perturbation.

**Action noise** on top, then clipped to [-1, 1]: Ornstein-Uhlenbeck
``x <- x + theta (mu - x) dt + sigma sqrt(dt) N(0, 1)`` (SB3's defaults theta = 0.15, dt = 1e-2,
reset to 0 at each episode start) or Gaussian ``N(0, sigma^2)``. Written here rather than taken
from SB3's ``ActionNoise`` classes because those draw from numpy's global stream, which K seeds in
one process would share; here seed ``k`` draws from its own generator.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import torch

from ail import distributed
from ail.algos.sam.stacked import Params


def perturbable(name: str) -> bool:
    """Parameter noise touches linear layers (``l*``), not LayerNorm (``n*``)."""
    return name.startswith("l")


class ParamNoise:
    """K seeds' perturbed actors and their scales ``sigma (K,)``."""

    def __init__(self, sample: Callable[..., Any], k: int, initial_sigma: float, factor: float):
        self.sample = sample  # the update's policy (SAMUpdate.sample): params, obs -> its deterministic action
        self.sigma = np.full(k, initial_sigma, dtype=np.float64)
        self.target_distance, self.factor = initial_sigma, factor
        self.perturbed: Optional[Params] = None
        self.last_distance = np.full(k, np.nan)

    def _draw(self, params: Params, generators: list[torch.Generator], seeds: list[int]) -> Params:
        """``params`` with seed ``k in seeds`` perturbed by its own draws (the others' rows unchanged)."""
        out = {n: t.clone() for n, t in params.items()}
        for k in seeds:
            for n, t in out.items():
                if perturbable(n):
                    # Drawn on the CPU whatever the device: one stream, the same perturbations on either.
                    t[k] += (torch.randn(t.shape[1:], generator=generators[k]) * float(self.sigma[k])).to(t.device)
        return out

    def resample(self, params: Params, generators: list[torch.Generator], seeds: list[int]) -> None:
        """New perturbations of the current actor for the seeds in ``seeds`` (their episodes start)."""
        if self.perturbed is None:
            self.perturbed = self._draw(params, generators, list(range(len(generators))))
            return
        fresh = self._draw(params, generators, seeds)
        for n, t in self.perturbed.items():
            t[seeds] = fresh[n][seeds]

    @torch.no_grad()
    def adapt(self, params: Params, obs_n: torch.Tensor, generators: list[torch.Generator]) -> None:
        """Measure each seed's RMS action distance of a fresh perturbation on ``obs_n (K, B, obs)`` and adapt its sigma."""
        probe = self._draw(params, generators, list(range(len(generators))))
        diff = self.sample(params, obs_n).action - self.sample(probe, obs_n).action
        (dist,) = distributed.sum_tensors(diff.pow(2).flatten(1).mean(1).double())
        distance = (dist / distributed.world_size()).sqrt().cpu().numpy()
        self.sigma = np.where(distance < self.target_distance, self.sigma * self.factor, self.sigma / self.factor)
        self.last_distance = distance

    def state_dict(self, k: int) -> dict[str, Any]:
        perturbed = {n: t[k].clone() for n, t in self.perturbed.items()}
        return {"sigma": float(self.sigma[k]), "last_distance": float(self.last_distance[k]), "perturbed": perturbed}

    def load_state_dict(self, k: int, state: dict[str, Any]) -> None:
        self.sigma[k], self.last_distance[k] = state["sigma"], state["last_distance"]
        for n, t in self.perturbed.items():
            t[k] = state["perturbed"][n]


class ActionNoise:
    """One seed's action noise (``kind``: ou | normal | none) from its own generator."""

    def __init__(self, kind: str, sigma: float, act_dim: int, theta: float = 0.15, dt: float = 1e-2):
        self.kind, self.sigma, self.theta, self.dt = kind, sigma, theta, dt
        self.x = np.zeros(act_dim)

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "ou":
            self.x = self.x - self.theta * self.x * self.dt + self.sigma * np.sqrt(self.dt) * rng.normal(size=self.x.shape)
            return self.x
        if self.kind == "normal":
            return self.sigma * rng.normal(size=self.x.shape)
        return np.zeros_like(self.x)

    def reset(self) -> None:
        self.x = np.zeros_like(self.x)
