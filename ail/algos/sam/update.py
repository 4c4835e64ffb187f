"""SAM's update, written once: one function over K stacked seeds, run compiled or as it is.

One call of :meth:`SAMUpdate.update` is one SAM update of every seed (paper Algorithm 1, one
discriminator step and one actor-critic step), in this order:

1. **Discriminator.** D's input statistics fold in the batch's policy and expert observations.
   ``L_D = BCE(f(x_p), 0) + BCE(f(x_e), y_e) - w_ent H(D) + lambda mean_b (||grad_x f(x_hat_b)|| - 1)^2``
   (label convention and terms: :mod:`ail.discriminator`; expert = 1, policy = 0; ``y_e`` and the
   penalty's ``eps`` are drawn by the caller). With absorbing states every terminal transition
   also adds an absorbing pair on its side (a masked extra batch of B rows, so shapes are fixed).
2. **Targets** with the just-updated D: rewards ``r = reward(f(s, a))`` of every window step
   (or the stored ones), ``Q' = min_j Q'_j(s', mu'(s') [+ clipped noise])`` for both bootstraps,
   ``y_1 = r_0 + gamma (term_0 ? V_abs : Q'(s_1))`` and the n-step ``y_n``
   (:func:`ail.algos.sam.replay.nstep_return`); ``V_abs = r(absorbing) / (1 - gamma)`` or 0.
3. **Pop-Art** folds ``y_1, y_n`` into each seed's statistics and rescales the online and target
   heads so their outputs in return units are unchanged (:meth:`SAMUpdate.popart_fold`).
4. **Critic.** ``L_Q = sum_j [l(Q_j, y_n) + l(Q_j, y_1)] + nu/2 sum ||W_hidden||^2`` in
   normalised units (``l``: Huber or MSE; the 1-step term optional).
5. **Actor** (every ``policy_delay`` updates): ``L_mu = -q_scale mean Q_1(s, mu(s)) - d_scale mean r(s, mu(s))
   + preact_penalty mean u(s)^2``, where ``mu = tanh(u)`` (``u``: the actor's output before the tanh).
6. **Polyak** on both targets.

Every gradient is per seed (losses are summed over the seed axis), clipped per seed to
``grad_clip``, averaged over gloo workers when there are any (:mod:`ail.distributed`), and
applied by :class:`ail.algos.sam.stacked.Adam`. All state is updated in place; the function
returns ``(K, len(LOGS))`` statistics. ``torch.compile(update)`` is the fast path and
``update`` itself the eager reference: the same code, so nothing is written twice
(:class:`ail.algos.sam.compile.Compiled` runs it compiled, with its fallbacks).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ail import distributed
from ail.algos.sam.config import SAMConfig
from ail.algos.sam.replay import nstep_return
from ail.algos.sam.stacked import MLP, Adam, Params, clip_per_seed, polyak
from ail.discriminator import check_obs_slice, reward_from_logits

LOGS = (
    "d_loss",
    "d_expert",
    "d_policy",
    "d_acc_expert",
    "d_acc_policy",
    "d_entropy",
    "d_grad_penalty",
    "critic_loss",
    "target_mean",
    "reward_mean",
    "actor_loss",
)


def grad(f: Callable[..., Any], has_aux: bool = False, create_graph: bool = False) -> Callable[..., Any]:
    """``torch.func.grad(f, has_aux=has_aux)``: the gradient of ``f`` with respect to its first
    argument (a tensor or a dict of them). torch.compile traces ``torch.func.grad``; run eagerly,
    the same gradient comes from plain autograd, whose per-op overhead is lower than functorch's.
    ``create_graph``: the gradient is itself differentiated (the gradient penalty inside D's loss)."""
    if torch.compiler.is_compiling():
        return torch.func.grad(f, has_aux=has_aux)

    def eager(p: Any, *args: Any) -> Any:
        leaves = {n: t.detach().requires_grad_() for n, t in p.items()} if isinstance(p, dict) else p.detach().requires_grad_()
        out = f(leaves, *args)
        loss, aux = out if has_aux else (out, None)
        flat = list(leaves.values()) if isinstance(p, dict) else [leaves]
        grads = torch.autograd.grad(loss, flat, create_graph=create_graph)
        g = dict(zip(leaves, grads)) if isinstance(p, dict) else grads[0]
        return (g, aux) if has_aux else g

    return eager


def _head(p: Params, j: int) -> Params:
    prefix = f"q{j}."
    return {k[len(prefix) :]: v for k, v in p.items() if k.startswith(prefix)}


class SAMUpdate:
    """The update of K stacked seeds for fixed shapes and settings (a change of either is a new graph).

    :param algo: SAM's validated settings (``conf/algo/sam.yaml``); the update reads them as they are.
    :param actor: ``obs_dim -> act_dim`` (tanh applied here: actions in [-1, 1]).
    :param critic: ``obs_dim + act_dim -> 1``, one per head (parameters ``q{j}.<name>``).
    :param disc: ``d_obs_dim + act_dim -> 1`` logits (``d_obs_dim``: the observation entries D
        judges, ``algo.discriminator.obs_slice``, and the absorbing indicator).
    :param act_low: ``(act_dim,)`` the env's action bounds: D sees env-unit actions, as the expert's are.
    """

    def __init__(self, algo: SAMConfig, actor: MLP, critic: MLP, disc: MLP, act_low: torch.Tensor, act_high: torch.Tensor):
        self.algo, self.actor, self.critic, self.disc = algo, actor, critic, disc
        self.act_low, self.act_span = act_low.float(), (act_high - act_low).float()
        self.opt = {"actor": Adam(algo.actor.lr), "critic": Adam(algo.critic.lr), "disc": Adam(algo.discriminator.lr)}
        # The env's reward (algo.reward=env) is stored at collection, as sam-tf stored D's (stale) one.
        self.recompute_rewards = algo.recompute_rewards and algo.reward != "env"
        self.obs_clip = algo.obs_clip if algo.normalize_obs else math.inf  # unnormalised: raw, unclipped
        self.obs_dim = actor.sizes[0]
        self.d_judged = check_obs_slice(algo.discriminator.obs_slice, self.obs_dim)
        self.d_narrowed = self.d_judged != slice(0, self.obs_dim)
        self.d_norm_dim = self.d_judged.stop - self.d_judged.start

    def to(self, device: torch.device) -> "SAMUpdate":
        """The action bounds on ``device`` (the state and batches are moved by the caller)."""
        self.act_low, self.act_span = self.act_low.to(device), self.act_span.to(device)
        return self

    @classmethod
    def build(cls, algo: SAMConfig, obs_dim: int, act_low: torch.Tensor, act_high: torch.Tensor) -> "SAMUpdate":
        """The update for SAM's settings and a task's shapes (raw observations, Box actions ``(act_dim,)``)."""
        act_dim = int(act_low.shape[0])
        net, d = algo.network, algo.discriminator
        actor = MLP((obs_dim, *net.hidden, act_dim), net.activation, net.layer_norm)
        critic = MLP((obs_dim + act_dim, *net.hidden, 1), net.activation, net.layer_norm)
        judged = check_obs_slice(d.obs_slice, obs_dim)
        d_in = judged.stop - judged.start + (1 if algo.absorbing else 0) + act_dim
        disc = MLP((d_in, *d.hidden, 1), d.activation, d.layer_norm, d.spectral_norm)
        return cls(algo, actor, critic, disc, act_low, act_high)

    def init_state(self, generators: list[torch.Generator], head_init: float) -> dict[str, Params]:
        """Fresh state of K seeds, seed ``k``'s networks drawn from ``generators[k]``: networks
        (targets = online), optimiser moments, statistics."""
        k = len(generators)
        actor = self.actor.init(generators, head_init)
        critic: Params = {}
        for j in range(self.algo.critic.n_critics):
            critic.update({f"q{j}.{n}": t for n, t in self.critic.init(generators, head_init).items()})
        disc = self.disc.init(generators)
        obs_dim = self.actor.sizes[0]
        f64 = {"dtype": torch.float64}

        def moments(*shape: int) -> Params:
            return {"mean": torch.zeros(k, *shape, **f64), "var": torch.ones(k, *shape, **f64), "count": torch.full((k,), 1e-4, **f64)}

        state = {
            "actor": actor,
            "critic": critic,
            "actor_t": {n: t.clone() for n, t in actor.items()},
            "critic_t": {n: t.clone() for n, t in critic.items()},
            "disc": disc,
            "opt_actor": Adam.init(actor),
            "opt_critic": Adam.init(critic),
            "opt_disc": Adam.init(disc),
            "popart": moments(),
            "d_stats": moments(self.d_norm_dim),
            "obs_stats": {"mean": torch.zeros(k, 1, obs_dim), "std": torch.ones(k, 1, obs_dim)},
        }
        if self.disc.spectral_norm:
            state["disc_sn"] = self.disc.init_sn(generators)
            self.disc.power_iteration(disc, state["disc_sn"], steps=15)
        return state

    # ----- the pieces the update is made of ---------------------------------------------------
    def env_action(self, scaled: torch.Tensor) -> torch.Tensor:
        """Actor/replay actions in [-1, 1] -> the env's units."""
        return self.act_low + (scaled + 1.0) * 0.5 * self.act_span

    def policy(self, p: Params, obs_n: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.actor(p, obs_n))

    def q_values(self, p: Params, obs_n: torch.Tensor, act: torch.Tensor) -> list[torch.Tensor]:
        """Every head's ``(K, B)`` value (normalised units under Pop-Art)."""
        x = torch.cat([obs_n, act], dim=-1)
        return [self.critic(_head(p, j), x).squeeze(-1) for j in range(self.algo.critic.n_critics)]

    def features(self, stats: Params, obs: torch.Tensor, env_act: torch.Tensor) -> torch.Tensor:
        """D's input ``(K, B, d_obs_dim + act_dim)`` from raw obs (with the absorbing flag last) and env actions."""
        d = self.algo.discriminator
        if self.d_narrowed:
            obs = torch.cat([obs[..., self.d_judged], obs[..., self.obs_dim :]], dim=-1)
        if d.normalize_obs:
            m = self.d_norm_dim
            mean, std = stats["mean"].float().unsqueeze(1), (stats["var"] + 1e-8).sqrt().float().unsqueeze(1)
            real = ((obs[..., :m] - mean) / std).clamp(-d.clip_obs, d.clip_obs)
            obs = torch.cat([real, obs[..., m:]], dim=-1)
        if self.algo.absorbing:  # whatever is done in the absorbing state changes nothing: D must not judge it
            env_act = env_act * (1.0 - obs[..., -1:])
        return torch.cat([obs, env_act], dim=-1)

    def d_params(self, st: dict[str, Params]) -> Params:
        """D's parameters as its forward uses them (kernels spectrally normalised when that is on), no gradient."""
        return {n: t.detach() for n, t in self.disc.spectral(st["disc"], st.get("disc_sn")).items()}

    def rewards(self, dp: Params, stats: Params, obs: torch.Tensor, env_act: torch.Tensor) -> torch.Tensor:
        return reward_from_logits(self.disc(dp, self.features(stats, obs, env_act)).squeeze(-1), self.algo.reward)

    def absorbing_value(self, dp: Params, stats: Params, k: int) -> torch.Tensor:
        """``(K,)`` value of the absorbing state: it loops forever on D's reward for it."""
        act_dim = int(self.act_span.shape[0])
        dev = stats["count"].device
        obs = torch.zeros(k, 1, self.obs_dim + 1, device=dev)
        obs[..., -1] = 1.0
        r = self.rewards(dp, stats, obs, torch.zeros(k, 1, act_dim, device=dev))
        return r[:, 0] / (1.0 - self.algo.gamma)

    def normalize(self, obs_stats: Params, obs: torch.Tensor) -> torch.Tensor:
        """The actor/critic's observation transform (VecNormalize's), per seed."""
        return ((obs - obs_stats["mean"]) / obs_stats["std"]).clamp(-self.obs_clip, self.obs_clip)

    def d_loss(self, dp: Params, sn: Optional[Params], x_e: Tensor, x_p: Tensor, y_e: Tensor, eps: Tensor, w_e: Tensor, w_p: Tensor):
        """Sum over seeds of ``L_D``; rows weighted ``w`` (1, or the absorbing pairs' 0/1 mask);
        ``sn``: the spectral-norm vectors, or None."""
        d = self.algo.discriminator
        dp = self.disc.spectral(dp, sn)
        f_e, f_p = self.disc(dp, x_e).squeeze(-1), self.disc(dp, x_p).squeeze(-1)
        n_e, n_p = w_e.sum(1), w_p.sum(1)
        loss_e = (F.binary_cross_entropy_with_logits(f_e, y_e, reduction="none") * w_e).sum(1) / n_e
        loss_p = (F.binary_cross_entropy_with_logits(f_p, torch.zeros_like(f_p), reduction="none") * w_p).sum(1) / n_p
        f_all, w_all = torch.cat([f_e, f_p], dim=1), torch.cat([w_e, w_p], dim=1)
        entropy = ((F.softplus(f_all) - f_all * torch.sigmoid(f_all)) * w_all).sum(1) / w_all.sum(1)
        loss = loss_e + loss_p - d.entropy_weight * entropy
        gp = torch.zeros_like(loss)
        if d.grad_penalty > 0:
            b = eps.shape[1]
            x_hat = eps * x_e[:, :b] + (1 - eps) * x_p[:, :b]
            g = grad(lambda x: self.disc(dp, x).sum(), create_graph=True)(x_hat)  # rows and seeds are independent: per-sample gradients
            gp = (g.norm(2, dim=-1) - 1).pow(2).mean(1)
            loss = loss + d.grad_penalty * gp
        logs = torch.stack(
            [
                loss,
                (torch.sigmoid(f_e) * w_e).sum(1) / n_e,
                (torch.sigmoid(f_p) * w_p).sum(1) / n_p,
                ((f_e > 0).float() * w_e).sum(1) / n_e,
                ((f_p < 0).float() * w_p).sum(1) / n_p,
                entropy,
                gp,
            ],
            dim=1,
        ).detach()
        return loss.sum(), logs

    def critic_loss(self, cp: Params, obs_n: torch.Tensor, act: torch.Tensor, y1: torch.Tensor, yn: torch.Tensor):
        a = self.algo
        loss_fn = F.smooth_l1_loss if a.critic.loss == "huber" else F.mse_loss
        loss = obs_n.new_zeros(obs_n.shape[0])
        for q in self.q_values(cp, obs_n, act):
            loss = loss + loss_fn(q, yn, reduction="none").mean(1)
            if a.one_step_loss:
                loss = loss + loss_fn(q, y1, reduction="none").mean(1)
        for j in range(a.critic.n_critics):
            for name in self.critic.hidden_kernels():
                loss = loss + a.critic.weight_decay * 0.5 * cp[f"q{j}.{name}"].pow(2).flatten(1).sum(1)
        return loss.sum(), loss.detach()

    def actor_loss(self, ap: Params, cp: Params, obs_n: torch.Tensor, popart: Params, dp: Params, stats: Params, raw_obs: torch.Tensor):
        a = self.algo
        u = self.actor(ap, obs_n)
        mu = torch.tanh(u)
        q = self.q_values(cp, obs_n, mu)[0]
        if a.critic.popart:
            q = (q.double() * self._sigma(popart).unsqueeze(1) + popart["mean"].unsqueeze(1)).float()
        loss = -a.actor.q_scale * q.mean(1)
        if a.actor.d_scale:
            if a.absorbing:  # the replay's observations are real states: D's absorbing flag is 0 for them
                raw_obs = torch.cat([raw_obs, raw_obs.new_zeros(*raw_obs.shape[:-1], 1)], dim=-1)
            loss = loss - a.actor.d_scale * self.rewards(dp, stats, raw_obs, self.env_action(mu)).mean(1)
        if a.actor.preact_penalty:
            # Where tanh is flat the critic's gradient no longer reaches the actor, which then stays
            # at the action bounds (measured on Ant: docs/notes/sam.md); this pulls u back where it does.
            loss = loss + a.actor.preact_penalty * u.pow(2).mean((1, 2))
        return loss.sum(), loss.detach()

    def popart_fold(self, pop: Params, targets: torch.Tensor, critics: list[Params]) -> None:
        """Fold ``targets (K, M)`` (return units) into each seed's Pop-Art statistics and rescale the
        heads of every critic in ``critics`` so their outputs in return units are unchanged.

        Pop-Art (van Hasselt et al. 2016): the critic's last layer predicts ``q_n``, worth
        ``q = sigma q_n + mu`` in return units. When the statistics move from ``(mu, sigma)`` to
        ``(mu', sigma')`` every output layer (online *and* target critics) is rescaled,
        ``W <- W sigma / sigma'``, ``b <- (sigma b + mu - mu') / sigma'``, and the loss compares
        the normalised prediction with the normalised target ``(y - mu') / sigma'`` (sam-tf compared
        a de-normalised prediction with a normalised target: a unit mismatch). Statistics: a
        count-weighted running mean and variance of every target, ``sigma = sqrt(max(var, min_var))``
        (sam-tf: min_var = 1e-2, so sigma >= 0.1)."""
        k = targets.shape[0]
        old_mean, old_sigma = pop["mean"].clone(), self._sigma(pop)
        fold_moments(pop, targets.unsqueeze(-1), squeeze=True)
        new_sigma = self._sigma(pop)
        shift, scale = (old_mean - pop["mean"]).view(k, 1, 1), new_sigma.view(k, 1, 1)
        for params in critics:
            for j in range(self.algo.critic.n_critics):
                w, b = (f"q{j}.{n}" for n in self.critic.head())
                params[b].copy_(((old_sigma.view(k, 1, 1) * params[b].double() + shift) / scale).float())
                params[w].mul_((old_sigma / new_sigma).view(k, 1, 1).float())

    def _sigma(self, popart: Params) -> torch.Tensor:
        return popart["var"].clamp(min=self.algo.critic.popart_min_var).sqrt()

    def _step(self, name: str, params: Params, grads: Params, opt_state: Params) -> None:
        distributed.average_tensors(list(grads.values()))  # workers first, then each seed's clip (as SB3 workers would)
        grads = clip_per_seed(grads, self.algo.grad_clip)
        self.opt[name].step(params, grads, opt_state)

    # ----- the update --------------------------------------------------------------------------
    def update(
        self, st: dict[str, Params], b: dict[str, torch.Tensor], actor_due: bool, discriminator: bool = True, actor_critic: bool = True
    ) -> torch.Tensor:
        """One update of every seed; ``st``: the learner state, ``b``: the batch (see module docstring).

        ``discriminator`` / ``actor_critic``: run that half (a schedule with ``d_steps`` or
        ``g_steps`` above 1 calls the halves apart; each combination is its own graph). Returns
        ``(K, len(LOGS))``: the logs of a half that did not run, and ``actor_loss`` when the actor
        was not due, are 0."""
        a = self.algo
        k = st["popart"]["mean"].shape[0]
        dev = st["popart"]["mean"].device
        d_logs = torch.zeros(k, 7, device=dev)
        if discriminator:
            # 1. Discriminator: its input statistics, then one step.
            if a.discriminator.normalize_obs:
                fold_moments(st["d_stats"], b["d_stats_obs"][..., self.d_judged])
            x_e = self.features(st["d_stats"], b["e_obs"], b["e_act"])
            x_p = self.features(st["d_stats"], b["p_obs"], self.env_action(b["p_act"]))
            sn = st.get("disc_sn")
            if sn is not None:
                self.disc.power_iteration(st["disc"], sn)
            g_d, d_logs = grad(self.d_loss, has_aux=True)(st["disc"], sn, x_e, x_p, b["y_e"], b["eps"], b["w_e"], b["w_p"])
            self._step("disc", st["disc"], g_d, st["opt_disc"])
        if not actor_critic:
            return torch.cat([d_logs, torch.zeros(k, 4, device=dev)], dim=1)
        dp = self.d_params(st)
        # 2. Targets in return units, with the updated D.
        with torch.no_grad():
            v_abs = self.absorbing_value(dp, st["d_stats"], k) if a.absorbing else torch.zeros(k, device=dev)
            n = b["valid"].shape[2]
            bsz = b["valid"].shape[1]
            if self.recompute_rewards:
                r_win = self.rewards(dp, st["d_stats"], b["win_obs"], self.env_action(b["win_act"])).reshape(k, bsz, n)
            else:
                r_win = b["r_stored"]
            next_n = self.normalize(st["obs_stats"], b["next_obs"])
            next_act = self.policy(st["actor_t"], next_n)
            if a.critic.target_noise > 0:
                next_act = (next_act + b["target_noise"]).clamp(-1, 1)
            q_next = torch.stack(self.q_values(st["critic_t"], next_n, next_act)).min(0).values
            pop = st["popart"]
            if a.critic.popart:
                q_next = (q_next.double() * self._sigma(pop).unsqueeze(1) + pop["mean"].unsqueeze(1)).float()
            y1 = r_win[:, :, 0] + a.gamma * torch.where(b["term1"], v_abs.unsqueeze(1), q_next[:, :bsz])
            yn = nstep_return(r_win, b["valid"], b["length"], b["terminal"], q_next[:, bsz:], a.gamma, v_abs.unsqueeze(1)) if n > 1 else y1
            target_mean, reward_mean = yn.mean(1), r_win[:, :, 0].mean(1)
            # 3. Pop-Art: fold the targets in, rescale every head, compare in normalised units.
            if a.critic.popart:
                self.popart_fold(pop, torch.cat([y1, yn], dim=1), [st["critic"], st["critic_t"]])
                mean, sigma = pop["mean"].unsqueeze(1), self._sigma(pop).unsqueeze(1)
                y1, yn = ((y1.double() - mean) / sigma).float(), ((yn.double() - mean) / sigma).float()
        # 4. Critic.
        obs_n = self.normalize(st["obs_stats"], b["obs"])
        g_c, c_loss = grad(self.critic_loss, has_aux=True)(st["critic"], obs_n, b["act"], y1, yn)
        self._step("critic", st["critic"], g_c, st["opt_critic"])
        # 5. Actor, then 6. Polyak.
        a_loss = torch.zeros(k, device=dev)
        if actor_due:
            g_a, a_loss = grad(self.actor_loss, has_aux=True)(st["actor"], st["critic"], obs_n, pop, dp, st["d_stats"], b["obs"])
            self._step("actor", st["actor"], g_a, st["opt_actor"])
            with torch.no_grad():
                polyak(st["critic_t"], st["critic"], a.tau)
                polyak(st["actor_t"], st["actor"], a.tau)
        return torch.cat([d_logs, torch.stack([c_loss, target_mean, reward_mean, a_loss], dim=1)], dim=1)


def fold_moments(stats: Params, x: torch.Tensor, squeeze: bool = False) -> None:
    """Fold ``x (K, B, d)`` into per-seed running ``mean``, ``var`` (``(K, d)``, or ``(K,)`` with
    ``squeeze``) and ``count (K,)``, all float64: the parallel-variance update of SB3's
    ``RunningMeanStd``, with every worker's rows (their moments summed over gloo)."""
    x = x.double()
    n = torch.full((x.shape[0],), float(x.shape[1]), dtype=torch.float64, device=x.device)
    s1, s2 = x.sum(1), x.pow(2).sum(1)
    s1, s2, n = distributed.sum_tensors(s1, s2, n)
    batch_mean = s1 / n.unsqueeze(1)
    batch_var = (s2 / n.unsqueeze(1) - batch_mean.pow(2)).clamp(min=0.0)
    if squeeze:
        batch_mean, batch_var = batch_mean.squeeze(1), batch_var.squeeze(1)
        nn_, count = n, stats["count"]
    else:
        nn_, count = n.unsqueeze(1), stats["count"].unsqueeze(1)
    delta = batch_mean - stats["mean"]
    total = count + nn_
    new_mean = stats["mean"] + delta * nn_ / total
    m2 = stats["var"] * count + batch_var * nn_ + delta.pow(2) * count * nn_ / total
    stats["mean"].copy_(new_mean)
    stats["var"].copy_(m2 / total)
    stats["count"].add_(n)
