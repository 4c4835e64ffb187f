"""SAM's update, written once: one function over K stacked seeds, run compiled or as it is.

One call of :meth:`SAMUpdate.update` is one SAM update of every seed (paper Algorithm 1, one
discriminator step and one actor-critic step), in this order:

1. **Discriminator.** D's input statistics fold in the batch's policy and expert observations.
   ``L_D = BCE(f(x_p), 0) + BCE(f(x_e), y_e) - w_ent H(D) + lambda mean_b (||grad_x f(x_hat_b)|| - 1)^2``
   (label convention and terms: :mod:`ail.discriminator`; expert = 1, policy = 0; ``y_e`` and the
   penalty's ``eps`` are drawn by the caller). With absorbing states every terminal transition
   also adds an absorbing pair on its side (a masked extra batch of B rows, so shapes are fixed).
2. **Targets** with the just-updated D: rewards ``r = reward(f(s, a))`` of every window step
   (or the stored ones), the next state's value ``V'(s') = min_j Q'_j(s', a')`` for both
   bootstraps, with ``a' = mu'(s') [+ clipped noise]`` (ddpg, td3: the target actor) or, for
   sac, ``a' ~ pi(.|s')`` of the online actor and ``V'(s') = min_j Q'_j(s', a') - alpha log pi(a'|s')``;
   ``y_1 = r_0 + gamma (term_0 ? V_abs : V'(s_1))`` and the n-step ``y_n``
   (:func:`ail.algos.sam.replay.nstep_return`); ``V_abs = r(absorbing) / (1 - gamma)`` or 0.
3. **Pop-Art** folds ``y_1, y_n`` into each seed's statistics and rescales the online and target
   heads so their outputs in return units are unchanged (:meth:`SAMUpdate.popart_fold`).
4. **Critic.** ``L_Q = sum_j [l(Q_j, y_n) + l(Q_j, y_1)] + nu/2 sum ||W_hidden||^2`` in
   normalised units (``l``: Huber or MSE; the 1-step term optional).
5. **Actor** (every ``policy_delay`` updates): ``L_pi = -q_scale mean Q(s, a) + alpha mean log pi(a|s)
   - d_scale mean r(s, a) + preact_penalty mean m(s)^2`` with ``a`` the policy's action
   (:meth:`SAMUpdate.sample`) and ``m`` its mean before the tanh. ddpg, td3: ``a = tanh(m)``,
   ``log pi = 0`` and ``Q = Q_1`` (DDPG's and TD3's actor read the first critic); sac:
   ``a = tanh(m + sigma eps)`` and ``Q = min_j Q_j``. Then sac's temperature, when learned:
   ``L_alpha = -log(alpha) mean(log pi(a|s) + H_target)`` (SB3's form).
6. **Polyak** on the target critics (and the target actor, which only ddpg and td3 have).

Every gradient is per seed (losses are summed over the seed axis), clipped per seed to
``grad_clip``, averaged over gloo workers when there are any (:mod:`ail.distributed`), and
applied by :class:`ail.algos.sam.stacked.Adam` (the temperature's gradient is averaged over
workers, not clipped, as SB3 leaves it). All state is updated in place; the function returns
its statistics by name (:data:`D_LOGS`, :data:`AC_LOGS`, :data:`SAC_LOGS`), each ``(K,)``. ``torch.compile(update)`` is the fast path and
``update`` itself the eager reference: the same code, so nothing is written twice
(:class:`ail.algos.sam.compile.Compiled` runs it compiled, with its fallbacks).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor

from ail import distributed
from ail.algos.sam.config import SAMConfig
from ail.algos.sam.replay import nstep_return
from ail.algos.sam.stacked import MLP, Adam, Params, clip_per_seed, polyak
from ail.discriminator import LOSS_LOGS, check_obs_slice, interpolate, loss_from_logits, penalty, reward_from_logits

D_LOGS = LOSS_LOGS  # the discriminator step's, as every adversarial algorithm logs them
AC_LOGS = ("critic_loss", "target_mean", "reward_mean")
ACTOR_LOGS = ("actor_loss",)  # only from updates where the actor was due
SAC_LOGS = ("alpha", "entropy")  # sac's temperature and -mean log pi(a|s), with the actor
LOGS = D_LOGS + AC_LOGS + ACTOR_LOGS + SAC_LOGS


class DBatch(TypedDict, total=False):
    """The discriminator's batch, per seed (``K`` leading): ``B`` replay pairs against ``B`` expert
    pairs, twice as many rows each with absorbing states (the second half masked by ``w_*``)."""

    d_stats_obs: Tensor  # (K, 2B, obs_dim): raw observations folded into D's input statistics
    p_obs: Tensor  # (K, B[*2], d_obs_dim): policy observations, absorbing flag last when on
    p_act: Tensor  # (K, B[*2], act_dim): policy actions in [-1, 1]
    e_obs: Tensor  # (K, B[*2], d_obs_dim): expert observations
    e_act: Tensor  # (K, B[*2], act_dim): expert actions in the env's units
    y_e: Tensor  # (K, B[*2]): expert labels (1, or smoothed)
    eps: Tensor  # (K, B, 1): the gradient penalty's interpolation weights
    w_p: Tensor  # (K, B[*2]): row weights (1, or the absorbing pairs' 0/1 mask)
    w_e: Tensor  # (K, B[*2])


class ACBatch(TypedDict, total=False):
    """The actor-critic's batch: ``B`` replay rows per seed and their ``n``-step windows."""

    obs: Tensor  # (K, B, obs_dim) raw
    act: Tensor  # (K, B, act_dim) in [-1, 1]
    next_obs: Tensor  # (K, B or 2B, obs_dim): s_1 of every row, then (n > 1) the window's last next state
    term1: Tensor  # (K, B) bool: the row ended on a true termination
    valid: Tensor  # (K, B, n) bool: window steps inside the row's episode
    length: Tensor  # (K, B) steps in the window
    terminal: Tensor  # (K, B) bool: the window ends on a true termination
    win_obs: Tensor  # (K, B * n, d_obs_dim): the window's pairs, to reward with the current D
    win_act: Tensor  # (K, B * n, act_dim)
    r_stored: Tensor  # (K, B, n): rewards stored at collection (recompute_rewards=false or reward=env)
    target_noise: Tensor  # (K, B or 2B, act_dim): td3's clipped smoothing noise
    next_noise: Tensor  # (K, B or 2B, act_dim): sac's N(0, 1) draws of a' ~ pi(.|s')
    noise: Tensor  # (K, B, act_dim): sac's N(0, 1) draws of a ~ pi(.|s) for the actor's loss


class Sample(NamedTuple):
    """An action of the policy: ``action (K, B, act_dim)`` in [-1, 1], ``log_prob (K, B)`` (0 for a
    deterministic actor or action) and ``mean (K, B, act_dim)``, the action before the tanh without noise."""

    action: Tensor
    log_prob: Tensor
    mean: Tensor


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

    :param algo: SAM's validated settings (``conf/algo/sam.yaml``); the update reads them as they
        are, the generator's through ``algo.ac``.
    :param actor: ``obs_dim -> act_dim`` (deterministic: tanh applied here, actions in [-1, 1]) or
        ``obs_dim -> 2 act_dim`` (sac: the Gaussian's mean, then its log-std).
    :param critic: ``obs_dim + act_dim -> 1``, one per head (parameters ``q{j}.<name>``).
    :param disc: ``d_obs_dim + act_dim -> 1`` logits (``d_obs_dim``: the observation entries D
        judges, ``algo.discriminator.obs_slice``, and the absorbing indicator).
    :param act_low: ``(act_dim,)`` the env's action bounds: D sees env-unit actions, as the expert's are.
    """

    def __init__(self, algo: SAMConfig, actor: MLP, critic: MLP, disc: MLP, act_low: torch.Tensor, act_high: torch.Tensor):
        self.algo, self.actor, self.critic, self.disc = algo, actor, critic, disc
        self.ac = ac = algo.ac
        self.act_low, self.act_span = act_low.float(), (act_high - act_low).float()
        self.act_dim = int(act_low.shape[0])
        self.opt = {"actor": Adam(ac.actor.lr), "critic": Adam(ac.critic.lr), "disc": Adam(algo.discriminator.lr)}
        self.stochastic = algo.stochastic
        # sac's temperature: learned (log alpha per seed, its own Adam) or a fixed number.
        self.learned_alpha = self.stochastic and ac.entropy.coef == "auto"
        if self.learned_alpha:
            self.opt["alpha"] = Adam(ac.entropy.lr)
            self.target_entropy = -float(self.act_dim) if ac.entropy.target == "auto" else float(ac.entropy.target)
        # The env's reward (algo.reward=env) is stored at collection, as sam-tf stored D's (stale) one.
        self.recompute_rewards = algo.recompute_rewards and algo.reward != "env"
        self.obs_clip = ac.obs_clip if ac.normalize_obs else math.inf  # unnormalised: raw, unclipped
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
        net, d = algo.ac.network, algo.discriminator
        actor = MLP((obs_dim, *net.hidden, 2 * act_dim if algo.stochastic else act_dim), net.activation, net.layer_norm)
        critic = MLP((obs_dim + act_dim, *net.hidden, 1), net.activation, net.layer_norm)
        judged = check_obs_slice(d.obs_slice, obs_dim)
        d_in = judged.stop - judged.start + (1 if algo.absorbing else 0) + act_dim
        disc = MLP((d_in, *d.hidden, 1), d.activation, d.layer_norm, d.spectral_norm)
        return cls(algo, actor, critic, disc, act_low, act_high)

    def init_state(self, generators: list[torch.Generator]) -> dict[str, Params]:
        """Fresh state of K seeds, seed ``k``'s networks drawn from ``generators[k]``: networks
        (targets = online), optimiser moments, statistics."""
        k = len(generators)
        head_init = self.ac.network.head_init
        actor = self.actor.init(generators, head_init)
        critic: Params = {}
        for j in range(self.ac.critic.n_critics):
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
        if self.stochastic:
            del state["actor_t"]  # sac bootstraps with the online actor's samples
        if self.learned_alpha:
            alpha = {"log_alpha": torch.full((k,), math.log(self.ac.entropy.init))}
            state.update(alpha=alpha, opt_alpha=Adam.init(alpha))
        if self.disc.spectral_norm:
            state["disc_sn"] = self.disc.init_sn(generators)
            self.disc.power_iteration(disc, state["disc_sn"], steps=15)
        return state

    # ----- the pieces the update is made of ---------------------------------------------------
    def env_action(self, scaled: torch.Tensor) -> torch.Tensor:
        """Actor/replay actions in [-1, 1] -> the env's units."""
        return self.act_low + (scaled + 1.0) * 0.5 * self.act_span

    def sample(self, p: Params, obs_n: Tensor, noise: Optional[Tensor] = None) -> Sample:
        """The policy's action at normalised observations ``obs_n (K, B, obs_dim)``: the one place
        the actor's output becomes an action (collection, targets, the actor's loss, parameter noise).

        Deterministic actor: ``a = tanh(m)``, ``log pi = 0``. sac: ``m, log sigma = actor(s)``
        (``log sigma`` clipped to ``log_std_bounds``), ``u = m + sigma noise`` (``noise (K, B,
        act_dim) ~ N(0, 1)``; None: ``u = m``, the deterministic action SAC is evaluated with),
        ``a = tanh(u)`` and ``log pi(a|s) = sum_i [log N(u_i; m_i, sigma_i) - log(1 - tanh(u_i)^2)]``,
        the last term in its overflow-free form ``2 (log 2 - u - softplus(-2u))`` (SB3 subtracts
        ``log(1 - a^2 + 1e-6)``, which the epsilon biases where ``|a|`` nears 1)."""
        out = self.actor(p, obs_n)
        if not self.stochastic:
            return Sample(torch.tanh(out), out.new_zeros(out.shape[:-1]), out)
        mean, log_std = out.split(self.act_dim, dim=-1)
        if noise is None:
            return Sample(torch.tanh(mean), out.new_zeros(out.shape[:-1]), mean)
        low, high = self.ac.log_std_bounds
        log_std = log_std.clamp(low, high)
        u = mean + log_std.exp() * noise
        gauss = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        squash = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
        return Sample(torch.tanh(u), (gauss - squash).sum(-1), mean)

    def alpha(self, st: dict[str, Params]) -> Tensor:
        """sac's temperature per seed ``(K, 1)``, no gradient."""
        if self.learned_alpha:
            return st["alpha"]["log_alpha"].detach().exp().unsqueeze(1)
        seeds = st["popart"]["mean"]  # any per-seed state: its length and device
        return torch.full((seeds.shape[0], 1), float(self.ac.entropy.coef), device=seeds.device)

    def q_values(self, p: Params, obs_n: torch.Tensor, act: torch.Tensor) -> list[torch.Tensor]:
        """Every head's ``(K, B)`` value (normalised units under Pop-Art)."""
        x = torch.cat([obs_n, act], dim=-1)
        return [self.critic(_head(p, j), x).squeeze(-1) for j in range(self.ac.critic.n_critics)]

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
        """Sum over seeds of ``L_D`` (:func:`ail.discriminator.loss_from_logits`, the shared D's math);
        rows weighted ``w`` (1, or the absorbing pairs' 0/1 mask); ``sn``: the spectral-norm vectors, or None."""
        d = self.algo.discriminator
        dp = self.disc.spectral(dp, sn)
        f_e, f_p = self.disc(dp, x_e).squeeze(-1), self.disc(dp, x_p).squeeze(-1)
        loss, logs = loss_from_logits(f_e, f_p, y_e, d.entropy_weight, w_e, w_p)
        if d.grad_penalty > 0:
            # rows and seeds are independent: the gradient of the sum is every row's own
            g = grad(lambda x: self.disc(dp, x).sum(), create_graph=True)(interpolate(x_e, x_p, eps))
            logs["d_grad_penalty"] = penalty(g)
            loss = loss + d.grad_penalty * logs["d_grad_penalty"]
        logs["d_loss"] = loss
        return loss.sum(), {n: logs[n].detach() for n in D_LOGS}

    def critic_loss(self, cp: Params, obs_n: torch.Tensor, act: torch.Tensor, y1: torch.Tensor, yn: torch.Tensor):
        ac = self.ac
        loss_fn = F.smooth_l1_loss if ac.critic.loss == "huber" else F.mse_loss
        loss = obs_n.new_zeros(obs_n.shape[0])
        for q in self.q_values(cp, obs_n, act):
            loss = loss + loss_fn(q, yn, reduction="none").mean(1)
            if ac.one_step_loss:
                loss = loss + loss_fn(q, y1, reduction="none").mean(1)
        for j in range(ac.critic.n_critics):
            for name in self.critic.hidden_kernels():
                loss = loss + ac.critic.weight_decay * 0.5 * cp[f"q{j}.{name}"].pow(2).flatten(1).sum(1)
        return loss.sum(), loss.detach()

    def actor_loss(
        self,
        ap: Params,
        cp: Params,
        obs_n: Tensor,
        popart: Params,
        dp: Params,
        stats: Params,
        raw_obs: Tensor,
        alpha: Tensor,
        noise: Optional[Tensor],
    ):
        """Sum over seeds of ``L_pi``; aux: the ``(K,)`` losses and ``log pi (K, B)`` of the actions taken."""
        a, ac = self.algo, self.ac
        pi = self.sample(ap, obs_n, noise)
        qs = self.q_values(cp, obs_n, pi.action)
        q = torch.stack(qs).min(0).values if self.stochastic else qs[0]  # DDPG's and TD3's actor read the first critic
        if ac.critic.popart:
            q = (q.double() * self._sigma(popart).unsqueeze(1) + popart["mean"].unsqueeze(1)).float()
        loss = -ac.actor.q_scale * q.mean(1)
        if self.stochastic:
            loss = loss + alpha.squeeze(1) * pi.log_prob.mean(1)
        if ac.actor.d_scale:
            if a.absorbing:  # the replay's observations are real states: D's absorbing flag is 0 for them
                raw_obs = torch.cat([raw_obs, raw_obs.new_zeros(*raw_obs.shape[:-1], 1)], dim=-1)
            loss = loss - ac.actor.d_scale * self.rewards(dp, stats, raw_obs, self.env_action(pi.action)).mean(1)
        if ac.actor.preact_penalty:
            # Where tanh is flat the critic's gradient no longer reaches the actor, which then stays
            # at the action bounds (measured on Ant: docs/notes/sam.md); this pulls m back where it does.
            loss = loss + ac.actor.preact_penalty * pi.mean.pow(2).mean((1, 2))
        return loss.sum(), (loss.detach(), pi.log_prob.detach())

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
            for j in range(self.ac.critic.n_critics):
                w, b = (f"q{j}.{n}" for n in self.critic.head())
                params[b].copy_(((old_sigma.view(k, 1, 1) * params[b].double() + shift) / scale).float())
                params[w].mul_((old_sigma / new_sigma).view(k, 1, 1).float())

    def _sigma(self, popart: Params) -> torch.Tensor:
        return popart["var"].clamp(min=self.ac.critic.popart_min_var).sqrt()

    def _step(self, name: str, params: Params, grads: Params, opt_state: Params, clip: bool = True) -> None:
        distributed.average_tensors(list(grads.values()))  # workers first, then each seed's clip (as SB3 workers would)
        if clip:
            grads = clip_per_seed(grads, self.algo.grad_clip)
        self.opt[name].step(params, grads, opt_state)

    # ----- the update --------------------------------------------------------------------------
    def update(
        self, st: dict[str, Params], b: dict[str, Tensor], actor_due: bool, discriminator: bool = True, actor_critic: bool = True
    ) -> dict[str, Tensor]:
        """One update of every seed; ``st``: the learner state, ``b``: a :class:`DBatch` and/or an
        :class:`ACBatch` (the halves that run).

        ``discriminator`` / ``actor_critic``: run that half (a schedule with ``d_steps`` or
        ``g_steps`` above 1 calls the halves apart; each combination is its own graph). Returns
        the ``(K,)`` logs of the halves that ran: :data:`D_LOGS`, :data:`AC_LOGS`, and when the
        actor was due :data:`ACTOR_LOGS` (and sac's :data:`SAC_LOGS`)."""
        a, ac = self.algo, self.ac
        k = st["popart"]["mean"].shape[0]
        dev = st["popart"]["mean"].device
        logs: dict[str, Tensor] = {}
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
            logs.update(d_logs)
        if not actor_critic:
            return logs
        dp = self.d_params(st)
        alpha = self.alpha(st) if self.stochastic else None
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
            if self.stochastic:
                nxt = self.sample(st["actor"], next_n, b["next_noise"])
            else:
                nxt = self.sample(st["actor_t"], next_n)
            next_act = nxt.action
            if not self.stochastic and ac.critic.target_noise > 0:
                next_act = (next_act + b["target_noise"]).clamp(-1, 1)
            v_next = torch.stack(self.q_values(st["critic_t"], next_n, next_act)).min(0).values
            pop = st["popart"]
            if ac.critic.popart:
                v_next = (v_next.double() * self._sigma(pop).unsqueeze(1) + pop["mean"].unsqueeze(1)).float()
            if self.stochastic:
                v_next = v_next - alpha * nxt.log_prob
            y1 = r_win[:, :, 0] + a.gamma * torch.where(b["term1"], v_abs.unsqueeze(1), v_next[:, :bsz])
            yn = nstep_return(r_win, b["valid"], b["length"], b["terminal"], v_next[:, bsz:], a.gamma, v_abs.unsqueeze(1)) if n > 1 else y1
            logs.update(target_mean=yn.mean(1), reward_mean=r_win[:, :, 0].mean(1))
            # 3. Pop-Art: fold the targets in, rescale every head, compare in normalised units.
            if ac.critic.popart:
                self.popart_fold(pop, torch.cat([y1, yn], dim=1), [st["critic"], st["critic_t"]])
                mean, sigma = pop["mean"].unsqueeze(1), self._sigma(pop).unsqueeze(1)
                y1, yn = ((y1.double() - mean) / sigma).float(), ((yn.double() - mean) / sigma).float()
        # 4. Critic.
        obs_n = self.normalize(st["obs_stats"], b["obs"])
        g_c, c_loss = grad(self.critic_loss, has_aux=True)(st["critic"], obs_n, b["act"], y1, yn)
        self._step("critic", st["critic"], g_c, st["opt_critic"])
        logs["critic_loss"] = c_loss
        # 5. Actor (and sac's temperature), then 6. Polyak.
        if actor_due:
            g_a, (a_loss, log_prob) = grad(self.actor_loss, has_aux=True)(
                st["actor"], st["critic"], obs_n, pop, dp, st["d_stats"], b["obs"], alpha, b.get("noise")
            )
            self._step("actor", st["actor"], g_a, st["opt_actor"])
            logs["actor_loss"] = a_loss
            if self.stochastic:
                if self.learned_alpha:
                    # d/d(log alpha) of -log(alpha) mean(log pi + H_target): no autograd needed.
                    g_alpha = {"log_alpha": -(log_prob.mean(1) + self.target_entropy)}
                    self._step("alpha", st["alpha"], g_alpha, st["opt_alpha"], clip=False)
                logs.update(alpha=alpha.squeeze(1), entropy=-log_prob.mean(1))
            with torch.no_grad():
                polyak(st["critic_t"], st["critic"], a.tau)
                if not self.stochastic:
                    polyak(st["actor_t"], st["actor"], a.tau)
        return logs


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
