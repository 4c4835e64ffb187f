"""SAM (Blondé & Kalousis 2019) behind ``launch.py algo=sam``: build, validate, iterate.

One iteration, repeated until ``train.env_steps`` interactions (summed over workers):

1. **Collect** ``schedule.env_steps`` steps per worker with the perturbed actor plus action
   noise (SB3 ``collect_rollouts``); the env reward never reaches the learner (it is zero in
   the buffer, or D's reward with ``recompute_rewards=false``) and is only logged.
2. **Train** ``schedule.train_steps`` SAM training steps (:class:`ail.algos.sam.agent.SAM`).

With ``algo.workers=K`` the main process is rank 0 (evaluation, logging, checkpoints) and
K-1 spawned processes join it over gloo; each worker collects from its own env, so one
iteration costs ``K * schedule.env_steps`` interactions, which is what ``env_steps`` counts.
A checkpoint holds every worker's full state (replay, simulator, noise, RNGs), so a resumed
run continues exactly.

With ``train.seeds_per_process=K`` one process instead runs K independent seeds
(:class:`SAMLearner`), each a :class:`Worker` with its own run directory; they collect one after
the other and train together, their updates stacked by :class:`ail.algos.sam.compiled.StackedSteps`.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import socket
import sys
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.vec_env import VecNormalize

from ail import distributed, train_loop
from ail.activations import activation
from ail.algorithm import Learner
from ail.algos.sam.agent import SAM, SAMSettings
from ail.algos.sam.compiled import StackedSteps
from ail.algos.sam.exploration import AdaptiveParamNoise
from ail.algos.sam.nets import SAMPolicy
from ail.algos.sam.replay import CompactReplayBuffer, buffer_state, load_buffer_state
from ail.demos import Demos, check_demos_match_env
from ail.discriminator import build_discriminator, check_reward_for_task, label_smoothing
from ail.env_state import get_vec_env_states, set_vec_env_states
from ail.envs import SHIPPED, is_mujoco, make_env, make_vec_env
from ail.errors import ConfigError, TrainingError
from ail.policy import LoadedPolicy, ObsNormalizer, save_policy
from ail.preemption import Preempted
from ail.reward_wrapper import RewardVecEnvWrapper
from ail.sb3_state import SB3Progress
from ail.seeding import derive_seed, rng_state, set_random_seed, set_rng_state

# A worker that died leaves the others blocked in a collective: fail after this long instead of
# gloo's 30 minutes. Rank 0's evaluations (the longest wait for the others) take seconds.
WORKER_TIMEOUT = datetime.timedelta(minutes=10)


def _d_space(space: gym.spaces.Box, absorbing: bool) -> gym.spaces.Box:
    if not absorbing:
        return space
    return gym.spaces.Box(np.append(space.low, 0.0).astype(np.float32), np.append(space.high, 1.0).astype(np.float32))


def settings_from_cfg(a: DictConfig, seeds_per_process: int = 1) -> SAMSettings:
    d = a.discriminator
    return SAMSettings(
        nstep=int(a.nstep),
        one_step_loss=bool(a.one_step_loss),
        critic_loss=str(a.critic.loss),
        weight_decay=float(a.critic.weight_decay),
        popart=bool(a.critic.popart),
        popart_min_var=float(a.critic.popart_min_var),
        d_steps=int(a.schedule.d_steps),
        g_steps=int(a.schedule.g_steps),
        d_batch_size=int(d.batch_size),
        grad_penalty=float(d.grad_penalty),
        label_smoothing=label_smoothing(d),
        entropy_weight=float(d.entropy_weight),
        reward=str(a.reward),
        recompute_rewards=bool(a.recompute_rewards),
        absorbing=bool(a.absorbing),
        q_scale=float(a.actor.q_scale),
        d_scale=float(a.actor.d_scale),
        grad_clip=None if a.grad_clip is None else float(a.grad_clip),
        adapt_every=int(a.exploration.adapt_every),
        compile=bool(a.get("compile", False)),
        stacked=int(seeds_per_process) > 1,
    )


class Worker:
    """One SAM instantiation: env, replay, noise and model (rank 0 also evaluates and logs)."""

    def __init__(self, cfg: DictConfig, demos: Any, rank: int):
        a = self.a = cfg.algo
        self.cfg, self.rank = cfg, rank
        seed = int(cfg.seed)
        wseed = derive_seed("worker", seed, rank)  # sam-tf: seed + 1e6 * rank
        self.device = torch.device(str(cfg.runtime.device))
        set_random_seed(wseed, int(cfg.runtime.threads))
        self.venv = make_vec_env(cfg.env.name, n_envs=1, seed=wseed)
        space = self.venv.observation_space
        self.disc = build_discriminator(_d_space(space, bool(a.absorbing)), self.venv.action_space, a.discriminator, absorbing=bool(a.absorbing)).to(
            self.device
        )
        self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=float(a.discriminator.lr), fused=True)
        recompute = bool(a.recompute_rewards)

        def reward(obs: np.ndarray, act: np.ndarray, _next: Any, _done: Any) -> np.ndarray:
            if recompute:  # D scores steps when they are sampled
                return np.zeros(len(obs), dtype=np.float32)
            as_tensor = partial(torch.as_tensor, dtype=torch.float32, device=self.device)  # sam-tf: D's reward at collection, never updated
            return self.model.d_reward(as_tensor(obs), as_tensor(act)).detach().cpu().numpy()

        self.reward_venv = RewardVecEnvWrapper(self.venv, reward, record=False)
        self.env: Any = self.reward_venv
        if a.normalize_obs:
            self.env = VecNormalize(self.reward_venv, norm_obs=True, norm_reward=False, clip_obs=float(a.obs_clip), gamma=float(a.gamma))
            self.env.training = False  # SAM updates the statistics itself (synchronised across workers)
        act_dim = int(np.prod(self.venv.action_space.shape))
        e = a.exploration
        noise: Any = None
        if e.action_noise == "ou":
            noise = OrnsteinUhlenbeckActionNoise(np.zeros(act_dim), float(e.action_noise_sigma) * np.ones(act_dim))
        elif e.action_noise == "normal":
            noise = NormalActionNoise(np.zeros(act_dim), float(e.action_noise_sigma) * np.ones(act_dim))
        self.model = SAM(
            SAMPolicy,
            self.env,
            learning_rate=float(a.critic.lr),
            buffer_size=int(a.buffer_size),
            replay_buffer_class=CompactReplayBuffer,  # observations once, float32: ~1.4 GB, not 5.6, for 1M Humanoid steps
            learning_starts=int(a.learning_starts),
            batch_size=int(a.batch_size),
            tau=float(a.tau),
            gamma=float(a.gamma),
            train_freq=(int(a.schedule.env_steps), "step"),
            gradient_steps=int(a.schedule.train_steps),
            action_noise=noise,
            policy_delay=int(a.actor.policy_delay),
            target_policy_noise=float(a.critic.target_noise),
            target_noise_clip=float(a.critic.target_noise_clip),
            seed=wseed,
            device=self.device,
            verbose=0,
            policy_kwargs=dict(
                net_arch=list(a.network.hidden),
                activation_fn=activation(str(a.network.activation), "algo.network.activation"),
                n_critics=int(a.critic.n_critics),
                layer_norm=bool(a.network.layer_norm),
                head_init=float(a.network.head_init),
                optimizer_kwargs={"fused": True},
            ),  # one kernel per Adam step, not one per tensor
        )
        for group in self.model.actor.optimizer.param_groups:
            group["lr"] = float(a.actor.lr)
        pn = (
            None
            if e.param_noise is None
            else AdaptiveParamNoise(self.model.actor, float(e.param_noise), float(e.param_noise), float(e.param_noise_factor))
        )
        expert = {"obs": demos.obs, "actions": demos.actions, "terminated": demos.terminated}
        self.model.setup_imitation(self.disc, self.d_opt, expert, settings_from_cfg(a, int(cfg.train.get("seeds_per_process", 1))), pn, seed)
        distributed.broadcast_module(self.model.policy)
        distributed.broadcast_module(self.disc)
        self.model.actor_target.load_state_dict(self.model.actor.state_dict())
        self.model.critic_target.load_state_dict(self.model.critic.state_dict())
        if pn is not None:
            pn.resample(self.model.actor, self.model.gen)
        self.per_worker_total = math.ceil(int(cfg.train.env_steps) / distributed.world_size())
        self.sb3 = SB3Progress(self.model, self.per_worker_total)
        self.iterations = 0

    # ----- checkpoint state ------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        m = self.model
        return {
            "sb3": self.sb3.state_dict(),
            "train_steps": m.train_steps,
            "env_states": get_vec_env_states(self.venv),
            "wrapper_obs": self.reward_venv.state(),
            "obs_rms": getattr(self.env, "obs_rms", None),
            "old_obs": getattr(self.env, "old_obs", None),
            "buffer": buffer_state(m.replay_buffer),
            "disc": self.disc.state_dict(),
            "d_opt": self.d_opt.state_dict(),
            "popart": m.popart.state_dict() if m.popart else None,
            "action_noise": m.action_noise,
            "param_noise": None
            if m.param_noise is None
            else {"sigma": m.param_noise.sigma, "perturbed": m.param_noise.perturbed.state_dict(), "last_distance": m.param_noise.last_distance},
            "rng": rng_state(),
            "np_rng": m.rng.bit_generator.state,
            "gen": m.gen.get_state(),
            "iterations": self.iterations,
        }

    def restore(self, s: dict[str, Any]) -> None:
        m = self.model
        self.sb3.load_state_dict(s["sb3"])
        m.train_steps = s["train_steps"]
        set_vec_env_states(self.venv, s["env_states"])
        self.reward_venv.set_state(s["wrapper_obs"])
        if isinstance(self.env, VecNormalize):
            self.env.obs_rms, self.env.old_obs = s["obs_rms"], s["old_obs"]
        load_buffer_state(m.replay_buffer, s["buffer"])
        self.disc.load_state_dict(s["disc"])
        self.d_opt.load_state_dict(s["d_opt"])
        if m.popart:
            m.popart.load_state_dict(s["popart"])
        m.action_noise = s["action_noise"]
        if m.param_noise is not None:
            m.param_noise.sigma = s["param_noise"]["sigma"]
            m.param_noise.perturbed.load_state_dict(s["param_noise"]["perturbed"])
            m.param_noise.last_distance = s["param_noise"]["last_distance"]  # logged with every evaluation
        set_rng_state(s["rng"])
        m.rng.bit_generator.state = s["np_rng"]
        m.gen.set_state(s["gen"])
        m.refresh_obs_stats()  # the actor/critic's cached statistics follow the restored ones
        self.iterations = s["iterations"]

    # ----- acting policy ---------------------------------------------------------------------
    def acting_policy(self) -> LoadedPolicy:
        normalizer = None
        if isinstance(self.env, VecNormalize):
            normalizer = ObsNormalizer(self.env.obs_rms.mean.copy(), self.env.obs_rms.var.copy(), self.env.clip_obs, self.env.epsilon)
        return LoadedPolicy(self.model.policy, normalizer)

    def collect(self) -> None:
        """Collect c_max env steps with the exploring policy."""
        self.sb3.collect(self.env)

    @property
    def learning(self) -> bool:
        return self.model.num_timesteps > self.model.learning_starts

    def iterate(self) -> None:
        """One SAM iteration: collect c_max steps, then t_max training steps once learning has started."""
        self.collect()
        if self.learning:
            self.model.train(gradient_steps=self.model.gradient_steps, batch_size=self.model.batch_size)
        self.iterations += 1


def _exchange(state: Optional[Any]) -> Any:
    """Rank 0 hands each worker its part of a checkpoint (a list, one entry per rank) or None."""
    out: list[Any] = [None]
    dist.scatter_object_list(out, state if distributed.rank() == 0 else None, src=0)
    return out[0]


def _gather(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    if not distributed.active():
        return [snapshot]
    out: Optional[list[Any]] = [None] * distributed.world_size() if distributed.rank() == 0 else None
    dist.gather_object(snapshot, out, dst=0)
    return out or []


class SAMLearner(Learner):
    """``algo=sam``: K seeds in this process (``train.seeds_per_process``), each a :class:`Worker`.

    Seeds collect one after the other and train together (their updates stacked by
    :class:`ail.algos.sam.compiled.StackedSteps`). With K > 1 each seed also keeps its own global
    random streams (numpy, torch, python: SB3's action noise draws from numpy's), swapped in around
    every phase that may draw from them, so each follows the stream it would alone.
    """

    max_seeds = 1024
    failure_hint = "lower algo.discriminator.lr or algo.critic.lr"

    @classmethod
    def validate(cls, cfg: DictConfig, demos: Demos) -> None:
        """Every check that needs no training, run before the run directory exists."""
        a = cfg.algo
        env = make_env(cfg.env.name)
        if not isinstance(env.action_space, gym.spaces.Box):
            continuous = [n for n in SHIPPED if is_mujoco(n)]  # every shipped MuJoCo task has Box actions
            raise ConfigError(
                f"SAM needs continuous actions, but env={cfg.env.name} has {env.action_space}; "
                f"accepted envs: {', '.join(continuous)}, or env=gym env.id=<an id with Box actions>"
            )
        check_reward_for_task(str(a.reward), str(cfg.env.termination), bool(a.absorbing), bool(a.allow_biased_reward))
        if int(cfg.train.env_steps) <= int(a.learning_starts) * int(a.workers):
            raise ConfigError(
                f"train.env_steps={cfg.train.env_steps} ends before learning starts (algo.learning_starts={a.learning_starts} "
                f"per worker), so no update would run; accepted: train.env_steps > {int(a.learning_starts) * int(a.workers)}"
            )
        k = int(cfg.train.seeds_per_process)
        device = str(cfg.runtime.device)
        if device != "cpu" and int(a.workers) > 1:
            raise ConfigError(
                f"algo.workers={a.workers} with runtime.device={device} is not supported (the workers average gradients over "
                f"gloo on the CPU); accepted on a GPU: algo.workers=1, and train.seeds_per_process=K for K seeds on one GPU"
            )
        if k > 1 and int(a.workers) > 1:
            raise ConfigError(f"train.seeds_per_process={k} with algo.workers={a.workers} is not supported; accepted: only one of them above 1")
        if k > 1:
            for off, what in (
                (bool(a.absorbing), "algo.absorbing=true"),
                (bool(a.discriminator.spectral_norm), "algo.discriminator.spectral_norm=true"),
                (float(a.actor.d_scale) != 0, f"algo.actor.d_scale={a.actor.d_scale}"),
            ):
                if off:
                    raise ConfigError(
                        f"train.seeds_per_process={k} stacks SAM's functional update, which {what} does not use; "
                        f"accepted with {what}: train.seeds_per_process=1"
                    )
        check_demos_match_env(demos, env.observation_space, env.action_space)
        build_discriminator(_d_space(env.observation_space, bool(a.absorbing)), env.action_space, a.discriminator, absorbing=bool(a.absorbing))
        env.close()

    def __init__(self, cfg: DictConfig, demos: Demos, seeds: Sequence[int]):
        super().__init__(cfg, demos, seeds)
        self.workers: list[Worker] = []
        self.streams: list[Optional[dict[str, Any]]] = []
        for seed in self.seeds:
            c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
            c.seed = seed
            self.workers.append(Worker(c, demos, distributed.rank()))  # seeds the global streams itself
            self.streams.append(rng_state() if len(self.seeds) > 1 else None)
        self.stacked = StackedSteps([w.model for w in self.workers], enabled=bool(cfg.algo.compile)) if len(self.seeds) > 1 else None
        self.iteration_note = (
            f"an iteration collects algo.schedule.env_steps = {cfg.algo.schedule.env_steps} steps in each of "
            f"algo.workers = {cfg.algo.workers} workers"
        )

    @contextlib.contextmanager
    def seed_context(self, i: int) -> Iterator[None]:
        if self.streams[i] is None:
            yield
            return
        outer = rng_state()
        set_rng_state(self.streams[i])
        try:
            yield
        finally:
            self.streams[i] = rng_state()
            set_rng_state(outer)

    @property
    def env_steps(self) -> int:
        return self.workers[0].model.num_timesteps * distributed.world_size()

    @property
    def updates(self) -> int:
        return self.workers[0].sb3.n_updates

    @property
    def budget(self) -> int:
        return self.workers[0].per_worker_total * distributed.world_size()

    def iterate(self) -> list[dict[str, float]]:
        if self.stacked is None:
            self.workers[0].iterate()
        else:
            for i, w in enumerate(self.workers):
                with self.seed_context(i):
                    w.collect()
            if self.workers[0].learning:
                self.stacked.train(self.workers[0].model.gradient_steps)
            for w in self.workers:
                w.iterations += 1
        return [{} for _ in self.workers]  # the update's logs are read when evaluated (evaluation_logs)

    def evaluation_logs(self, i: int = 0) -> dict[str, float]:
        m = self.workers[i].model
        logs = dict(m.logs)
        if m.ep_info_buffer:
            logs["train_true_return"] = float(np.mean([e["r"] for e in m.ep_info_buffer]))
        return logs

    def acting_policy(self, i: int = 0) -> LoadedPolicy:
        return self.workers[i].acting_policy()

    def save_policy(self, i: int, path: Path) -> None:
        w = self.workers[i]
        save_policy(path, w.model.policy, w.acting_policy().normalizer, meta={"algo": "sam", "env": self.cfg.env.name})

    def state_dict(self, i: int = 0) -> Optional[dict[str, Any]]:
        parts = _gather(self.workers[i].snapshot())  # every worker's state, at rank 0
        return {"ranks": parts} if distributed.rank() == 0 else None

    def load_state_dict(self, i: int, state: Optional[dict[str, Any]]) -> None:
        part = _exchange(state["ranks"] if state else None) if distributed.active() else state["ranks"][0]
        self.workers[i].restore(part)

    def summary(self, i: int = 0) -> dict[str, Any]:
        return {"demo_pairs": len(self.demos), "workers": distributed.world_size(), "iterations": self.workers[i].iterations}

    @classmethod
    @contextlib.contextmanager
    def processes(cls, cfg: DictConfig, demos: Demos) -> Iterator[None]:
        """``algo.workers=K``: K-1 spawned processes run their own copy of the loop, joined over gloo."""
        k = int(cfg.algo.workers)
        if k == 1:
            yield
            return
        port = _free_port()
        cfg_dict = OmegaConf.to_container(cfg, resolve=True)
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_worker_main, args=(r, k, port, cfg_dict, demos), daemon=True) for r in range(1, k)]
        for p in procs:
            p.start()
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=k, timeout=WORKER_TIMEOUT)
        try:
            yield
        finally:
            dist.barrier()
            dist.destroy_process_group()
            for p in procs:
                p.join(timeout=60)
        bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
        if bad:
            raise TrainingError(f"{len(bad)} SAM worker process(es) failed (exit codes {bad}); see the log above")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker_main(rank: int, world: int, port: int, cfg_dict: dict[str, Any], demos: Demos) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=WORKER_TIMEOUT)
    try:
        cfg = OmegaConf.create(cfg_dict)
        train_loop.train(SAMLearner(cfg, demos, [int(cfg.seed)]), [None])
    except Preempted:
        pass
    finally:
        # Tear down only when every worker is done: a gloo peer that vanishes mid-teardown aborts the others.
        dist.barrier()
        dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, where gloo's threads can still trip std::terminate
