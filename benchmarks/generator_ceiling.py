"""How far a generator gets on a task with the true reward: the ceiling of imitation with it there.

    python benchmarks/generator_ceiling.py [--algo gail|sam] [--env ant] [--steps N] [--eval-every N] [--episodes 10] [--seed 0] [OVERRIDE ...]

``--algo gail`` (default): the generator is built exactly as ``algo=gail`` builds it
(conf/algo/gail.yaml, the task's conf/algo_env/gail_<env>.yaml, then any Hydra OVERRIDE such as
``algo.ppo.n_steps=4096``): the same SB3 algorithm, policy, settings and observation
normalisation, on the environment's own reward in place of the discriminator's. If this run
stays below 0.9 within GAIL's budget, GAIL (the same generator on D's reward) would need a reward
far easier to climb than the task's own: the generator's settings are what to tune first.

``--algo sam``: SB3's own DDPG, TD3 or SAC (``algo.generator``, sac unless an OVERRIDE says
otherwise) with SAM's settings for it: the same networks, batch, buffer, discount, Polyak rate,
random warm-up, replay ratio (``schedule``), entropy temperature and observation normalisation.
It is the reference for SAM's own actor-critic on the true reward, which needs no script:
``python launch.py algo=sam algo.generator=sac algo.reward=env env=ant`` (docs/algorithms/sam.md).

Prints one row per evaluation (deterministic episodes, the normalised score of ``ail.evaluation``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecNormalize

from ail.activations import activation
from ail.algos.gail import GAILConfig, build_generator
from ail.algos.sam.config import SACActorCritic, SAMConfig
from ail.config import CONF_DIR, check_config, register_resolvers
from ail.envs import make_vec_env
from ail.errors import ConfigError
from ail.evaluation import normalized_score, rollouts
from ail.experts import expert_info
from ail.schema import algo_settings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="gail", choices=["gail", "sam"], help="whose generator (sam: SB3's algorithm of algo.generator)")
    parser.add_argument("--env", default="ant", help="short env name (conf/env/<name>.yaml)")
    parser.add_argument("--steps", type=int, default=None, help="env steps (default: GAIL's budget, train.env_steps)")
    parser.add_argument("--eval-every", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of algo.* (e.g. algo.ppo.n_steps=4096)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        default = ["algo.generator=sac"] if args.algo == "sam" else []
        cfg = compose("config", overrides=[f"algo={args.algo}", f"env={args.env}", *default, *args.overrides])
    try:
        check_config(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    a = algo_settings(cfg)
    steps = args.steps or int(cfg.train.env_steps)
    info = expert_info(args.env)
    try:
        venv, model = gail_generator(a, args) if isinstance(a, GAILConfig) else sam_reference(a, args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def act(obs: np.ndarray) -> np.ndarray:
        x = venv.normalize_obs(obs) if isinstance(venv, VecNormalize) else obs
        return model.predict(x, deterministic=True)[0]

    t0 = time.perf_counter()

    def report() -> None:
        ret, ended = rollouts(act, args.env, args.episodes, seed=400_000)
        score = normalized_score(float(ret.mean()), info["return_mean"], info["random_return_mean"])
        print(
            f"{model.num_timesteps:10d} {ret.mean():10.1f} ± {ret.std():7.1f} {score:7.3f} {f'{ended.sum()}/{len(ended)}':>11s} "
            f"{(time.perf_counter() - t0) / 60:8.1f}",
            flush=True,
        )

    class Every(BaseCallback):
        """An evaluation at the start of the first rollout past each ``--eval-every`` steps (the policy just updated)."""

        def __init__(self) -> None:
            super().__init__()
            self.next = args.eval_every

        def _on_rollout_start(self) -> None:
            if self.num_timesteps >= self.next:
                report()
                self.next += args.eval_every

        def _on_step(self) -> bool:
            return True

    what = f"{type(model).__name__} ({args.algo}'s {a.generator})"
    print(f"{what} on {cfg.env.id} with the true reward, {steps} env steps, seed {args.seed}; overrides: {args.overrides or 'none'}")
    if isinstance(a, SAMConfig) and unmatched(a):
        print(f"note: SB3 has no {', '.join(unmatched(a))}: this reference runs without them", flush=True)
    print(f"{'env steps':>10s} {'return':>20s} {'score':>7s} {'ended early':>11s} {'minutes':>8s}", flush=True)
    # One learn() call over the whole budget, as GAIL's: its learning-rate and clip schedules decay over all of it.
    model.learn(steps, callback=Every())
    report()
    return 0


def gail_generator(a: GAILConfig, args: argparse.Namespace) -> tuple[Any, Any]:
    """GAIL's generator and its env, as ``algo=gail`` builds them."""
    venv = make_vec_env(args.env, n_envs=a.n_envs, seed=args.seed, subprocess=a.vec_env == "subproc")
    if a.normalize_obs:
        # As GAIL wraps its generator's env: observations normalised, the reward left as it comes.
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False, gamma=a.sb3_kwargs.gamma)
    return venv, build_generator(a, venv, args.seed)


def unmatched(a: SAMConfig) -> list[str]:
    """SAM's settings for its generator that SB3's algorithm has no equivalent of (named by key)."""
    ac, g = a.ac, f"algo.{a.generator}"
    keys = {
        f"{g}.nstep={ac.nstep}": ac.nstep > 1,
        f"{g}.critic.popart=true": ac.critic.popart,
        f"{g}.critic.loss={ac.critic.loss}": ac.critic.loss != "mse",
        f"{g}.critic.weight_decay={ac.critic.weight_decay}": ac.critic.weight_decay > 0,
        f"{g}.network.layer_norm=true": ac.network.layer_norm,
        f"{g}.network.head_init={ac.network.head_init}": ac.network.head_init is not None,
        f"{g}.actor.preact_penalty={ac.actor.preact_penalty}": ac.actor.preact_penalty > 0,
        f"algo.grad_clip={a.grad_clip}": a.grad_clip is not None,
    }
    if not isinstance(ac, SACActorCritic):
        keys[f"{g}.exploration.param_noise={ac.exploration.param_noise}"] = ac.exploration.param_noise is not None
    return [k for k, differs in keys.items() if differs]


def sam_reference(a: SAMConfig, args: argparse.Namespace) -> tuple[Any, Any]:
    """SB3's algorithm of ``algo.generator`` with SAM's settings for it, and its env."""
    ac, gen = a.ac, a.generator
    if ac.actor.lr != ac.critic.lr:
        raise ConfigError(
            f"algo.{gen}.actor.lr={ac.actor.lr} and algo.{gen}.critic.lr={ac.critic.lr} differ, and SB3's {gen.upper()} has one "
            f"learning rate; accepted here: equal rates"
        )
    venv = make_vec_env(args.env, n_envs=1, seed=args.seed)
    if ac.normalize_obs:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False, gamma=a.gamma, clip_obs=ac.obs_clip)
    act_dim = venv.action_space.shape[0]
    net = ac.network
    kwargs: dict[str, Any] = {
        "learning_rate": ac.actor.lr,
        "buffer_size": a.buffer_size,
        "learning_starts": ac.learning_starts,
        "batch_size": a.batch_size,
        "tau": a.tau,
        "gamma": a.gamma,
        "train_freq": a.schedule.env_steps,
        "gradient_steps": a.schedule.train_steps * a.schedule.g_steps,
        "policy_kwargs": {
            "net_arch": list(net.hidden),
            "activation_fn": activation(net.activation, f"algo.{gen}.network.activation"),
            "n_critics": ac.critic.n_critics,
        },
    }
    if isinstance(ac, SACActorCritic):
        e = ac.entropy
        kwargs["ent_coef"] = f"auto_{e.init}" if e.coef == "auto" else e.coef
        kwargs["target_entropy"] = e.target
    else:
        kwargs["policy_delay"] = ac.actor.policy_delay
        kwargs["target_policy_noise"] = ac.critic.target_noise
        kwargs["target_noise_clip"] = ac.critic.target_noise_clip
        sigma = ac.exploration.action_noise_sigma * np.ones(act_dim)
        kwargs["action_noise"] = NormalActionNoise(np.zeros(act_dim), sigma)  # SB3's TD3 explores with Gaussian noise
    cls = {"ddpg": TD3, "td3": TD3, "sac": SAC}[gen]  # SB3's DDPG is TD3 with one critic, no delay and no smoothing
    return venv, cls("MlpPolicy", venv, seed=args.seed, device="cpu", **kwargs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
