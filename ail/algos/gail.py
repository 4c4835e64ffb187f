"""GAIL (Ho & Ermon 2016) with an SB3 generator: PPO (default) or sb3-contrib TRPO.

One round, repeated until ``train.env_steps`` environment steps:

1. **Collect** ``n_steps x n_envs`` transitions with the generator. The env reward is replaced by
   the discriminator's (:class:`ail.reward_wrapper.RewardVecEnvWrapper`); the true reward is
   only recorded for logging.
2. **Update D** (:mod:`ail.discriminator`, expert = 1): ``epochs`` passes over the rollout in
   minibatches of ``batch_size`` policy pairs, each against ``batch_size`` expert pairs drawn
   with replacement.
3. **Relabel** (``relabel=true``): recompute the rollout's rewards with the updated D, then
   recompute GAE returns and advantages (SB3's time-limit bootstrap term is kept).
4. **Update the generator**: one SB3 ``train()`` call (PPO epochs, or one TRPO step + critic fits).

Observations reach the generator through ``VecNormalize`` (observations only: the learned
reward is not rescaled); D keeps its own statistics. Expert pairs may be subsampled GAIL-style
(``algo.demo_subsample``: every k-th pair from a random offset per trajectory).
A checkpoint holds everything, simulator states included, so a resumed run continues exactly.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from ail.activations import activation
from ail.demos import check_demos_match_env
from ail.discriminator import build_discriminator, check_reward_for_task, label_smoothing_from_cfg
from ail.env_state import get_vec_env_states, set_vec_env_states
from ail.envs import make_env, make_vec_env
from ail.errors import ConfigError, TrainingError
from ail.experts import parse_schedule
from ail.policy import LoadedPolicy, ObsNormalizer, save_policy
from ail.reward_wrapper import RewardVecEnvWrapper
from ail.run import Run
from ail.seeding import rng_state, set_random_seed, set_rng_state

GENERATORS = ("ppo", "trpo")


def generator_class(name: str) -> type:
    if name == "ppo":
        return PPO
    if name == "trpo":
        from sb3_contrib import TRPO

        return TRPO
    raise ConfigError(f"algo.generator={name} is invalid; accepted: {', '.join(GENERATORS)}")


class _RolloutEnd(BaseCallback):
    """Keeps what SB3 used to compute GAE at the end of a rollout, so relabelled rewards can reuse it."""

    def __init__(self) -> None:
        super().__init__()
        self.last_values: Any = None
        self.dones: Any = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.last_values = self.locals["values"]
        self.dones = self.locals["dones"]


def build_generator(a: Any, venv: Any, seed: int) -> Any:
    name = str(a.generator)
    cls = generator_class(name)
    hyper = {k: parse_schedule(v) for k, v in OmegaConf.to_container(a[name], resolve=True).items()}  # "lin_1e-3": linear decay
    p = a.policy
    policy_kwargs = dict(net_arch=dict(pi=list(p.net_arch), vf=list(p.net_arch)), activation_fn=activation(str(p.activation), "algo.policy.activation"))
    if isinstance(venv.action_space, gym.spaces.Box):
        policy_kwargs["log_std_init"] = float(p.log_std_init)
    return cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, policy_kwargs=policy_kwargs, **hyper)


VEC_ENVS = ("dummy", "subproc")  # SB3 DummyVecEnv (envs stepped in this process) | SubprocVecEnv (one process each)


def validate(cfg: Any, demos: Any) -> None:
    """Every check that needs no training, run by ``launch.py`` before the run directory exists."""
    a = cfg.algo
    d = a.discriminator
    generator_class(str(a.generator))
    if str(a.vec_env) not in VEC_ENVS:
        raise ConfigError(f"algo.vec_env={a.vec_env} is invalid; accepted: {', '.join(VEC_ENVS)}")
    if int(a.n_envs) <= 0:
        raise ConfigError(f"algo.n_envs={a.n_envs} is invalid; accepted: a positive integer")
    check_reward_for_task(str(a.reward), str(cfg.env.termination), False, bool(a.allow_biased_reward))
    label_smoothing_from_cfg(OmegaConf.to_container(d, resolve=True)["label_smoothing"])
    if int(d.epochs) <= 0 or int(d.batch_size) <= 0:
        raise ConfigError(f"algo.discriminator.epochs/batch_size must be positive integers, got {d.epochs}/{d.batch_size}")
    activation(str(a.policy.activation), "algo.policy.activation")
    env = make_env(cfg.env.name)
    check_demos_match_env(demos, env.observation_space, env.action_space)
    build_discriminator(env.observation_space, env.action_space, d)
    env.close()


def train(run: Run) -> None:
    cfg, a = run.cfg, run.cfg.algo
    d = a.discriminator
    validate(cfg, run.demos)
    smoothing = label_smoothing_from_cfg(OmegaConf.to_container(d, resolve=True)["label_smoothing"])
    seed = int(cfg.seed)
    set_random_seed(seed, int(cfg.runtime.threads))

    venv = make_vec_env(cfg.env.name, n_envs=int(a.n_envs), seed=seed, subprocess=str(a.vec_env) == "subproc")
    demos = run.demos
    disc = build_discriminator(venv.observation_space, venv.action_space, d)
    d_opt = torch.optim.Adam(disc.parameters(), lr=float(d.lr))
    reward_kind = str(a.reward)
    if a.relabel:
        # The rollout is relabelled after the D update anyway: scoring every env step now would be wasted work.
        reward_venv = RewardVecEnvWrapper(venv, lambda obs, _act, _next, _done: np.zeros(len(obs), dtype=np.float32))
    else:
        reward_venv = RewardVecEnvWrapper(venv, lambda obs, act, _next, _done: disc.reward(obs, act, reward_kind))
    gen_env: Any = reward_venv
    if a.normalize_obs:
        gen_env = VecNormalize(reward_venv, norm_obs=True, norm_reward=False, gamma=float(a[str(a.generator)].gamma))
    model = build_generator(a, gen_env, seed)
    capture = _RolloutEnd()
    total = int(cfg.train.env_steps)
    _, callback = model._setup_learn(total, callback=capture, reset_num_timesteps=True, progress_bar=False)
    expert_obs = torch.as_tensor(demos.obs, dtype=torch.float32)
    expert_act = torch.as_tensor(demos.actions)
    g = torch.Generator().manual_seed(seed)
    next_eval, evals_done, rounds = 0, 0, 0
    first_reach: dict[str, Any] = {}

    state = run.load_checkpoint()
    if state is not None:
        model.set_parameters(state["model"], exact_match=True, device="cpu")
        model.num_timesteps, model._n_updates = state["num_timesteps"], state["n_updates"]
        model._last_obs, model._last_episode_starts = state["last_obs"], state["last_episode_starts"]
        model.ep_info_buffer.extend(state["ep_info_buffer"])
        set_vec_env_states(venv, state["env_states"])
        reward_venv._obs = state["wrapper_obs"]
        if isinstance(gen_env, VecNormalize):
            gen_env.obs_rms, gen_env.old_obs = state["obs_rms"], state["old_obs"]
        disc.load_state_dict(state["disc"])
        d_opt.load_state_dict(state["d_opt"])
        g.set_state(state["g"])
        set_rng_state(state["rng"])
        next_eval, evals_done, rounds, first_reach = state["next_eval"], state["evals_done"], state["rounds"], state["first_reach"]

    def snapshot() -> dict[str, Any]:
        return {
            "model": model.get_parameters(), "num_timesteps": model.num_timesteps, "n_updates": model._n_updates,
            "last_obs": model._last_obs, "last_episode_starts": model._last_episode_starts,
            "ep_info_buffer": list(model.ep_info_buffer), "env_states": get_vec_env_states(venv),
            "wrapper_obs": reward_venv._obs,
            "obs_rms": getattr(gen_env, "obs_rms", None), "old_obs": getattr(gen_env, "old_obs", None),
            "disc": disc.state_dict(), "d_opt": d_opt.state_dict(), "g": g.get_state(), "rng": rng_state(),
            "next_eval": next_eval, "evals_done": evals_done, "rounds": rounds, "first_reach": first_reach,
        }

    def acting_policy() -> LoadedPolicy:
        normalizer = None
        if isinstance(gen_env, VecNormalize):
            normalizer = ObsNormalizer(gen_env.obs_rms.mean.copy(), gen_env.obs_rms.var.copy(), gen_env.clip_obs, gen_env.epsilon)
        return LoadedPolicy(model.policy, normalizer)

    def evaluate(logs: dict[str, float]) -> dict[str, Any]:
        nonlocal next_eval, evals_done
        row = run.evaluate(acting_policy(), model.num_timesteps, model._n_updates, logs)
        for threshold in (0.9, 0.95):
            key = f"env_steps_to_{threshold}"
            if key not in first_reach and row["normalized_score"] >= threshold:
                first_reach[key] = int(model.num_timesteps)
        next_eval = (model.num_timesteps // int(cfg.eval.every) + 1) * int(cfg.eval.every)
        evals_done += 1
        return row

    def update_discriminator(obs: np.ndarray, actions: np.ndarray) -> dict[str, float]:
        """``epochs`` passes over the rollout's pairs, each minibatch against as many expert pairs."""
        disc.update_obs_stats(np.concatenate([obs, demos.obs]))
        disc.train()
        n, batch = len(obs), min(int(d.batch_size), len(obs))
        sums: dict[str, float] = {}
        steps = 0
        for _ in range(int(d.epochs)):
            perm = torch.randperm(n, generator=g)
            for start in range(0, n - batch + 1, batch):
                idx = perm[start:start + batch]
                e_idx = torch.randint(len(expert_obs), (batch,), generator=g)
                loss, logs = disc.loss(expert_obs[e_idx], expert_act[e_idx], obs[idx.numpy()], actions[idx.numpy()],
                                       grad_penalty=float(d.grad_penalty), label_smoothing=smoothing,
                                       entropy_weight=float(d.entropy_weight), generator=g)
                d_opt.zero_grad()
                loss.backward()
                d_opt.step()
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
        disc.eval()
        return {k: v / max(steps, 1) for k, v in sums.items()}

    if model.num_timesteps == 0 and evals_done == 0:
        evaluate({})
    columns = [TextColumn(f"[bold]gail-{a.generator}[/] {{task.description}}"), BarColumn(), MofNCompleteColumn(), TextColumn("env steps"),
               TimeRemainingColumn(), TextColumn("{task.fields[last]}")]
    last = f"eval {run.last_eval.get('return_mean', float('nan')):.1f}" if run.last_eval else ""
    with run.flag, Progress(*columns, disable=not cfg.runtime.progress) as bar:
        task = bar.add_task(f"{cfg.env.name}-d{cfg.demos}-s{seed}", total=total, completed=model.num_timesteps, last=last)
        while model.num_timesteps < total:
            model._update_current_progress_remaining(model.num_timesteps, total)
            try:
                model.collect_rollouts(gen_env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
                roll = reward_venv.pop_rollout()
                steps_shape = roll["rewards"].shape  # (n_steps, n_envs)
                obs = roll["obs"].reshape(-1, *roll["obs"].shape[2:])
                actions = roll["actions"].reshape(-1, *roll["actions"].shape[2:])
                logs = update_discriminator(obs, actions)
                if a.relabel:
                    new_rewards = disc.reward(obs, actions, reward_kind).reshape(steps_shape)
                    # Shift by the change only: SB3 added gamma * V(s_T) at time-limit ends; keep it.
                    model.rollout_buffer.rewards += new_rewards - roll["rewards"]
                    model.rollout_buffer.compute_returns_and_advantage(last_values=capture.last_values, dones=capture.dones)
                else:
                    new_rewards = roll["rewards"]
            except TrainingError as exc:
                raise TrainingError(
                    f"{exc} at env step {model.num_timesteps}; stopped. The last good checkpoint ({run.ckpt_path}) is kept; "
                    f"lower algo.discriminator.lr or raise algo.discriminator.grad_penalty, then relaunch to resume from it"
                ) from None
            model.train()
            rounds += 1
            logs.update({
                "reward_mean": float(new_rewards.mean()),
                "train_true_return": float(np.mean([e["r"] for e in model.ep_info_buffer])) if model.ep_info_buffer else float("nan"),
                **{f"g_{k.split('/')[-1]}": float(v) for k, v in model.logger.name_to_value.items() if k.startswith("train/")},
            })
            bar.update(task, completed=min(model.num_timesteps, total))
            if model.num_timesteps >= next_eval or model.num_timesteps >= total:
                row = evaluate(logs)
                rate = bar.tasks[0].speed or 0.0
                bar.update(task, last=f"{rate:.0f} steps/s | eval {row['return_mean']:.1f} (score {row['normalized_score']:.2f})")
                if evals_done % int(cfg.train.checkpoint_every) == 0:
                    run.save_checkpoint(snapshot(), model.num_timesteps, model._n_updates)
            run.check_preemption(snapshot, model.num_timesteps, model._n_updates)
    final = acting_policy()
    run.finish(
        lambda path: save_policy(path, model.policy, final.normalizer, meta={"algo": "gail", "generator": str(a.generator), "env": cfg.env.name}),
        final, model.num_timesteps, model._n_updates,
        extra={"demo_pairs": len(demos), "generator": str(a.generator), "rounds": rounds, **first_reach},
    )
