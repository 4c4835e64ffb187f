"""Networks and Adam over K stacked seeds: every tensor carries a leading seed axis.

A layer of K seeds is one batched matmul, ``y[k] = x[k] @ W[k]^T + b[k]`` with ``x (K, B, in)``,
``W (K, out, in)`` (``nn.Linear``'s layout per seed, so seed ``k``'s slice loads into an SB3
policy as it is) and ``b (K, 1, out)``. Seeds never mix: a loss summed over seeds has, for seed
``k``, exactly the gradient of seed ``k``'s own loss, so one gradient call serves all K.
K = 1 is the single-seed case, not a separate path.

An MLP's parameters are a flat dict: ``l{i}.weight``, ``l{i}.bias`` for linear layer ``i``
(the last one is the head), ``n{i}.weight``, ``n{i}.bias`` for the LayerNorm after hidden layer
``i``; names that map one to one onto the ``nn.Sequential`` MLPs of :mod:`ail.algos.sam.nets`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F

Params = dict[str, torch.Tensor]

_ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": F.relu,
    "elu": F.elu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),  # sam-tf's slope (ail.activations.LeakyReLU02)
    "silu": F.silu,
}


@dataclass(frozen=True)
class MLP:
    """Shape of a stacked MLP: ``sizes = (in, hidden..., out)``; LayerNorm after each hidden activation."""

    sizes: tuple[int, ...]
    activation: str
    layer_norm: bool
    spectral_norm: bool = False

    @property
    def n_linear(self) -> int:
        return len(self.sizes) - 1

    def init(self, generators: list[torch.Generator], head_init: Optional[float] = None) -> Params:
        """``nn.Linear``'s default init (U(+-1/sqrt(in)) for kernel and bias) for one seed per
        generator, each from its own (so a seed starts the same whatever K); the head U(+-head_init) when given."""
        p: Params = {}

        def uniform(bound: float, *shape: int) -> torch.Tensor:
            return torch.stack([(torch.rand(*shape, generator=g) * 2 - 1) * bound for g in generators])

        k = len(generators)
        for i in range(self.n_linear):
            n_in, n_out = self.sizes[i], self.sizes[i + 1]
            bound = head_init if (head_init is not None and i == self.n_linear - 1) else 1.0 / math.sqrt(n_in)
            p[f"l{i}.weight"] = uniform(bound, n_out, n_in)
            p[f"l{i}.bias"] = uniform(bound, 1, n_out)
            if self.layer_norm and i < self.n_linear - 1:
                p[f"n{i}.weight"] = torch.ones(k, 1, n_out)
                p[f"n{i}.bias"] = torch.zeros(k, 1, n_out)
        return p

    def __call__(self, p: Params, x: torch.Tensor) -> torch.Tensor:
        """``x (K, B, in)`` -> ``(K, B, out)``."""
        act = _ACTIVATIONS[self.activation]
        last = self.n_linear - 1
        for i in range(self.n_linear):
            x = torch.baddbmm(p[f"l{i}.bias"], x, p[f"l{i}.weight"].transpose(1, 2))
            if i < last:
                x = act(x)
                if self.layer_norm:
                    x = F.layer_norm(x, x.shape[-1:]) * p[f"n{i}.weight"] + p[f"n{i}.bias"]
        return x

    # ----- spectral normalisation (Miyato et al. 2018), as torch.nn.utils.parametrizations.spectral_norm
    def init_sn(self, generators: list[torch.Generator]) -> Params:
        """Power-iteration vectors ``u{i} (K, out)``, ``v{i} (K, in)`` per linear layer: random unit
        vectors of each seed's generator, then 15 iterations on the initial kernels (as torch does)."""
        sn: Params = {}
        for i in range(self.n_linear):
            n_in, n_out = self.sizes[i], self.sizes[i + 1]
            sn[f"u{i}"] = F.normalize(torch.stack([torch.randn(n_out, generator=g) for g in generators]), dim=-1, eps=1e-12)
            sn[f"v{i}"] = F.normalize(torch.stack([torch.randn(n_in, generator=g) for g in generators]), dim=-1, eps=1e-12)
        return sn

    @torch.no_grad()
    def power_iteration(self, p: Params, sn: Params, steps: int = 1) -> None:
        """``v <- normalize(W^T u)``, ``u <- normalize(W v)`` in place, once per training forward in torch's version."""
        for i in range(self.n_linear):
            w, u, v = p[f"l{i}.weight"], sn[f"u{i}"], sn[f"v{i}"]
            for _ in range(steps):
                v.copy_(F.normalize(torch.bmm(w.transpose(1, 2), u.unsqueeze(-1)).squeeze(-1), dim=-1, eps=1e-12))
                u.copy_(F.normalize(torch.bmm(w, v.unsqueeze(-1)).squeeze(-1), dim=-1, eps=1e-12))

    def spectral(self, p: Params, sn: Optional[Params]) -> Params:
        """``p`` with every kernel divided by its spectral norm estimate ``u^T W v`` (differentiable in
        ``W``, not in ``u, v``); ``p`` itself when ``sn`` is None."""
        if sn is None:
            return p
        out = dict(p)
        for i in range(self.n_linear):
            w = p[f"l{i}.weight"]
            u, v = sn[f"u{i}"].detach(), sn[f"v{i}"].detach()
            sigma = (u * torch.bmm(w, v.unsqueeze(-1)).squeeze(-1)).sum(-1)
            out[f"l{i}.weight"] = w / sigma.view(-1, 1, 1)
        return out

    def hidden_kernels(self) -> list[str]:
        """Names of the hidden layers' kernels (weight decay's scope: no biases, LayerNorm or head)."""
        return [f"l{i}.weight" for i in range(self.n_linear - 1)]

    def head(self) -> tuple[str, str]:
        i = self.n_linear - 1
        return f"l{i}.weight", f"l{i}.bias"


def per_seed_sq_norm(grads: Params) -> torch.Tensor:
    """``(K,)`` squared global norm of each seed's gradients."""
    return sum(g.pow(2).flatten(1).sum(1) for g in grads.values())


def clip_per_seed(grads: Params, max_norm: Optional[float]) -> Params:
    """``torch.nn.utils.clip_grad_norm_`` applied to each seed on its own (same formula and epsilon)."""
    if not max_norm:
        return grads
    scale = (max_norm / (per_seed_sq_norm(grads).sqrt() + 1e-6)).clamp(max=1.0)
    return {n: g * scale.view(-1, *([1] * (g.dim() - 1))) for n, g in grads.items()}


@dataclass(frozen=True)
class Adam:
    """``torch.optim.Adam``'s update (defaults but ``lr``), in place on stacked parameters.

    State: ``beta_pow`` = ``(beta1^t, beta2^t)`` after ``t`` steps (float64, shape (2,), shared:
    seeds move in lockstep) and the moments ``m.<name>``, ``v.<name>`` of every parameter.
    """

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    SHARED = "beta_pow"  # the one state entry without a seed axis (checkpoints keep it whole)

    @staticmethod
    def init(params: Params) -> Params:
        state = {Adam.SHARED: torch.ones(2, dtype=torch.float64)}
        for n, p in params.items():
            state[f"m.{n}"] = torch.zeros_like(p)
            state[f"v.{n}"] = torch.zeros_like(p)
        return state

    def step(self, params: Params, grads: Params, state: Params) -> None:
        # Running powers, not beta ** t: inductor inlines these scalars into every kernel that reads
        # an updated parameter, and a pow there is evaluated once per vector of the kernel's loop.
        b1, b2 = self.betas
        pw = state[Adam.SHARED]
        pow1, pow2 = pw.mul_(torch.tensor(self.betas, dtype=torch.float64, device=pw.device)).unbind()
        step_size = (self.lr / (1.0 - pow1)).float()
        bias2_sqrt = (1.0 - pow2).sqrt().float()
        for n, p in params.items():
            g, m, v = grads[n], state[f"m.{n}"], state[f"v.{n}"]
            m.lerp_(g, 1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            p.sub_(step_size * m / (v.sqrt() / bias2_sqrt + self.eps))


def to_device(tree: Any, device: torch.device) -> Any:
    """A tensor, or a (nested) dict of tensors, on ``device``; itself on the CPU."""
    if device.type == "cpu":
        return tree
    if isinstance(tree, torch.Tensor):
        return tree.to(device, non_blocking=True)
    return {n: to_device(v, device) for n, v in tree.items()}


def polyak(target: Params, source: Params, tau: float) -> None:
    """``target <- (1 - tau) target + tau source``, in place."""
    for n, t in target.items():
        t.lerp_(source[n], tau)
