"""SAM (Blondé & Kalousis 2019) behind ``launch.py algo=sam``: K seeds in one process, stacked.

One iteration, repeated until ``train.env_steps`` interactions (summed over workers):

1. **Collect** ``schedule.env_steps`` steps in each seed's env: uniform random actions before
   the generator's ``learning_starts``, then (ddpg, td3) the seed's perturbed actor
   (:mod:`ail.algos.sam.exploration`) plus action noise, or (sac) an action sampled from the
   seed's policy. The env's reward never reaches the learner: the replay stores 0, or D's reward
   at collection with ``recompute_rewards=false`` (sam-tf). The one exception, ``algo.reward=env``,
   stores the env's reward instead: SAM's actor-critic on the task itself, the ceiling of its
   generator, not imitation (D still trains and is logged, but reaches nothing). Seed ``k``'s
   steps fill replay column ``k`` (:class:`ail.algos.sam.replay.CompactReplayBuffer` with one
   column per seed).
2. **Train** ``schedule.train_steps`` steps once more than ``learning_starts`` steps are in:
   every ``adapt_every`` of them the parameter noise adapts, then ``d_steps`` discriminator and
   ``g_steps`` actor-critic updates of :meth:`ail.algos.sam.update.SAMUpdate.update`, all K
   seeds in one call. A share ``algo.expert_fraction`` of each actor-critic batch is
   demonstration transitions (:mod:`ail.algos.sam.batches`). Every random draw of seed ``k``
   (replay rows, expert pairs, label smoothing, penalty interpolation, target noise, exploration)
   comes from seed ``k``'s own generators, so a seed trained with others follows, to float
   tolerance, the curve it follows alone.

``train.seeds_per_process=K`` sets K; each seed keeps its own run directory and checkpoint.
With ``algo.workers=W`` the main process is rank 0 (evaluation, logging, checkpoints) and W-1
spawned processes join it over gloo, each with its own envs and replay: gradients and running
statistics are averaged (:mod:`ail.distributed`), so one iteration costs ``W * schedule.env_steps``
interactions. A checkpoint holds every worker's full state, so a resumed run continues exactly.
Stable-Baselines3 appears only through its public API: ``VecEnv``, ``RunningMeanStd``, the
replay buffer class, and the TD3 policy a seed's networks are exported to for evaluation and saving.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.running_mean_std import RunningMeanStd

from ail import distributed, train_loop
from ail.activations import activation
from ail.algorithm import Learner
from ail.algos.sam.batches import Batches
from ail.algos.sam.compile import Compiled
from ail.algos.sam.config import SAMConfig
from ail.algos.sam.exploration import ActionNoise, ParamNoise
from ail.algos.sam.nets import SAMPolicy, sequential_state
from ail.algos.sam.replay import CompactReplayBuffer, column_state, load_column_state
from ail.algos.sam.stacked import Adam, to_device
from ail.algos.sam.update import LOGS, SAMUpdate
from ail.demos import Demos
from ail.discriminator import build_discriminator, check_reward_for_task
from ail.env_state import get_vec_env_states, set_vec_env_states
from ail.envs import SHIPPED, is_mujoco, make_env, make_vec_env, use_env
from ail.errors import ConfigError, TrainingError
from ail.policy import LoadedPolicy, ObsNormalizer, save_policy
from ail.preemption import Preempted
from ail.schema import algo_settings
from ail.seeding import derive_seed, deterministic_kernels, rng_state, set_random_seed, set_rng_state

# A worker blocked in a collective fails after this long instead of gloo's 30 minutes (a dead one
# ends the job at once: ail.distributed.spawned). Rank 0's evaluations, the longest wait, take seconds.
WORKER_TIMEOUT = datetime.timedelta(minutes=10)
CHECKPOINT_FORMAT = "sam-stacked-1"
# Settings that sat at the top of algo before the generators had sections (configs of older runs).
_AC_KEYS = ("learning_starts", "nstep", "one_step_loss", "network", "actor", "critic", "exploration", "normalize_obs", "obs_clip")


class SAMLearner(Learner[SAMConfig]):
    """``algo=sam``: K seeds (``train.seeds_per_process``) collected side by side and updated as one stack."""

    max_seeds = 1024
    failure_hint = "lower algo.discriminator.lr or the generator's critic lr (algo.<generator>.critic.lr)"
    devices = ("cpu", "cuda")

    @classmethod
    def upgrade_config(cls, algo: dict[str, Any]) -> dict[str, Any]:
        """A config written before the generators had sections: its actor-critic keys were DDPG's;
        one written before ``expert_fraction``: its actor-critic batches held no expert rows."""
        algo = {"expert_fraction": 0.0, **algo}
        if "generator" in algo or not isinstance(algo.get("actor"), dict):
            return algo
        ddpg = {key: algo[key] for key in _AC_KEYS if key in algo}
        ddpg["actor"] = {"preact_penalty": 0.0, **ddpg["actor"]}  # a config older than the key had none
        rest = {key: v for key, v in algo.items() if key not in _AC_KEYS}
        return {**rest, "generator": "ddpg", "ddpg": {"label": algo.get("label", "sam"), **ddpg}}

    @classmethod
    def validate(cls, cfg: DictConfig, demos: Demos) -> None:
        """Every check that needs no training, run before the run directory exists."""
        a = _settings(cfg)
        env = make_env(cfg.env.name)
        if not isinstance(env.action_space, gym.spaces.Box):
            continuous = [n for n in SHIPPED if is_mujoco(n)]  # every shipped MuJoCo task has Box actions
            raise ConfigError(
                f"SAM needs continuous actions, but env={cfg.env.name} has {env.action_space}; "
                f"accepted envs: {', '.join(continuous)}, or env=gym env.id=<an id with Box actions>"
            )
        if a.reward == "env":
            # The two places D's reward enters besides the targets: refused rather than silently mixed in.
            if a.absorbing:
                raise ConfigError(
                    "algo.reward=env with algo.absorbing=true: the absorbing state's value is D's reward, not the env's; "
                    "accepted with the env's reward: algo.absorbing=false"
                )
            if a.ac.actor.d_scale != 0:
                raise ConfigError(
                    f"algo.reward=env with algo.{a.generator}.actor.d_scale={a.ac.actor.d_scale}: that term is the gradient of D's "
                    f"reward, not the env's; accepted with the env's reward: algo.{a.generator}.actor.d_scale=0"
                )
        else:
            check_reward_for_task(a.reward, str(cfg.env.termination), a.absorbing, a.allow_biased_reward)
        starts = a.ac.learning_starts
        if int(cfg.train.env_steps) <= starts * a.workers:
            raise ConfigError(
                f"train.env_steps={cfg.train.env_steps} ends before learning starts (algo.{a.generator}.learning_starts={starts} "
                f"per worker), so no update would run; accepted: train.env_steps > {starts * a.workers}"
            )
        if a.expert_fraction > 0 and not a.recompute_rewards and a.reward != "env":
            raise ConfigError(
                f"algo.expert_fraction={a.expert_fraction} with algo.recompute_rewards=false: demonstration transitions have no "
                "reward stored at collection; accepted: algo.recompute_rewards=true (their reward from the current D), or algo.expert_fraction=0"
            )
        if round(a.batch_size * a.expert_fraction) >= a.batch_size:
            raise ConfigError(
                f"algo.expert_fraction={a.expert_fraction} leaves no replay rows in a batch of algo.batch_size={a.batch_size}; "
                f"accepted: a fraction below {1 - 0.5 / a.batch_size:.4g}"
            )
        k = int(cfg.train.seeds_per_process)
        device = str(cfg.runtime.device)
        if device != "cpu" and a.workers > 1:
            raise ConfigError(
                f"algo.workers={a.workers} with runtime.device={device} is not supported (the workers average gradients over "
                f"gloo on the CPU); accepted on a GPU: algo.workers=1, and train.seeds_per_process=K for K seeds on one GPU"
            )
        if k > 1 and a.workers > 1:
            raise ConfigError(f"train.seeds_per_process={k} with algo.workers={a.workers} is not supported; accepted: only one of them above 1")
        build_discriminator(env.observation_space, env.action_space, a.discriminator)
        env.close()

    def __init__(self, cfg: DictConfig, demos: Demos, seeds: Sequence[int]):
        super().__init__(cfg, demos, seeds)
        a = self.algo
        rank, k = distributed.rank(), len(self.seeds)
        self.k = k
        self.device = torch.device(str(cfg.runtime.device))
        # Nothing below draws from the global streams; seeded anyway, for the envs' own draws.
        set_random_seed(derive_seed("worker", self.seeds[0], rank), int(cfg.runtime.threads))
        if a.compile or self.device.type == "cuda":
            deterministic_kernels()
        self.venvs = [make_vec_env(cfg.env.name, n_envs=1, seed=derive_seed("worker", s, rank)) for s in self.seeds]
        obs_space, act_space = self.venvs[0].observation_space, self.venvs[0].action_space
        self.obs_space, self.act_space = obs_space, act_space
        self.obs_dim, self.act_dim = int(obs_space.shape[0]), int(act_space.shape[0])
        self.low, self.high = act_space.low.astype(np.float32), act_space.high.astype(np.float32)
        self.upd = SAMUpdate.build(a, self.obs_dim, torch.as_tensor(self.low), torch.as_tensor(self.high)).to(self.device)
        # Parameters from the seed alone (not the rank): every worker starts from the same networks.
        inits = [torch.Generator().manual_seed(derive_seed("sam_init", s, 0)) for s in self.seeds]
        self.st = to_device(self.upd.init_state(inits), self.device)
        self.gens = [torch.Generator().manual_seed(derive_seed("sam_update", s, rank)) for s in self.seeds]
        self.rngs = [np.random.default_rng(derive_seed("sam_replay", s, rank)) for s in self.seeds]
        self.replay = CompactReplayBuffer(a.buffer_size, obs_space, act_space, device="cpu", n_envs=k)
        self.batches = Batches(a, self.replay, self.rngs, self.gens, demos, self.low, self.high, self.upd.recompute_rewards)
        self.obs_rms = [RunningMeanStd(shape=obs_space.shape) for _ in self.seeds] if a.ac.normalize_obs else None
        # ddpg and td3 explore with added noise; sac by sampling its own policy (noise from each seed's generator).
        e = None if a.stochastic else a.ac.exploration
        self.noise = [ActionNoise(e.action_noise if e else "none", e.action_noise_sigma if e else 0.0, self.act_dim) for _ in self.seeds]
        self.param_noise = None if e is None or e.param_noise is None else ParamNoise(self.upd.sample, k, e.param_noise, e.param_noise_factor)
        if self.param_noise is not None:
            self.param_noise.resample(self.st["actor"], self.gens, list(range(k)))
        self.last_obs = np.concatenate([v.reset() for v in self.venvs]).astype(np.float32)
        self.episode_returns: list[collections.deque] = [collections.deque(maxlen=100) for _ in self.seeds]
        self.num_timesteps = self.n_updates = self.train_steps = self.iterations = 0
        self.per_worker_total = math.ceil(int(cfg.train.env_steps) / distributed.world_size())
        self.step_fn = Compiled(self.upd.update, "SAM update", a.compile, cuda_graphs=self.device.type == "cuda", fullgraph=not distributed.active())
        self.iteration_note = (
            f"an iteration collects algo.schedule.env_steps = {a.schedule.env_steps} steps in each of algo.workers = {a.workers} workers"
        )
        self._policy: Optional[SAMPolicy] = None

    # ----- counts ------------------------------------------------------------------------------
    @property
    def env_steps(self) -> int:
        return self.num_timesteps * distributed.world_size()

    @property
    def updates(self) -> int:
        return self.n_updates

    @property
    def budget(self) -> int:
        return self.per_worker_total * distributed.world_size()

    @property
    def learning(self) -> bool:
        return self.num_timesteps > self.algo.ac.learning_starts

    # ----- collection --------------------------------------------------------------------------
    def _refresh_obs_stats(self) -> None:
        """The actor/critic's observation statistics (float32, per seed) from the running ones."""
        if self.obs_rms is None:
            return
        mean = np.stack([r.mean for r in self.obs_rms])[:, None]
        std = np.sqrt(np.stack([r.var for r in self.obs_rms])[:, None] + 1e-8)
        self.st["obs_stats"]["mean"].copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.st["obs_stats"]["std"].copy_(torch.as_tensor(std, dtype=torch.float32))

    def _env_action(self, scaled: np.ndarray) -> np.ndarray:
        return self.low + (scaled + 1.0) * 0.5 * (self.high - self.low)

    def collect_step(self) -> None:
        """One env step of every seed, stored in its replay column."""
        if self.num_timesteps < self.algo.ac.learning_starts:
            scaled = np.stack([rng.uniform(-1.0, 1.0, self.act_dim) for rng in self.rngs]).astype(np.float32)
        else:
            with torch.no_grad():
                obs_n = self.upd.normalize(self.st["obs_stats"], to_device(torch.as_tensor(self.last_obs)[:, None], self.device))
                params = self.param_noise.perturbed if self.param_noise is not None else self.st["actor"]
                draw = self._normal(1) if self.algo.stochastic else None
                mu = self.upd.sample(params, obs_n, draw).action[:, 0].cpu().numpy()
            noise = np.stack([n(rng) for n, rng in zip(self.noise, self.rngs)])
            scaled = np.clip(mu + noise, -1.0, 1.0).astype(np.float32)
        env_act = self._env_action(scaled)
        new_obs, next_obs, dones, infos = [], [], [], []
        env_rew = np.zeros(self.k, dtype=np.float32)
        for k, venv in enumerate(self.venvs):
            obs_k, rew_k, done_k, info_k = venv.step(env_act[k : k + 1])
            env_rew[k] = rew_k[0]
            new_obs.append(obs_k[0])
            next_obs.append(info_k[0]["terminal_observation"] if done_k[0] else obs_k[0])
            dones.append(bool(done_k[0]))
            infos.append(info_k[0])
            if done_k[0] and "episode" in info_k[0]:
                self.episode_returns[k].append(float(info_k[0]["episode"]["r"]))
        reward = np.zeros(self.k, dtype=np.float32)
        if self.algo.reward == "env":
            reward = env_rew
        elif not self.upd.recompute_rewards:  # sam-tf: D's reward at collection, never updated
            with torch.no_grad():
                obs_t = to_device(torch.as_tensor(self.batches.d_obs(self.last_obs))[:, None], self.device)
                r = self.upd.rewards(self.upd.d_params(self.st), self.st["d_stats"], obs_t, to_device(torch.as_tensor(env_act)[:, None], self.device))
            reward = r[:, 0].cpu().numpy()
        self.replay.add(self.last_obs, np.stack(next_obs), scaled, reward, np.array(dones), infos)
        self.last_obs = np.stack(new_obs).astype(np.float32)
        if self.obs_rms is not None:
            # The actor/critic statistics follow the agent's own observations (every worker's alike).
            for k, rms in enumerate(self.obs_rms):
                rms.update(distributed.gather_rows(self.last_obs[k : k + 1].astype(np.float64)))
            self._refresh_obs_stats()
        ended = [k for k, d in enumerate(dones) if d]
        for k in ended:
            self.noise[k].reset()
        if ended and self.param_noise is not None:
            self.param_noise.resample(self.st["actor"], self.gens, ended)
        self.num_timesteps += 1

    # ----- batches ----------------------------------------------------------------------------
    def _normal(self, rows: int) -> torch.Tensor:
        """``(K, rows, act_dim)`` N(0, 1) draws, seed ``k``'s from its own generator, on the update's device."""
        return to_device(torch.stack([torch.randn(rows, self.act_dim, generator=g) for g in self.gens]), self.device)

    # ----- training ----------------------------------------------------------------------------
    def train_step(self) -> dict[str, np.ndarray]:
        """One SAM training step of every seed: each log's ``(K,)`` mean over its updates (the
        actor's logs only when it was updated)."""
        s = self.algo.schedule
        if self.param_noise is not None and self.train_steps % self.algo.ac.exploration.adapt_every == 0:
            obs = torch.as_tensor(self.batches.column("observations", self.batches.flat(self.batches.rows())))
            self.param_noise.adapt(self.st["actor"], self.upd.normalize(self.st["obs_stats"], to_device(obs, self.device)), self.gens)
        if s.d_steps == 1 and s.g_steps == 1:  # the default: both halves in one call
            out = self._call({**self.batches.d(), **self.batches.ac()}, True, True)
        else:
            calls = [self._call(self.batches.d(), True, False) for _ in range(s.d_steps)]
            calls += [self._call(self.batches.ac(), False, True) for _ in range(s.g_steps)]
            out = {n: np.mean(got, axis=0) for n in LOGS if (got := [c[n] for c in calls if n in c])}
        self.train_steps += 1
        if not all(np.isfinite(v).all() for v in out.values()):
            raise TrainingError("SAM's discriminator or actor-critic update gave a NaN/inf loss")
        return out

    def _call(self, batch: dict[str, torch.Tensor], discriminator: bool, actor_critic: bool) -> dict[str, np.ndarray]:
        """One call of the update: the ``(K,)`` logs of the halves that ran."""
        due = False
        if actor_critic:
            self.n_updates += 1
            due = self.n_updates % self.algo.ac.actor.policy_delay == 0
        logs = self.step_fn(self.st, to_device(batch, self.device), due, discriminator, actor_critic)
        return {n: t.cpu().numpy() for n, t in logs.items()}

    def iterate(self) -> list[dict[str, float]]:
        """One SAM iteration: collect c_max steps, then t_max training steps once learning has started.
        Returns each seed's means of :data:`LOGS` over those training steps (none before learning
        starts; a log only when every training step had it, e.g. ``actor_loss`` when the actor was
        updated in each)."""
        for _ in range(self.algo.schedule.env_steps):
            self.collect_step()
        logs: list[dict[str, float]] = [{} for _ in self.seeds]
        if self.learning:
            steps = [self.train_step() for _ in range(self.algo.schedule.train_steps)]
            means = {n: np.mean([st[n] for st in steps], axis=0) for n in LOGS if all(n in st for st in steps)}
            logs = [{n: float(v[i]) for n, v in means.items()} for i in range(self.k)]
        self.iterations += 1
        return logs

    # ----- evaluation, saving, checkpoints --------------------------------------------------------
    def evaluation_logs(self, i: int = 0) -> dict[str, float]:
        logs: dict[str, float] = {}
        if self.param_noise is not None:
            logs["param_noise_sigma"] = float(self.param_noise.sigma[i])
            if np.isfinite(self.param_noise.last_distance[i]):  # measured from the first adaptation on
                logs["param_noise_distance"] = float(self.param_noise.last_distance[i])
        if self.episode_returns[i]:
            logs["train_true_return"] = float(np.mean(self.episode_returns[i]))
        return logs

    def _exported(self, i: int) -> SAMPolicy:
        """Seed ``i``'s networks in an SB3 ``TD3Policy`` (built once, loaded with the seed's current
        parameters). sac's deterministic action, ``tanh(m)``, is such an actor: its head's mean half
        (sac keeps no target actor; the exported one is the online actor's mean)."""
        ac = self.algo.ac
        net = ac.network
        if self._policy is None:
            self._policy = SAMPolicy(
                self.obs_space,
                self.act_space,
                lambda _: 0.0,
                net_arch=net.hidden,
                activation_fn=activation(net.activation, f"algo.{self.algo.generator}.network.activation"),
                n_critics=ac.critic.n_critics,
                layer_norm=net.layer_norm,
                head_init=net.head_init,
            )
        ln, state = net.layer_norm, {}
        head_w, head_b = self.upd.actor.head()
        for part, prefix in (("actor", "actor.mu.0."), ("actor_t", "actor_target.mu.0.")):
            actor = self.st.get(part, self.st["actor"])
            if self.algo.stochastic:
                actor = {**actor, head_w: actor[head_w][:, : self.act_dim], head_b: actor[head_b][..., : self.act_dim]}
            state.update({prefix + n: t for n, t in sequential_state(actor, i, ln).items()})
        for part, prefix in (("critic", "critic."), ("critic_t", "critic_target.")):
            for j in range(ac.critic.n_critics):
                head = {n[len(f"q{j}.") :]: t for n, t in self.st[part].items() if n.startswith(f"q{j}.")}
                state.update({f"{prefix}qf{j}.{n}": t for n, t in sequential_state(head, i, ln).items()})
        self._policy.load_state_dict({n: t.detach().cpu() for n, t in state.items()})
        return self._policy

    def _normalizer(self, i: int) -> Optional[ObsNormalizer]:
        if self.obs_rms is None:
            return None
        return ObsNormalizer(self.obs_rms[i].mean.copy(), self.obs_rms[i].var.copy(), self.algo.ac.obs_clip, 1e-8)

    def acting_policy(self, i: int = 0) -> LoadedPolicy:
        return LoadedPolicy(self._exported(i), self._normalizer(i))

    def save_policy(self, i: int, path: Path) -> None:
        save_policy(path, self._exported(i), self._normalizer(i), meta={"algo": "sam", "env": self.cfg.env.name})

    def snapshot(self, i: int) -> dict[str, Any]:
        """Seed ``i``'s full state on this worker (rank)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "state": {part: {n: (t if n == Adam.SHARED else t[i]).detach().cpu().clone() for n, t in tree.items()} for part, tree in self.st.items()},
            "counts": (self.num_timesteps, self.n_updates, self.train_steps, self.iterations),
            "env_states": get_vec_env_states(self.venvs[i]),
            "last_obs": self.last_obs[i].copy(),
            "buffer": column_state(self.replay, i),
            "obs_rms": None if self.obs_rms is None else self.obs_rms[i],
            "noise": self.noise[i].x.copy(),
            "param_noise": None if self.param_noise is None else self.param_noise.state_dict(i),
            "episode_returns": list(self.episode_returns[i]),
            "np_rng": self.rngs[i].bit_generator.state,
            "gen": self.gens[i].get_state(),
            "rng": rng_state(),
        }

    def restore(self, i: int, s: dict[str, Any]) -> None:
        if not isinstance(s, dict) or s.get("format") != CHECKPOINT_FORMAT:
            raise _unreadable_checkpoint()
        for part, tree in self.st.items():
            for n, t in tree.items():
                src = s["state"][part][n].to(t.device)
                if n == Adam.SHARED:
                    t.copy_(src)
                else:
                    t[i] = src
        self.num_timesteps, self.n_updates, self.train_steps, self.iterations = s["counts"]
        set_vec_env_states(self.venvs[i], s["env_states"])
        self.last_obs[i] = s["last_obs"]
        load_column_state(self.replay, i, s["buffer"])
        if self.obs_rms is not None:
            self.obs_rms[i] = s["obs_rms"]
            self._refresh_obs_stats()
        self.noise[i].x = s["noise"].copy()
        if self.param_noise is not None:
            self.param_noise.load_state_dict(i, s["param_noise"])
        self.episode_returns[i] = collections.deque(s["episode_returns"], maxlen=100)
        self.rngs[i].bit_generator.state = s["np_rng"]
        self.gens[i].set_state(s["gen"])
        set_rng_state(s["rng"])

    def state_dict(self, i: int = 0) -> Optional[dict[str, Any]]:
        parts = _gather(self.snapshot(i))  # every worker's state, at rank 0
        return {"ranks": parts} if distributed.rank() == 0 else None

    def load_state_dict(self, i: int, state: Optional[dict[str, Any]]) -> None:
        if distributed.rank() == 0 and (not isinstance(state, dict) or "ranks" not in state):
            raise _unreadable_checkpoint()
        part = _exchange(state["ranks"] if state else None) if distributed.active() else state["ranks"][0]
        self.restore(i, part)

    def summary(self, i: int = 0) -> dict[str, Any]:
        return {"demo_pairs": len(self.demos), "workers": distributed.world_size(), "iterations": self.iterations}

    @classmethod
    @contextlib.contextmanager
    def processes(cls, cfg: DictConfig, demos: Demos) -> Iterator[None]:
        """``algo.workers=K``: K-1 spawned processes run their own copy of the loop, joined over gloo."""
        k = _settings(cfg).workers
        if k == 1:
            yield
            return
        with distributed.spawned(k, _worker_main, (OmegaConf.to_container(cfg, resolve=True), demos), WORKER_TIMEOUT):
            yield


def _settings(cfg: DictConfig) -> SAMConfig:
    """``cfg.algo`` as SAM's validated model, for the classmethods (they run before a learner exists)."""
    algo = algo_settings(cfg)
    assert isinstance(algo, SAMConfig), type(algo)  # conf/algo/sam.yaml names SAMConfig as its schema
    return algo


def _unreadable_checkpoint() -> ConfigError:
    return ConfigError(
        "this run's checkpoint was written by SAM before its stacked update (or is not a SAM checkpoint); "
        "accepted: a new run directory (experiment=NAME), which trains from scratch"
    )


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


def _worker_main(rank: int, world: int, port: int, errors: Any, cfg_dict: dict[str, Any], demos: Demos) -> None:
    """A spawned worker (:func:`ail.distributed.spawned`): the same loop as rank 0, writing no run directory."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        distributed.init(rank, world, port, WORKER_TIMEOUT)
        cfg = OmegaConf.create(cfg_dict)
        use_env(cfg.env)  # a spawned process starts with an empty env registry: set it up as the job's process was
        with contextlib.suppress(Preempted):  # every worker stops with rank 0, which writes the checkpoint
            train_loop.train(SAMLearner(cfg, demos, [int(cfg.seed)]), [None])
        # Tear down only when every worker is done: a gloo peer that vanishes mid-teardown aborts the others.
        dist.barrier()
        dist.destroy_process_group()
    except BaseException as exc:  # noqa: BLE001 - any failure is reported to rank 0, which ends the job
        errors.put((rank, f"{type(exc).__name__}: {exc}".splitlines()[0]))
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, where gloo's threads can still trip std::terminate
