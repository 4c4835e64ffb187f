"""Behavioral cloning: maximise the likelihood of expert actions under an SB3 policy.

Continuous actions: the SB3 diagonal-Gaussian policy's negative log-likelihood; discrete
actions: cross-entropy of its categorical head. Loss per minibatch of B expert pairs::

    L = -mean_b log pi(a_b | s_b) - ent_weight * mean_b H(pi(.|s_b)) + l2_weight * sum ||W||^2 / 2

(as in the `imitation` library's BC). Observations are standardised with the demonstrations'
statistics; the saved policy applies that itself. BC takes no environment steps: its budget is
``algo.updates`` gradient steps, and ``env_steps`` stays 0 in its metrics.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ail.activations import activation as activation_class
from ail.envs import make_env
from ail.errors import ConfigError
from ail.policy import LoadedPolicy, ObsNormalizer, save_policy
from ail.run import Run
from ail.seeding import rng_state, set_random_seed, set_rng_state


def build_policy(observation_space: Any, action_space: Any, net_arch: list[int], activation: str, lr: float) -> Any:
    from stable_baselines3.common.policies import ActorCriticPolicy

    act_cls = activation_class(activation, "algo.activation")
    return ActorCriticPolicy(
        observation_space, action_space, lr_schedule=lambda _: lr,
        net_arch=dict(pi=list(net_arch), vf=[]), activation_fn=act_cls,
    )


def bc_loss(policy: Any, obs: torch.Tensor, actions: torch.Tensor, ent_weight: float, l2_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """BC loss on a batch: obs ``(B, obs_dim)``, actions ``(B, act_dim)`` or ``(B,)``; returns (loss, logs)."""
    _, log_prob, entropy = policy.evaluate_actions(obs, actions)
    neglogp = -log_prob.mean()
    ent = entropy.mean() if entropy is not None else torch.zeros(())
    l2 = sum(p.pow(2).sum() for n, p in policy.named_parameters() if "weight" in n) / 2
    loss = neglogp - ent_weight * ent + l2_weight * l2
    return loss, {"loss": loss.item(), "neglogp": neglogp.item(), "entropy": ent.item()}


def train(run: Run) -> None:
    cfg, a = run.cfg, run.cfg.algo
    if int(a.updates) <= 0 or int(a.eval_every) <= 0 or int(a.batch_size) <= 0:
        raise ConfigError(f"algo.updates/eval_every/batch_size must be positive integers, got {a.updates}/{a.eval_every}/{a.batch_size}")
    set_random_seed(int(cfg.seed), int(cfg.runtime.threads))
    demos = run.demos
    env = make_env(cfg.env.name)
    normalizer = None
    obs = demos.obs
    if a.normalize_obs:
        # Standardise with demo statistics; a zero-variance feature keeps unit scale.
        var = demos.obs.var(axis=0)
        normalizer = ObsNormalizer(demos.obs.mean(axis=0), np.where(var < 1e-8, 1.0, var), clip=10.0)
        obs = normalizer(demos.obs)
    policy = build_policy(env.observation_space, env.action_space, list(a.net_arch), str(a.activation), float(a.lr))
    optimizer = torch.optim.Adam(policy.parameters(), lr=float(a.lr), weight_decay=float(a.weight_decay))
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    act_t = torch.as_tensor(demos.actions)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    updates = 0

    state = run.load_checkpoint()
    if state is not None:
        policy.load_state_dict(state["policy"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        set_rng_state(state["rng"])
        updates = int(state["updates"])

    def snapshot() -> dict[str, Any]:
        return {"policy": policy.state_dict(), "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                "rng": rng_state(), "updates": updates}

    def act() -> LoadedPolicy:
        return LoadedPolicy(policy, normalizer)

    total, every, batch = int(a.updates), int(a.eval_every), min(int(a.batch_size), len(obs_t))
    if updates == 0:
        run.evaluate(act(), 0, 0)
    logs: dict[str, float] = {}
    columns = [TextColumn("[bold]bc[/] {task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("updates"),
               TimeRemainingColumn(), TextColumn("{task.fields[last]}")]
    with run.flag, Progress(*columns, disable=not cfg.runtime.progress, transient=False) as bar:
        task = bar.add_task(f"{cfg.env.name}-d{cfg.demos}-s{cfg.seed}", total=total, completed=updates, last="")
        policy.train()
        while updates < total:
            idx = torch.randint(len(obs_t), (batch,), generator=generator)
            loss, logs = bc_loss(policy, obs_t[idx], act_t[idx], float(a.ent_weight), float(a.l2_weight))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
            bar.update(task, completed=updates)
            if updates % every == 0 or updates == total:
                policy.eval()
                row = run.evaluate(act(), 0, updates, logs)
                policy.train()
                rate = bar.tasks[0].speed or 0.0
                bar.update(task, last=f"{rate:.0f} upd/s | eval {row['return_mean']:.1f} (score {row['normalized_score']:.2f})")
                run.save_checkpoint(snapshot(), 0, updates)
            run.check_preemption(snapshot, 0, updates)
    policy.eval()
    run.finish(lambda d: save_policy(d, policy, normalizer, meta={"algo": "bc", "env": cfg.env.name}), act(), 0, updates,
               extra={"demo_pairs": len(demos), "demo_return_mean": float(demos.ep_returns.mean())})
