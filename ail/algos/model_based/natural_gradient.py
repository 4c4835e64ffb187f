"""A TRPO-rule step for a differentiable policy loss (Dyna-AIL section 5's variant).

Given the loss gradient ``g`` (here the pathwise gradient through D and the forward model),
solve ``F s = g`` by conjugate gradient, where ``F`` is the Fisher matrix of the policy at the
unroll's states (Fisher-vector products by double backprop of the mean KL, plus ``cg_damping``),
and step ``theta <- theta - sqrt(2 delta / s^T F s) s``; shrink the step (``backtrack_ratio``) until
the mean ``KL(pi_old || pi_new) <= kl_accept * delta`` (``algo.trust_region``: conf/algo/dyna.yaml).
Policy KLs, with D's fixed exploration noise:
Gaussian ``||mu_new - mu_old||^2 / (2 sigma^2)`` (normalised units), categorical on the logits.
The paper's variant used TRPO with a score-function gradient; keeping the pathwise gradient
and adding only the trust region is this project's reading (docs/notes/mgail_dyna.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ail.algos.model_based.config import TrustRegionConfig
from ail.algos.model_based.diff_policy import DiffPolicy


def mean_kl(policy: DiffPolicy, states: torch.Tensor, old_head: torch.Tensor) -> torch.Tensor:
    """``mean_s KL(pi_old(.|s) || pi(.|s))`` from the old head outputs ``(B, act_dim)``."""
    head = policy.head(states)
    if policy.discrete:
        logp_old = F.log_softmax(old_head, -1)
        return (logp_old.exp() * (logp_old - F.log_softmax(head, -1))).sum(-1).mean()
    return (head - old_head).pow(2).sum(-1).mean() / (2.0 * policy.noise_std**2)


def conjugate_gradient(fvp, b: torch.Tensor, iters: int = 10, tol: float = 1e-10) -> torch.Tensor:
    """Approximate ``F^{-1} b`` with ``iters`` CG steps; ``fvp(v) = F v``."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iters):
        fp = fvp(p)
        alpha = rr / (p @ fp + 1e-12)
        x += alpha * p
        r -= alpha * fp
        rr_new = r @ r
        if rr_new < tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def natural_gradient_step(policy: DiffPolicy, loss: torch.Tensor, states: torch.Tensor, region: TrustRegionConfig) -> tuple[bool, float]:
    """Apply one trust-region step to ``policy``; returns (applied, KL of the step taken)."""
    params = [p for p in policy.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    g = torch.cat([(gr if gr is not None else torch.zeros_like(p)).reshape(-1) for gr, p in zip(grads, params)])
    if not torch.isfinite(g).all() or float(g.norm()) == 0.0:
        return False, 0.0
    states = states.detach()
    with torch.no_grad():
        old_head = policy.head(states)
    kl_grad = torch.autograd.grad(mean_kl(policy, states, old_head), params, create_graph=True)
    flat_kl_grad = torch.cat([k.reshape(-1) for k in kl_grad])

    def fvp(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(flat_kl_grad @ v, params, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]) + region.cg_damping * v

    step_dir = conjugate_gradient(fvp, g, region.cg_iters)
    shs = float(step_dir @ fvp(step_dir))
    if not shs > 0:
        return False, 0.0
    full_step = (2.0 * region.max_kl / shs) ** 0.5 * step_dir
    old = torch.nn.utils.parameters_to_vector(params).detach().clone()
    for frac in (region.backtrack_ratio**k for k in range(region.backtrack_steps)):
        torch.nn.utils.vector_to_parameters(old - frac * full_step, params)
        with torch.no_grad():
            kl = float(mean_kl(policy, states, old_head))
        if kl <= region.kl_accept * region.max_kl:
            return True, kl
    torch.nn.utils.vector_to_parameters(old, params)
    return False, 0.0
