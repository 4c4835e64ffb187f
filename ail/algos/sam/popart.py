"""Pop-Art (van Hasselt et al. 2016): learn values in normalised units and Preserve Outputs
Precisely while Adaptively Rescaling Targets.

The critic's last linear layer predicts ``q_n``; its value in return units is ``q = sigma * q_n + mu``.
When the target statistics move from ``(mu, sigma)`` to ``(mu', sigma')``, every output layer
(online *and* target critics) is rescaled so ``q`` is unchanged::

    W <- W * sigma / sigma'        b <- (sigma * b + mu - mu') / sigma'

The loss then compares the normalised prediction with the normalised target ``(y - mu') / sigma'``
(sam-tf compared a de-normalised prediction with a normalised target: a unit mismatch).
Statistics are a count-weighted running mean and variance of every target (scalar), with
``sigma = sqrt(max(var, min_var))`` (sam-tf: min_var = 1e-2, so sigma >= 0.1).
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch
from torch import nn

Moments = tuple[float, float, float]  # (sum, sum of squares, count)


class PopArt(nn.Module):
    """Scalar target statistics in float64 buffers (saved with the module)."""

    def __init__(self, min_var: float):
        super().__init__()
        self.min_var = float(min_var)
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("var", torch.ones((), dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @property
    def sigma(self) -> torch.Tensor:
        return torch.sqrt(torch.clamp(self.var, min=self.min_var))

    def normalize(self, y: torch.Tensor) -> torch.Tensor:
        return ((y.double() - self.mean) / self.sigma).to(y.dtype)

    def denormalize(self, q_n: torch.Tensor) -> torch.Tensor:
        return (q_n.double() * self.sigma + self.mean).to(q_n.dtype)

    @torch.no_grad()
    def update(
        self,
        targets: torch.Tensor,
        layers: Iterable[nn.Linear],
        reduce: Optional[Callable[[Moments], Moments]] = None,
    ) -> None:
        """Fold ``targets`` (any shape, return units) into the statistics and rescale ``layers``.

        ``reduce`` sums the batch moments across workers (``ail.distributed``) so every worker
        keeps identical statistics.
        """
        y = targets.detach().double().reshape(-1)
        moments: Moments = (float(y.sum()), float((y * y).sum()), float(y.numel()))
        if reduce is not None:
            moments = reduce(moments)
        s, ss, n = moments
        batch_mean = s / n
        batch_var = max(ss / n - batch_mean**2, 0.0)
        old_mean, old_sigma = self.mean.clone(), self.sigma.clone()
        delta = batch_mean - self.mean
        total = self.count + n
        new_mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / total)
        self.count.copy_(total)
        new_sigma = self.sigma
        for layer in layers:
            layer.weight.mul_((old_sigma / new_sigma).to(layer.weight.dtype))
            layer.bias.copy_(((old_sigma * layer.bias.double() + old_mean - new_mean) / new_sigma).to(layer.bias.dtype))
