"""SAM (Blondé & Kalousis 2019) behind ``launch.py algo=sam``: build, validate, run the loop.

One iteration, repeated until ``train.env_steps`` interactions (summed over workers):

1. **Collect** ``schedule.env_steps`` steps per worker with the perturbed actor plus action
   noise (SB3 ``collect_rollouts``); the env reward never reaches the learner (it is zero in
   the buffer, or D's reward with ``recompute_rewards=false``) and is only logged.
2. **Train** ``schedule.train_steps`` SAM training steps (:class:`ail.algos.sam_agent.SAM`).

With ``algo.workers=K`` the main process is rank 0 (evaluation, logging, checkpoints) and
K-1 spawned processes join it over gloo; each worker collects from its own env, so one
iteration costs ``K * schedule.env_steps`` interactions, which is what ``env_steps`` counts.
A checkpoint holds every worker's full state (replay, simulator, noise, RNGs), so a resumed
run continues exactly.

With ``train.seeds_per_process=K`` (:func:`train_seeds`) one process instead runs K independent
seeds, each a :class:`Seed` with its own run directory; they collect one after the other and
train together, their updates stacked by :class:`ail.algos.sam_compiled.StackedSteps`.
"""
from __future__ import annotations

import contextlib
import datetime
import math
import os
import socket
import sys
from typing import Any, Iterator, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.vec_env import VecNormalize

from ail import distributed
from ail.demos import check_demos_match_env
from ail.algos.sam_agent import SAM, SAMSettings
from ail.algos.sam_compiled import StackedSteps
from ail.activations import activation
from ail.algos.sam_nets import SAMPolicy
from ail.discriminator import build_discriminator, check_reward_for_task, label_smoothing_from_cfg
from ail.env_state import get_vec_env_states, set_vec_env_states
from ail.envs import ENV_IDS, is_mujoco, make_env, make_vec_env
from ail.errors import ConfigError, TrainingError
from ail.exploration import AdaptiveParamNoise
from ail.policy import LoadedPolicy, ObsNormalizer, save_policy
from ail.preemption import Preempted, PreemptionFlag
from ail.replay import CompactReplayBuffer, buffer_state, load_buffer_state
from ail.reward_wrapper import RewardVecEnvWrapper
from ail.seeding import rng_state, set_random_seed, set_rng_state

CLIP_OBS = 5.0
WORKER_SEED_STRIDE = 1_000_000  # sam-tf: seed + 1e6 * rank
# A worker that died leaves the others blocked in a collective: fail after this long instead of
# gloo's 30 minutes. Rank 0's evaluations (the longest wait for the others) take seconds.
WORKER_TIMEOUT = datetime.timedelta(minutes=10)


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name}={value} is invalid; accepted: a positive integer")


def validate(cfg: DictConfig, demos: Any) -> None:
    """Every check that needs no training, run before the run directory exists."""
    a = cfg.algo
    env = make_env(cfg.env.name)
    if not isinstance(env.action_space, gym.spaces.Box):
        continuous = [n for n in ENV_IDS if is_mujoco(n)]  # every MuJoCo task here has Box actions
        raise ConfigError(
            f"SAM needs continuous actions, but env={cfg.env.name} has {env.action_space}; accepted envs: {', '.join(continuous)}"
        )
    check_reward_for_task(str(a.reward), str(cfg.env.termination), bool(a.absorbing), bool(a.allow_biased_reward))
    label_smoothing_from_cfg(OmegaConf.to_container(a.discriminator, resolve=True)["label_smoothing"])
    for key in ("workers", "nstep", "batch_size", "buffer_size"):
        _positive(f"algo.{key}", a[key])
    for key in ("env_steps", "train_steps", "d_steps", "g_steps"):
        _positive(f"algo.schedule.{key}", a.schedule[key])
    _positive("algo.discriminator.batch_size", a.discriminator.batch_size)
    _positive("algo.critic.n_critics", a.critic.n_critics)
    _positive("algo.actor.policy_delay", a.actor.policy_delay)
    if str(a.critic.loss) not in ("huber", "mse"):
        raise ConfigError(f"algo.critic.loss={a.critic.loss} is invalid; accepted: huber, mse")
    if str(a.exploration.action_noise) not in ("ou", "normal", "none"):
        raise ConfigError(f"algo.exploration.action_noise={a.exploration.action_noise} is invalid; accepted: ou, normal, none")
    activation(str(a.network.activation), "algo.network.activation")
    if not 0 < float(a.gamma) < 1:
        raise ConfigError(f"algo.gamma={a.gamma} is invalid; accepted: 0 < gamma < 1")
    if int(a.learning_starts) < 0:
        raise ConfigError(f"algo.learning_starts={a.learning_starts} is invalid; accepted: an integer >= 0")
    k = int(cfg.train.get("seeds_per_process", 1))
    device = str(cfg.runtime.device)
    if device != "cpu" and int(a.workers) > 1:
        raise ConfigError(f"algo.workers={a.workers} with runtime.device={device} is not supported (the workers average gradients over "
                          f"gloo on the CPU); accepted on a GPU: algo.workers=1, and train.seeds_per_process=K for K seeds on one GPU")
    if k > 1 and int(a.workers) > 1:
        raise ConfigError(f"train.seeds_per_process={k} with algo.workers={a.workers} is not supported; accepted: only one of them above 1")
    if k > 1:
        for off, what in ((bool(a.absorbing), "algo.absorbing=true"), (bool(a.discriminator.spectral_norm), "algo.discriminator.spectral_norm=true"),
                          (float(a.actor.d_scale) != 0, f"algo.actor.d_scale={a.actor.d_scale}")):
            if off:
                raise ConfigError(f"train.seeds_per_process={k} stacks SAM's functional update, which {what} does not use; "
                                  f"accepted with {what}: train.seeds_per_process=1")
    check_demos_match_env(demos, env.observation_space, env.action_space)
    build_discriminator(_d_space(env.observation_space, bool(a.absorbing)), env.action_space, a.discriminator, absorbing=bool(a.absorbing))
    env.close()


def _d_space(space: gym.spaces.Box, absorbing: bool) -> gym.spaces.Box:
    if not absorbing:
        return space
    return gym.spaces.Box(np.append(space.low, 0.0).astype(np.float32), np.append(space.high, 1.0).astype(np.float32))


def settings_from_cfg(a: DictConfig, seeds_per_process: int = 1) -> SAMSettings:
    d = a.discriminator
    return SAMSettings(
        nstep=int(a.nstep), one_step_loss=bool(a.one_step_loss), critic_loss=str(a.critic.loss),
        weight_decay=float(a.critic.weight_decay), popart=bool(a.critic.popart),
        d_steps=int(a.schedule.d_steps), g_steps=int(a.schedule.g_steps), d_batch_size=int(d.batch_size),
        grad_penalty=float(d.grad_penalty), label_smoothing=label_smoothing_from_cfg(OmegaConf.to_container(d, resolve=True)["label_smoothing"]),
        entropy_weight=float(d.entropy_weight), reward=str(a.reward), recompute_rewards=bool(a.recompute_rewards),
        absorbing=bool(a.absorbing), q_scale=float(a.actor.q_scale), d_scale=float(a.actor.d_scale),
        grad_clip=None if a.grad_clip is None else float(a.grad_clip), adapt_every=int(a.exploration.adapt_every),
        compile=bool(a.get("compile", False)), stacked=int(seeds_per_process) > 1,
    )


class Worker:
    """One SAM instantiation: env, replay, noise and model (rank 0 also evaluates and logs)."""

    def __init__(self, cfg: DictConfig, demos: Any, rank: int):
        a = self.a = cfg.algo
        self.cfg, self.rank = cfg, rank
        seed = int(cfg.seed)
        wseed = seed + WORKER_SEED_STRIDE * rank
        self.device = torch.device(str(cfg.runtime.device))
        set_random_seed(wseed, int(cfg.runtime.threads))
        self.venv = make_vec_env(cfg.env.name, n_envs=1, seed=wseed)
        space = self.venv.observation_space
        self.disc = build_discriminator(_d_space(space, bool(a.absorbing)), self.venv.action_space, a.discriminator,
                                        absorbing=bool(a.absorbing)).to(self.device)
        self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=float(a.discriminator.lr), fused=True)
        if a.recompute_rewards:
            fn = lambda obs, _a, _n, _d: np.zeros(len(obs), dtype=np.float32)  # noqa: E731 - D scores steps when they are sampled
        else:
            fn = lambda obs, act, _n, _d: self.model.d_reward(  # noqa: E731 - sam-tf: D's reward at collection time, never updated
                torch.as_tensor(obs, dtype=torch.float32, device=self.device),
                torch.as_tensor(act, dtype=torch.float32, device=self.device)).detach().cpu().numpy()
        self.reward_venv = RewardVecEnvWrapper(self.venv, fn, record=False)
        self.env: Any = self.reward_venv
        if a.normalize_obs:
            self.env = VecNormalize(self.reward_venv, norm_obs=True, norm_reward=False, clip_obs=CLIP_OBS, gamma=float(a.gamma))
            self.env.training = False  # SAM updates the statistics itself (synchronised across workers)
        act_dim = int(np.prod(self.venv.action_space.shape))
        e = a.exploration
        noise: Any = None
        if e.action_noise == "ou":
            noise = OrnsteinUhlenbeckActionNoise(np.zeros(act_dim), float(e.action_noise_sigma) * np.ones(act_dim))
        elif e.action_noise == "normal":
            noise = NormalActionNoise(np.zeros(act_dim), float(e.action_noise_sigma) * np.ones(act_dim))
        self.model = SAM(
            SAMPolicy, self.env, learning_rate=float(a.critic.lr), buffer_size=int(a.buffer_size),
            replay_buffer_class=CompactReplayBuffer,  # observations once, float32: ~1.4 GB, not 5.6, for 1M Humanoid steps
            learning_starts=int(a.learning_starts), batch_size=int(a.batch_size), tau=float(a.tau), gamma=float(a.gamma),
            train_freq=(int(a.schedule.env_steps), "step"), gradient_steps=int(a.schedule.train_steps), action_noise=noise,
            policy_delay=int(a.actor.policy_delay), target_policy_noise=float(a.critic.target_noise),
            target_noise_clip=float(a.critic.target_noise_clip), seed=wseed, device=self.device, verbose=0,
            policy_kwargs=dict(net_arch=list(a.network.hidden), activation_fn=activation(str(a.network.activation), "algo.network.activation"),
                               n_critics=int(a.critic.n_critics), layer_norm=bool(a.network.layer_norm),
                               optimizer_kwargs={"fused": True}),  # one kernel per Adam step, not one per tensor
        )
        for group in self.model.actor.optimizer.param_groups:
            group["lr"] = float(a.actor.lr)
        pn = None if e.param_noise is None else AdaptiveParamNoise(self.model.actor, float(e.param_noise), float(e.param_noise))
        expert = {"obs": demos.obs, "actions": demos.actions, "terminated": demos.terminated}
        self.model.setup_imitation(self.disc, self.d_opt, expert, settings_from_cfg(a, int(cfg.train.get("seeds_per_process", 1))), pn, seed)
        distributed.broadcast_module(self.model.policy)
        distributed.broadcast_module(self.disc)
        self.model.actor_target.load_state_dict(self.model.actor.state_dict())
        self.model.critic_target.load_state_dict(self.model.critic.state_dict())
        if pn is not None:
            pn.resample(self.model.actor, self.model.gen)
        self.per_worker_total = math.ceil(int(cfg.train.env_steps) / distributed.world_size())
        _, self.callback = self.model._setup_learn(self.per_worker_total, callback=None, reset_num_timesteps=True, progress_bar=False)
        self.iterations = 0

    # ----- checkpoint state ------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        m = self.model
        return {
            "model": m.get_parameters(), "num_timesteps": m.num_timesteps, "n_updates": m._n_updates, "train_steps": m.train_steps,
            "episode_num": m._episode_num, "last_obs": m._last_obs, "last_original_obs": m._last_original_obs,
            "last_episode_starts": m._last_episode_starts, "ep_info_buffer": list(m.ep_info_buffer),
            "env_states": get_vec_env_states(self.venv), "wrapper_obs": self.reward_venv._obs,
            "obs_rms": getattr(self.env, "obs_rms", None), "old_obs": getattr(self.env, "old_obs", None),
            "buffer": buffer_state(m.replay_buffer), "disc": self.disc.state_dict(), "d_opt": self.d_opt.state_dict(),
            "popart": m.popart.state_dict() if m.popart else None, "action_noise": m.action_noise,
            "param_noise": None if m.param_noise is None else {"sigma": m.param_noise.sigma, "perturbed": m.param_noise.perturbed.state_dict()},
            "rng": rng_state(), "np_rng": m.rng.bit_generator.state, "gen": m.gen.get_state(), "iterations": self.iterations,
        }

    def restore(self, s: dict[str, Any]) -> None:
        m = self.model
        m.set_parameters(s["model"], exact_match=True, device=self.device)
        m.num_timesteps, m._n_updates, m.train_steps, m._episode_num = s["num_timesteps"], s["n_updates"], s["train_steps"], s["episode_num"]
        m._last_obs, m._last_original_obs, m._last_episode_starts = s["last_obs"], s["last_original_obs"], s["last_episode_starts"]
        m.ep_info_buffer.clear()
        m.ep_info_buffer.extend(s["ep_info_buffer"])
        set_vec_env_states(self.venv, s["env_states"])
        self.reward_venv._obs = s["wrapper_obs"]
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
        set_rng_state(s["rng"])
        m.rng.bit_generator.state = s["np_rng"]
        m.gen.set_state(s["gen"])
        m.refresh_obs_stats()  # the actor/critic's cached statistics follow the restored ones
        self.iterations = s["iterations"]

    # ----- acting policy ---------------------------------------------------------------------
    def acting_policy(self) -> LoadedPolicy:
        normalizer = None
        if isinstance(self.env, VecNormalize):
            normalizer = ObsNormalizer(self.env.obs_rms.mean.copy(), self.env.obs_rms.var.copy(), CLIP_OBS, self.env.epsilon)
        return LoadedPolicy(self.model.policy, normalizer)

    def collect(self) -> None:
        """Collect c_max env steps with the exploring policy."""
        m = self.model
        m.collect_rollouts(self.env, self.callback, m.train_freq, m.replay_buffer, m.action_noise, m.learning_starts)

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


class Seed:
    """One seed in the training loop: its worker, its run (rank 0 only) and its bookkeeping.

    With K seeds in one process (``train.seeds_per_process``) each seed also keeps its own
    global random streams (numpy, torch, python: SB3's action noise draws from numpy's), swapped
    in around every phase that may draw from them, so each follows the stream it would alone.
    """

    def __init__(self, cfg: DictConfig, demos: Any, run: Optional[Any], own_streams: bool):
        self.cfg, self.run, self.demo_pairs = cfg, run, len(demos)
        self.w = Worker(cfg, demos, distributed.rank())  # seeds the global streams itself
        self.streams = rng_state() if own_streams else None
        saved = run.load_checkpoint() if run is not None else None
        self.meta = {key: v for key, v in saved.items() if key != "ranks"} if saved else {"next_eval": 0, "evals_done": 0, "first_reach": {}}
        part: Optional[dict[str, Any]] = None
        if distributed.active():
            # Only rank 0 read the checkpoint: every worker gets the bookkeeping and its own state.
            box = [self.meta, saved is not None]
            dist.broadcast_object_list(box, src=0)
            self.meta, resumed = box
            part = _exchange(saved["ranks"] if saved else None) if resumed else None
        elif saved:
            part = saved["ranks"][0]
        if part is not None:
            with self.own_streams():
                self.w.restore(part)

    @contextlib.contextmanager
    def own_streams(self) -> Iterator[None]:
        if self.streams is None:
            yield
            return
        outer = rng_state()
        set_rng_state(self.streams)
        try:
            yield
        finally:
            self.streams = rng_state()
            set_rng_state(outer)

    def env_steps(self) -> int:
        return self.w.model.num_timesteps * distributed.world_size()

    def save(self) -> None:
        with self.own_streams():
            parts = _gather(self.w.snapshot())
        if self.run is not None:
            self.run.save_checkpoint({"ranks": parts, **self.meta}, self.env_steps(), self.w.model._n_updates)

    def evaluate(self, logs: dict[str, float]) -> dict[str, Any]:
        with self.own_streams():
            row = self.run.evaluate(self.w.acting_policy(), self.env_steps(), self.w.model._n_updates, logs)
        for threshold in (0.9, 0.95):
            key = f"env_steps_to_{threshold}"
            if key not in self.meta["first_reach"] and row["normalized_score"] >= threshold:
                self.meta["first_reach"][key] = self.env_steps()
        return row

    def train_logs(self) -> dict[str, float]:
        m = self.w.model
        logs = dict(m.logs)
        if m.ep_info_buffer:
            logs["train_true_return"] = float(np.mean([e["r"] for e in m.ep_info_buffer]))
        return logs

    def finish(self) -> None:
        m, final = self.w.model, self.w.acting_policy()
        self.run.finish(
            lambda path: save_policy(path, m.policy, final.normalizer, meta={"algo": "sam", "env": self.cfg.env.name}),
            final, self.env_steps(), m._n_updates,
            extra={"demo_pairs": self.demo_pairs, "workers": distributed.world_size(), "iterations": self.w.iterations,
                   **self.meta["first_reach"]},
        )


def _loop(cfgs: list[DictConfig], demos: Any, runs: list[Optional[Any]]) -> None:
    """The training loop every worker runs, for one seed or K stacked ones (``runs``: rank 0 only)."""
    seeds = [Seed(c, demos, r, own_streams=len(cfgs) > 1) for c, r in zip(cfgs, runs)]
    lead, cfg = seeds[0], cfgs[0]
    m, k = lead.w.model, distributed.world_size()
    if len({s.env_steps() for s in seeds}) > 1:
        where = ", ".join(f"seed {c.seed}: {s.env_steps()}" for c, s in zip(cfgs, seeds))
        raise ConfigError(f"train.seeds_per_process={len(seeds)} needs its seeds' checkpoints at the same env step ({where}); "
                          f"accepted: resume these seeds one per process (train.seeds_per_process=1)")
    stacked = StackedSteps([s.w.model for s in seeds], enabled=bool(cfg.algo.compile)) if len(seeds) > 1 else None
    every = int(cfg.eval.every)
    rank0 = runs[0] is not None
    flag = runs[0].flag if rank0 else PreemptionFlag()

    if lead.env_steps() == 0 and lead.meta["evals_done"] == 0:
        for s in seeds:
            if rank0:
                s.evaluate({})
            s.meta["evals_done"] += 1
            s.meta["next_eval"] = every
    total = lead.w.per_worker_total
    name = f"{cfg.env.name}-d{cfg.demos}-s" + ",".join(str(c.seed) for c in cfgs)
    columns = [TextColumn(f"[bold]{cfg.algo.label}[/] {{task.description}}"), BarColumn(), MofNCompleteColumn(), TextColumn("env steps"),
               TimeRemainingColumn(), TextColumn("{task.fields[last]}")]
    show = rank0 and bool(cfg.runtime.progress)
    with flag, Progress(*columns, disable=not show) as bar:
        task = bar.add_task(name, total=total * k, completed=lead.env_steps(), last="")
        while m.num_timesteps < total:
            try:
                for s in seeds:
                    with s.own_streams():
                        s.w.collect()
                if lead.w.learning:
                    if stacked is not None:
                        stacked.train(m.gradient_steps)
                    else:
                        m.train(gradient_steps=m.gradient_steps, batch_size=m.batch_size)
                for s in seeds:
                    s.w.iterations += 1
            except TrainingError as exc:
                where = " / ".join(str(r.ckpt_path) for r in runs) if rank0 else "the run's checkpoints/last.pt"
                raise TrainingError(f"{exc} at env step {lead.env_steps()}; stopped. The last good checkpoint ({where}) is kept; "
                                    f"lower algo.discriminator.lr or algo.critic.lr, then relaunch to resume from it") from None
            bar.update(task, completed=min(lead.env_steps(), total * k))
            due = lead.env_steps() >= lead.meta["next_eval"] or m.num_timesteps >= total
            for s in seeds:
                if due and rank0:
                    row = s.evaluate(s.train_logs())
                    if s is lead:
                        bar.update(task, last=f"{bar.tasks[0].speed or 0:.0f} steps/s | eval {row['return_mean']:.1f} (score {row['normalized_score']:.2f})")
                if due:
                    s.meta["evals_done"] += 1
                    s.meta["next_eval"] = (s.env_steps() // every + 1) * every
                    if s.meta["evals_done"] % int(cfg.train.checkpoint_every) == 0:
                        s.save()
            if distributed.mean_scalar(float(flag.requested)) > 0:
                for s in seeds:
                    s.save()
                    if s.run is not None and s.run.logger:
                        s.run.logger.close()
                raise Preempted(flag.signum or 15, lead.env_steps())
    if rank0:
        for s in seeds:
            s.finish()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker_main(rank: int, world: int, port: int, cfg_dict: dict[str, Any], demos: Any) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=WORKER_TIMEOUT)
    try:
        _loop([OmegaConf.create(cfg_dict)], demos, [None])
    except Preempted:
        pass
    finally:
        # Tear down only when every worker is done: a gloo peer that vanishes mid-teardown aborts the others.
        dist.barrier()
        dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, where gloo's threads can still trip std::terminate


def train_seeds(runs: list[Any]) -> None:
    """``train.seeds_per_process=K``: K seeds in this process (validated by the caller), each
    collecting, evaluating and checkpointing on its own, their updates stacked
    (:class:`ail.algos.sam_compiled.StackedSteps`)."""
    _loop([r.cfg for r in runs], runs[0].demos, runs)


def train(run: Any) -> None:
    cfg = run.cfg
    validate(cfg, run.demos)
    k = int(cfg.algo.workers)
    if k == 1:
        _loop([cfg], run.demos, [run])
        return
    port = _free_port()
    cfg_dict = OmegaConf.to_container(cfg, resolve=True)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(r, k, port, cfg_dict, run.demos), daemon=True) for r in range(1, k)]
    for p in procs:
        p.start()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=k, timeout=WORKER_TIMEOUT)
    try:
        _loop([cfg], run.demos, [run])
    finally:
        dist.barrier()
        dist.destroy_process_group()
        for p in procs:
            p.join(timeout=60)
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise TrainingError(f"{len(bad)} SAM worker process(es) failed (exit codes {bad}); see the log above")
