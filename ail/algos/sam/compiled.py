"""SAM's update step as compiled graphs (``algo.compile=true``).

Why: with 64-unit MLPs and a 256 batch, every kernel is tiny, so the eager update in
:mod:`ail.algos.sam.agent` spends most of its time dispatching a few hundred small ops per
update. Here each gradient is ``torch.func.grad`` of a pure function of a parameter dict
(``functional_call`` on the very modules SB3 owns), and ``torch.compile`` turns forward and
backward into one fused graph. Going through ``torch.func`` also lets the compiler trace the
discriminator's gradient penalty, a double backward that plain ``torch.compile`` with
``loss.backward()`` (AOTAutograd) refuses.

The math is the eager path's, term for term (each function names its eager twin); the random
draws (label smoothing, penalty interpolation, target-policy noise) are made outside the graphs
in the eager order, so both paths consume one random stream. Gradients land in ``p.grad`` and
the agent's usual step (worker averaging, clipping, Adam) applies them.
``tests/test_sam_compiled.py`` checks each function against its eager twin.

Where compilation is unavailable (no C++ compiler for inductor, an unsupported platform) the
first call fails, a one-line warning is printed, and the same functions run uncompiled through
``torch.func``: the run continues with identical math.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ail.algos.sam.replay import nstep_return
from ail.discriminator import reward_from_logits

Params = dict[str, torch.Tensor]

# torch.func.grad hands out one shared wrapper function, so the compiled gradients of every agent
# in a process (three per agent and device) are cache entries of a single code object; torch's
# default of 8 would send a process with a few agents (tests, benchmarks) back to eager.
_LIMIT = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"  # torch < 2.6
setattr(torch._dynamo.config, _LIMIT, max(int(getattr(torch._dynamo.config, _LIMIT)), 64))


def params_of(module: torch.nn.Module) -> Params:
    """Detached views of a module's parameters (same storage), the inputs ``torch.func`` differentiates."""
    return {k: p.detach() for k, p in module.named_parameters()}


def set_grads(module: torch.nn.Module, grads: Params) -> None:
    for k, p in module.named_parameters():
        p.grad = grads[k]


class Compiled:
    """``fn`` compiled on first use; falls back to ``fn`` itself (eager ``torch.func``) if that fails.

    ``cuda_graphs``: on a GPU, compile with ``mode="reduce-overhead"``: each call replays one CUDA
    graph instead of launching its kernels one by one. At these sizes a kernel computes for a
    microsecond or two and its launch costs several, so launches are the GPU update's cost
    (docs/performance.md). Each call starts a new CUDA-graph iteration: the outputs of the
    previous call are then overwritten, so callers use a call's outputs before the next call
    (SAM does: gradients are applied, targets normalised, logs read in between) and drop them.
    If that mode fails, the plain compiled graph is tried next, then no compilation.
    """

    def __init__(self, fn: Callable[..., Any], name: str, enabled: bool, cuda_graphs: bool = False):
        self.fn, self.name = fn, name
        self.modes: list[Optional[str]] = ((["reduce-overhead"] if cuda_graphs else []) + [None]) if enabled else []
        self.compiled = self._next()

    def _next(self) -> Optional[Callable[..., Any]]:
        if not self.modes:
            return None
        self.mode = self.modes.pop(0)
        return torch.compile(self.fn, dynamic=False, fullgraph=True, mode=self.mode)

    def __call__(self, *args: Any) -> Any:
        while self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as exc:  # a missing toolchain or an op inductor cannot lower: same math, another way
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                failed = f"torch.compile(mode={self.mode!r})" if self.mode else "torch.compile"
                self.compiled = self._next()
                then = (
                    "running it uncompiled"
                    if self.compiled is None
                    else f"trying torch.compile(mode={self.mode!r})"
                    if self.mode
                    else "trying torch.compile without CUDA graphs"
                )
                print(f"[sam] {failed} of the {self.name} step failed ({type(exc).__name__}: {first[:160]}); {then}", file=sys.stderr, flush=True)
        return self.fn(*args)


class CompiledSteps:
    """The discriminator, target, critic and actor computations of one SAM update.

    Built once per agent from its settings (constants of the graphs) and modules.
    """

    def __init__(self, agent: Any, enabled: bool = True):
        s = agent.s
        disc, critic, actor = agent.disc, agent.critic, agent.actor
        critic_t, actor_t = agent.critic_target, agent.actor_target
        gamma, kind, popart = float(agent.gamma), str(s.reward), agent.popart is not None
        ent_w, gp_w = float(s.entropy_weight), float(s.grad_penalty)
        loss_fn = F.smooth_l1_loss if s.critic_loss == "huber" else F.mse_loss
        hidden = {id(w) for w in critic.hidden_weights()}
        hidden_names = [k for k, p in critic.named_parameters() if id(p) in hidden]
        wd, one_step, q_scale = float(s.weight_decay), bool(s.one_step_loss), float(s.q_scale)

        def d_loss(p: Params, x_e: torch.Tensor, x_p: torch.Tensor, y_e: torch.Tensor, eps: torch.Tensor) -> Any:
            """Discriminator.loss on features (see ail/discriminator.py); returns (loss, 7 logs)."""

            def f(x: torch.Tensor) -> torch.Tensor:
                return functional_call(disc, p, (x,))

            f_e, f_p = f(x_e), f(x_p)
            loss = F.binary_cross_entropy_with_logits(f_e, y_e) + F.binary_cross_entropy_with_logits(f_p, torch.zeros_like(f_p))
            f_all = torch.cat([f_e, f_p])
            entropy = (F.softplus(f_all) - f_all * torch.sigmoid(f_all)).mean()
            loss = loss - ent_w * entropy
            gp = loss.new_zeros(())
            if gp_w > 0:
                n = eps.shape[0]
                x_hat = eps * x_e[:n] + (1 - eps) * x_p[:n]
                g = grad(lambda x: f(x).sum())(x_hat)  # grad_x f per sample (rows are independent)
                gp = (g.norm(2, dim=1) - 1).pow(2).mean()
                loss = loss + gp_w * gp
            logs = torch.stack(
                [loss, torch.sigmoid(f_e).mean(), torch.sigmoid(f_p).mean(), (f_e > 0).float().mean(), (f_p < 0).float().mean(), entropy, gp]
            ).detach()
            return loss, logs

        def targets(
            dp: Params,
            atp: Params,
            ctp: Params,
            x_win: Optional[torch.Tensor],
            r_stored: Optional[torch.Tensor],
            next_all: torch.Tensor,
            noise: Optional[torch.Tensor],
            term1: torch.Tensor,
            valid: torch.Tensor,
            length: torch.Tensor,
            terminal: torch.Tensor,
            v_abs: torch.Tensor,
            pop_mean: torch.Tensor,
            pop_sigma: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """SAM._eager_targets: D's rewards on the windows, Q' on both bootstraps, y_1 and y_n (return units)."""
            b, n = valid.shape
            if x_win is not None:
                r_win = reward_from_logits(functional_call(disc, dp, (x_win,)), kind).reshape(b, n)
            else:
                r_win = r_stored
            next_act = functional_call(actor_t, atp, (next_all,))
            if noise is not None:
                next_act = (next_act + noise).clamp(-1, 1)
            q = torch.cat(functional_call(critic_t, ctp, (next_all, next_act)), dim=1).min(dim=1).values
            if popart:
                q = (q.double() * pop_sigma + pop_mean).to(q.dtype)
            y1 = r_win[:, 0] + gamma * torch.where(term1, v_abs, q[:b])
            yn = nstep_return(r_win, valid, length, terminal, q[b:], gamma, v_abs) if n > 1 else y1
            return r_win, y1, yn

        def critic_loss(p: Params, obs: torch.Tensor, act: torch.Tensor, y1_t: torch.Tensor, yn_t: torch.Tensor) -> Any:
            """The eager critic loss of SAM.update_actor_critic (normalised units with Pop-Art)."""
            loss = obs.new_zeros(())
            for q in functional_call(critic, p, (obs, act)):
                q = q.squeeze(1)
                loss = loss + loss_fn(q, yn_t) + (loss_fn(q, y1_t) if one_step else 0.0)
            loss = loss + wd * 0.5 * sum((p[k] ** 2).sum() for k in hidden_names)
            return loss, loss.detach()

        def actor_loss(p: Params, cp: Params, obs: torch.Tensor, pop_mean: torch.Tensor, pop_sigma: torch.Tensor) -> Any:
            """The eager actor loss of SAM.update_actor_critic (critic head 1, in return units)."""
            mu = functional_call(actor, p, (obs,))
            q = functional_call(critic, cp, (obs, mu))[0].squeeze(1)
            if popart:
                q = (q.double() * pop_sigma + pop_mean).to(q.dtype)
            loss = -q_scale * q.mean()
            return loss, loss.detach()

        # The plain functions, for transforms other than grad (benchmarks/seed_stacking.py vmaps them over seeds).
        self.functions = {"d_loss": d_loss, "targets": targets, "critic_loss": critic_loss, "actor_loss": actor_loss}
        self.cuda_graphs = enabled and agent.device.type == "cuda"
        graphs = self.cuda_graphs
        self.d_grads = Compiled(grad(d_loss, has_aux=True), "discriminator", enabled, graphs)
        self.targets = Compiled(targets, "target", enabled, graphs)
        self.critic_grads = Compiled(grad(critic_loss, has_aux=True), "critic", enabled, graphs)
        self.actor_grads = Compiled(grad(actor_loss, has_aux=True), "actor", enabled, graphs)
        # Detached views share storage with the parameters, and every update of them (optimiser
        # steps, Pop-Art rescaling, Polyak averaging, checkpoint loading) is in place: build once.
        self.params = {name: params_of(getattr(agent, name)) for name in ("disc", "critic", "actor", "critic_target", "actor_target")}
        if graphs:
            # Fixed addresses: the CUDA graphs read the parameters in place instead of copying them in at every call.
            for views in self.params.values():
                for t in views.values():
                    torch._dynamo.mark_static_address(t)


class StackedSteps:
    """One SAM update of K seeds at once: per-seed inputs, one vmapped call per step, per-seed finish.

    ``models``: K :class:`ail.algos.sam.agent.SAM` agents built with ``compile`` on (their
    :class:`CompiledSteps` hold the functions and parameter views), identical in settings and
    shapes, each with its own replay, generators, Pop-Art statistics and optimisers. The stacked
    call gives each seed the gradients its own call would, to float tolerance
    (tests/test_sam_compiled.py). Used by ``train.seeds_per_process=K`` (ail/algos/sam/learner.py);
    measured by benchmarks/seed_stacking.py (docs/performance.md).
    """

    def __init__(self, models: list[Any], enabled: bool = True):
        if not all(m.fast is not None and m._fast_d and m._fast_actor for m in models):
            raise ValueError(
                "StackedSteps needs agents built with the functional update (algo.compile=true or "
                "train.seeds_per_process>1) and without absorbing states, spectral norm or the reward-gradient actor term"
            )
        self.models, self.enabled = models, enabled
        fns = models[0].fast.functions  # closures over seed 0's modules: only their structure is used
        self.d = grad(fns["d_loss"], has_aux=True)
        self.c = grad(fns["critic_loss"], has_aux=True)
        self.a = grad(fns["actor_loss"], has_aux=True)
        self.t = fns["targets"]
        self.cache: dict[str, Compiled] = {}

    def _call(self, name: str, fn: Any, *args: Any) -> Any:
        if name not in self.cache:  # in_dims: 0 for every tensor and parameter dict, None for absent inputs
            dims = tuple(None if a is None else 0 for a in args)
            graphs = self.enabled and self.models[0].device.type == "cuda"
            self.cache[name] = Compiled(vmap(fn, in_dims=dims), f"stacked {name}", self.enabled, graphs)
        return self.cache[name](*args)

    def _params(self, name: str) -> dict[str, torch.Tensor]:
        ps = [m.fast.params[name] for m in self.models]
        return {k: torch.stack([p[k] for p in ps]) for k in ps[0]}

    @staticmethod
    def _stack(per_seed: list[tuple[Any, ...]]) -> list[Any]:
        return [None if col[0] is None else torch.stack(col) for col in zip(*per_seed)]

    def update_discriminator(self) -> list[dict[str, float]]:
        ms = self.models
        grads, values = self._call("d", self.d, self._params("disc"), *self._stack([m.d_inputs() for m in ms]))
        return [m.d_finish({n: g[k] for n, g in grads.items()}, values[k]) for k, m in enumerate(ms)]

    def update_actor_critic(self) -> list[dict[str, float]]:
        ms = self.models
        batches = [m.ac_batch() for m in ms]
        r_win, y1, yn = self._call(
            "t",
            self.t,
            self._params("disc"),
            self._params("actor_target"),
            self._params("critic_target"),
            *self._stack([m.target_inputs(b) for m, b in zip(ms, batches)]),
        )
        ins = self._stack([m.critic_inputs(b, r_win[k], y1[k], yn[k]) for k, (m, b) in enumerate(zip(ms, batches))])
        grads, loss = self._call("c", self.c, self._params("critic"), *ins)
        logs = [m.critic_finish(b, {n: g[k] for n, g in grads.items()}, loss[k]) for k, (m, b) in enumerate(zip(ms, batches))]
        if ms[0].actor_due():  # the seeds move in lockstep: same update count
            pop = self._stack([m.popart_inputs() for m in ms])
            grads, loss = self._call("a", self.a, self._params("actor"), self._params("critic"), ins[0], *pop)
            for k, m in enumerate(ms):
                logs[k].update(m.actor_finish({n: g[k] for n, g in grads.items()}, loss[k]))
        return logs

    def update(self) -> None:
        """One discriminator and one actor-critic update of every seed."""
        self.update_discriminator()
        self.update_actor_critic()

    def train(self, gradient_steps: int) -> None:
        """``SAM.train`` for all K seeds at once (each seed's ``logs`` set as its own would be)."""
        from ail.algos.sam.agent import train_agents  # here: agent imports this module

        train_agents(self.models, gradient_steps, self.update_discriminator, self.update_actor_critic)
