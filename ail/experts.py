"""Train, save and load experts: SB3 PPO (or another SB3 algorithm) with per-env settings from ``conf/env``.

An expert directory ``experts/<env>/`` holds ``model.zip`` (SB3 format), ``vecnormalize.pkl``
when observations are normalised, ``policy.json`` (how :mod:`ail.policy` rebuilds it) and
``expert.json`` (provenance and a 50-episode deterministic evaluation). :class:`ShippedExpert` reads
one; a user's SB3 file is :class:`ail.expert_files.ExpertFile`.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import gymnasium as gym
import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf
from stable_baselines3 import DQN, PPO, SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecNormalize

from ail.activations import activation
from ail.envs import ENV_IDS, env_id, make_vec_env
from ail.errors import ConfigError
from ail.evaluation import FINAL_EVAL_EPISODES, FINAL_EVAL_SEED, evaluate, random_record, stats
from ail.paths import experts_root
from ail.policy import LoadedPolicy, ObsNormalizer, load_policy_dir
from ail.preemption import Preempted, PreemptionFlag
from ail.provenance import REPO_ROOT, git_sha, versions
from ail.sb3_state import parse_schedule
from ail.seeding import set_random_seed

ALGOS = {"ppo": PPO, "sac": SAC, "td3": TD3, "dqn": DQN}
# A reached target must hold on this many fresh episodes before training stops. 50 let through an
# InvertedDoublePendulum policy that fell in ~5% of starts (9359.7 on one 50-episode set, 8803.7 on another).
CONFIRM_EPISODES = 100
BARS_FILE = REPO_ROOT / "experts" / "bars.yaml"


def zoo_bars() -> tuple[dict[str, float], dict[str, str]]:
    """The expert zoo's bars (minimum return per env) and, for shipped experts below theirs, the reason
    measured: data in ``experts/bars.yaml``."""
    data = yaml.safe_load(BARS_FILE.read_text())
    return {k: float(v) for k, v in data["bars"].items()}, dict(data.get("shortfalls") or {})


RESUMABLE_EXPERT_KEYS = ("total_steps", "target_return", "eval_every", "eval_episodes", "confirm_episodes", "note")


def _algo_kwargs(ecfg: DictConfig, action_space: Optional[gym.spaces.Space] = None) -> dict[str, Any]:
    kwargs = {k: parse_schedule(v) for k, v in OmegaConf.to_container(ecfg.hyperparams, resolve=True).items()}
    # SB3 takes an ActionNoise object, which a config cannot hold; TD3 without one explores nothing.
    sigma = kwargs.pop("action_noise_std", None)
    if sigma is not None:
        if not isinstance(action_space, gym.spaces.Box) or ecfg.algo not in ("td3", "sac"):
            raise ConfigError(f"env.expert.hyperparams.action_noise_std={sigma} needs expert.algo=td3|sac on a continuous-action task")
        if not float(sigma) > 0:
            raise ConfigError(f"env.expert.hyperparams.action_noise_std={sigma} is invalid; accepted: a positive number")
        dim = int(np.prod(action_space.shape))
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), float(sigma) * np.ones(dim))
    policy_kwargs = dict(OmegaConf.to_container(ecfg.policy_kwargs, resolve=True)) if ecfg.get("policy_kwargs") else {}
    if "activation_fn" in policy_kwargs:
        policy_kwargs["activation_fn"] = activation(policy_kwargs["activation_fn"], "env.expert.policy_kwargs.activation_fn")
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    return kwargs


def _snapshot(model: Any, venv: Any) -> LoadedPolicy:
    normalizer = None
    if isinstance(venv, VecNormalize):
        normalizer = ObsNormalizer(venv.obs_rms.mean.copy(), venv.obs_rms.var.copy(), venv.clip_obs, venv.epsilon)
    return LoadedPolicy(model.policy, normalizer)


class _ExpertCallback(BaseCallback):
    """Periodic deterministic evaluation (keep the best: PPO oscillates), checkpoints, preemption."""

    def __init__(self, trainer: "ExpertTrainer"):
        super().__init__()
        self.t = trainer

    def _on_step(self) -> bool:
        t = self.t
        steps = self.model.num_timesteps
        if steps >= t.next_eval:
            t.next_eval = (steps // t.ecfg.eval_every + 1) * t.ecfg.eval_every
            t.evaluate_and_keep_best(self.model)
            t.save_checkpoint(self.model)
            if t.target_confirmed():
                print(f"[expert] target {t.ecfg.target_return} confirmed at {steps} steps; stopping")
                t.state["done"] = True
                t.save_checkpoint(self.model)
                return False
        if t.flag.requested:
            t.save_checkpoint(self.model)
            raise Preempted(t.flag.signum, steps, str(t.ckpt))
        return True


class ExpertTrainer:
    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg = cfg
        self.name = cfg.env.name
        self.ecfg = cfg.env.expert
        self.run_dir = run_dir
        self.ckpt = run_dir / "checkpoints"
        self.best_dir = run_dir / "best"
        self.flag = PreemptionFlag()
        if self.ecfg.algo not in ALGOS:
            raise ConfigError(f"unknown expert.algo '{self.ecfg.algo}'; accepted: {', '.join(ALGOS)}")
        self.algo_cls = ALGOS[self.ecfg.algo]
        self.state: dict[str, Any] = {
            "best_return": -np.inf,
            "best_steps": 0,
            "wall_time": 0.0,
            "done": False,
            "evals": [],
            "selection_episodes": int(self.ecfg.eval_episodes),
        }
        self.next_eval = int(self.ecfg.eval_every)
        self._t0 = time.time()

    def _make_env(self, seed: int) -> Any:
        venv = make_vec_env(self.name, n_envs=int(self.ecfg.n_envs), seed=seed)
        return venv

    def _check_same_recipe(self) -> None:
        """A resumed expert run must keep its recipe; only the budget, target and evaluation may change."""
        path = self.run_dir / "expert_config.json"
        recipe = {k: v for k, v in OmegaConf.to_container(self.ecfg, resolve=True).items() if k not in RESUMABLE_EXPERT_KEYS}
        recipe["seed"] = int(self.cfg.seed)
        if not path.is_file():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(recipe, indent=2))
            return
        stored = json.loads(path.read_text())
        for key in sorted(set(stored) | set(recipe)):
            if stored.get(key) != recipe.get(key):
                raise ConfigError(
                    f"{self.run_dir} trains an expert with {key}={stored.get(key)!r}, not {recipe.get(key)!r}; "
                    f"only {', '.join(RESUMABLE_EXPERT_KEYS)} may change on resume (use another experiment=NAME)"
                )

    def build(self) -> Any:
        seed = int(self.cfg.seed)
        set_random_seed(seed, int(self.cfg.runtime.threads))
        venv = self._make_env(seed)
        kwargs = _algo_kwargs(self.ecfg, venv.action_space)  # a bad hyperparameter fails here, before any file is written
        self._check_same_recipe()
        if (self.ckpt / "model.zip").is_file():
            self.state = json.loads((self.ckpt / "state.json").read_text())
            if self.ecfg.normalize:
                venv = VecNormalize.load(str(self.ckpt / "vecnormalize.pkl"), venv)
            model = self.algo_cls.load(str(self.ckpt / "model.zip"), env=venv, device="cpu")
            if (self.ckpt / "replay.pkl").is_file():
                model.load_replay_buffer(str(self.ckpt / "replay.pkl"))
            self.next_eval = (model.num_timesteps // int(self.ecfg.eval_every) + 1) * int(self.ecfg.eval_every)
            print(f"[expert] resuming {self.name} from {model.num_timesteps} steps (best so far {self.state['best_return']:.1f})")
            self._rebase_best()
        else:
            if self.ecfg.normalize:
                gamma = float(self.ecfg.hyperparams.get("gamma", 0.99))
                venv = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=gamma)
            init = self.ecfg.get("init_from")
            if init:
                model = self._fine_tune(Path(str(init)), venv, seed, kwargs)
            else:
                model = self.algo_cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **kwargs)
        return model

    def _fine_tune(self, path: Path, venv: Any, seed: int, kwargs: dict[str, Any]) -> Any:
        """``expert.init_from``: continue training an SB3 model file of ``expert.algo`` (e.g. a shipped
        expert's ``model.zip``) with this recipe's hyperparameters; its step count carries on, and an
        off-policy learner refills a fresh replay for ``learning_starts`` steps before it updates."""
        if not path.is_file():
            raise ConfigError(f"env.expert.init_from={path} is not a file; accepted: an SB3 model .zip of env.expert.algo={self.ecfg.algo}")
        try:
            model = self.algo_cls.load(str(path), env=venv, device="cpu", **kwargs)
        except Exception as exc:  # noqa: BLE001 - a wrong algorithm or space fails in many ways inside SB3
            raise ConfigError(f"env.expert.init_from={path} cannot be loaded as {self.ecfg.algo} on {env_id(self.name)}: {exc}") from None
        model.set_random_seed(seed)
        self.next_eval = (model.num_timesteps // int(self.ecfg.eval_every) + 1) * int(self.ecfg.eval_every)
        if hasattr(model, "learning_starts"):
            model.learning_starts = model.num_timesteps + int(kwargs.get("learning_starts", 100))
        print(f"[expert] fine-tuning {path} from {model.num_timesteps} steps", flush=True)
        return model

    def _rebase_best(self) -> None:
        """A best score from evaluations of another length is not comparable: re-score the kept best.

        Raising ``eval_episodes`` on resume (10 -> 50, say) would otherwise leave a lucky 10-episode
        best that no honest 50-episode evaluation can beat.
        """
        episodes = int(self.ecfg.eval_episodes)
        before = int(self.state.get("selection_episodes", 10))  # runs from before this key used 10
        if before == episodes or not (self.best_dir / "model.zip").is_file():
            self.state["selection_episodes"] = episodes
            return
        policy = load_policy_dir(_as_expert_dir(self.best_dir, self.ecfg.algo, self.name, self.ecfg.normalize))
        ret = evaluate(policy.predict, self.name, episodes, seed=len(self.state["evals"]) * 1000 + 700)
        print(f"[expert] eval_episodes {before} -> {episodes}: best re-scored {self.state['best_return']:.1f} -> {ret.mean():.1f}", flush=True)
        self.state["best_return"] = float(ret.mean())
        self.state["selection_episodes"] = episodes

    def evaluate_and_keep_best(self, model: Any) -> None:
        policy = _snapshot(model, model.get_env())
        ret = evaluate(policy.predict, self.name, int(self.ecfg.eval_episodes), seed=len(self.state["evals"]) * 1000)
        mean = float(ret.mean())
        self.state["evals"].append([int(model.num_timesteps), mean])
        # Ties at the target go to the later policy: it has trained longer and is usually more robust.
        # A kept best that failed its confirmation blocks nothing: any later policy at the target
        # replaces it and gets its own confirmation (returns near a task's ceiling all tie).
        at_target = mean >= self.ecfg.target_return
        improved = mean > self.state["best_return"] or (at_target and (mean >= self.state["best_return"] or self._best_failed_confirmation()))
        if improved:
            self.state["best_return"] = mean
            self.state["best_steps"] = int(model.num_timesteps)
            self._save_model(model, self.best_dir)
        print(
            f"[expert] {self.name} steps={model.num_timesteps} eval={mean:.1f} best={self.state['best_return']:.1f}" + (" *" if improved else ""),
            flush=True,
        )

    def _confirm_key(self) -> str:
        return f"{self.state['best_steps']}x{int(self.ecfg.get('confirm_episodes') or CONFIRM_EPISODES)}"

    def _best_failed_confirmation(self) -> bool:
        done = self.state.get("confirmations", {}).get(self._confirm_key())
        return done is not None and done < self.ecfg.target_return

    def target_confirmed(self) -> bool:
        """A short evaluation can flatter a policy: a new best over the target must hold on
        ``expert.confirm_episodes`` (default CONFIRM_EPISODES) more.

        Each confirmation is remembered by the step count of the policy it scored, so a target lowered
        on resume is checked against the stored mean instead of being re-run or silently skipped.
        """
        if self.state["best_return"] < self.ecfg.target_return:
            return False
        confirmations = self.state.setdefault("confirmations", {})
        episodes = int(self.ecfg.get("confirm_episodes") or CONFIRM_EPISODES)
        key = self._confirm_key()
        if key not in confirmations:
            policy = load_policy_dir(_as_expert_dir(self.best_dir, self.ecfg.algo, self.name, self.ecfg.normalize))
            ret = evaluate(policy.predict, self.name, episodes, seed=len(self.state["evals"]) * 1000 + 500)
            confirmations[key] = float(ret.mean())
            print(f"[expert] confirmation over {episodes} episodes: {ret.mean():.1f} (min {ret.min():.1f})", flush=True)
        return bool(confirmations[key] >= self.ecfg.target_return)

    def _save_model(self, model: Any, directory: Path, with_replay: bool = False) -> None:
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save(str(tmp / "model.zip"))
        if with_replay and getattr(model, "replay_buffer", None) is not None:
            # Without its replay an off-policy learner resumes on a near-empty buffer and its
            # critic trains on nothing but the first few transitions after the restart.
            model.save_replay_buffer(str(tmp / "replay.pkl"))
        venv = model.get_env()
        if isinstance(venv, VecNormalize):
            venv.save(str(tmp / "vecnormalize.pkl"))
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)

    def save_checkpoint(self, model: Any) -> None:
        self.state["wall_time"] += time.time() - self._t0
        self._t0 = time.time()
        self._save_model(model, self.ckpt, with_replay=True)
        tmp = self.ckpt / "state.json.tmp"
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.ckpt / "state.json")

    def train(self) -> None:
        model = self.build()
        total = int(self.ecfg.total_steps)
        if self.state["done"] and model.num_timesteps < total and not self.target_confirmed():
            # A target raised above the confirmed one continues the run (more training for a stronger expert).
            print(f"[expert] target raised to {self.ecfg.target_return}, above the kept best's confirmation; training on", flush=True)
            self.state["done"] = False
        if not self.state["done"] and model.num_timesteps > 0 and self.target_confirmed():
            # A target lowered on resume may already be met by the kept best.
            print(f"[expert] target {self.ecfg.target_return} confirmed by the kept best; stopping")
            self.state["done"] = True
            self.save_checkpoint(model)
        if not self.state["done"] and model.num_timesteps < total:
            # A raised expert.total_steps continues a finished run; a confirmed target ends it unless raised.
            with self.flag:
                model.learn(
                    total_timesteps=total - model.num_timesteps,
                    reset_num_timesteps=False,
                    callback=_ExpertCallback(self),
                    progress_bar=bool(self.cfg.runtime.progress),
                )
            if not self.state["done"]:
                self.evaluate_and_keep_best(model)
                self.save_checkpoint(model)

    def finalize(self) -> dict[str, Any]:
        """Evaluate the best checkpoint on 50 fresh deterministic episodes and write the expert files."""
        out = self.run_dir / "expert"
        _write_expert_dir(self.best_dir, out, self.ecfg.algo, self.name, self.ecfg.normalize)
        policy = load_policy_dir(out)
        ret = evaluate(policy.predict, self.name, FINAL_EVAL_EPISODES, seed=FINAL_EVAL_SEED)
        info = {
            "algorithm": self.ecfg.algo,
            "env": self.name,
            "env_id": env_id(self.name),
            "training_steps": int(self.state["best_steps"]),
            "training_steps_total": int(self.state["evals"][-1][0]) if self.state["evals"] else 0,
            "wall_time_s": round(float(self.state["wall_time"]), 1),
            "eval_episodes": FINAL_EVAL_EPISODES,
            "deterministic": True,
            **{k: round(v, 3) for k, v in stats(ret).items()},
            **random_record(self.name),
            "seed": int(self.cfg.seed),
            "hyperparams": OmegaConf.to_container(self.ecfg, resolve=True),
            "versions": versions(),
            "git_sha": git_sha(),
        }
        (out / "expert.json").write_text(json.dumps(info, indent=2))
        return info


def _as_expert_dir(directory: Path, algo: str, name: str, normalize: bool) -> Path:
    """Add the ``policy.json`` that makes a saved SB3 model (+ VecNormalize) loadable by :mod:`ail.policy`."""
    spec = {
        "format_version": 1,
        "file": "model.zip",
        "kind": "model",
        "class": f"{ALGOS[algo].__module__}.{ALGOS[algo].__qualname__}",
        "vecnormalize": "vecnormalize.pkl" if normalize else None,
        "absorbing": False,
        "meta": {"env": name, "env_id": env_id(name)},
    }
    (directory / "policy.json").write_text(json.dumps(spec, indent=2))
    return directory


def _write_expert_dir(src: Path, dst: Path, algo: str, name: str, normalize: bool) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "model.zip", dst / "model.zip")
    if normalize:
        shutil.copy2(src / "vecnormalize.pkl", dst / "vecnormalize.pkl")
    _as_expert_dir(dst, algo, name, normalize)


PREVIOUS = ".previous-"  # install_expert moves a replaced expert aside to experts/<name>.previous-<timestamp>/


def shipped_expert_dirs(root: Optional[Union[str, Path]] = None) -> list[Path]:
    """``experts/<name>/`` folders holding an ``expert.json``, sorted; replaced experts moved aside are skipped."""
    base = experts_root(str(root) if root else None)
    return sorted(d for d in base.iterdir() if (d / "expert.json").is_file() and PREVIOUS not in d.name)


def install_expert(src: Path, name: str, root: Optional[Path] = None, replace: bool = False) -> Path:
    """Copy a finished expert into ``experts/<name>/``; an existing expert is kept unless ``replace``.

    A replaced expert is moved aside to ``experts/<name>.previous-<timestamp>/``, never deleted.
    """
    root = root or experts_root()
    dst = root / name
    if (dst / "expert.json").exists():
        if not replace:
            raise ConfigError(
                f"{dst} already holds an expert; the new one stays in {src} (pass expert.replace=true to install it, the old one is kept aside)"
            )
        dst.rename(root / f"{name}{PREVIOUS}{time.strftime('%Y%m%d-%H%M%S')}")
    elif dst.exists() and any(dst.iterdir()):
        raise ConfigError(f"{dst} exists but holds no expert.json (incomplete expert?); move it away first, nothing was changed")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


@dataclass(frozen=True)
class ShippedExpert:
    """An expert installed in ``<paths.experts>/<env>/`` (``task=expert`` installs one).

    :param name: the env's short name.
    :param directory: its expert directory.
    """

    name: str
    directory: Path

    @classmethod
    def at(cls, name: str, root: Optional[Union[str, Path]] = None) -> "ShippedExpert":
        """The expert of env ``name`` under the experts directory ``root`` (None: ``paths.experts``'s default)."""
        return cls(name, experts_root(str(root) if root else None) / name)

    def complete(self) -> bool:
        """Whether the directory holds an expert (its model and its record)."""
        return (self.directory / "expert.json").is_file() and (self.directory / "model.zip").is_file()

    def info(self) -> dict[str, Any]:
        """``expert.json``, validated against this platform's env id."""
        env_id(self.name)
        meta = self.directory / "expert.json"
        if not self.complete():
            how = f"env={self.name}" if self.name in ENV_IDS else f"env=gym env.id={env_id(self.name)}"
            raise ConfigError(
                f"no complete expert in {self.directory} (needs model.zip and expert.json); accepted: {how} env.expert.path=<an SB3 model.zip>, "
                f"or train one with: python launch.py task=expert {how}"
            )
        try:
            info = json.loads(meta.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{meta} is not valid JSON ({exc})") from exc
        if info.get("env_id") != env_id(self.name):
            raise ConfigError(f"{meta} is an expert for {info.get('env_id')}, but env={self.name} is {env_id(self.name)}")
        return info

    def load(self, info: Optional[dict[str, Any]] = None) -> LoadedPolicy:
        """The expert as a policy (``.predict(raw_obs) -> action``), its record in ``meta``.

        :param info: its already validated :meth:`info`, to skip reading it again.
        """
        info = self.info() if info is None else info
        policy = load_policy_dir(self.directory)
        policy.meta.update(info)
        return policy


def expert_info(name: str, root: Optional[Union[str, Path]] = None) -> dict[str, Any]:
    """``expert.json`` of the shipped expert for ``name``, validated against this platform's env id.

    :param name: the env's short name.
    :param root: the experts directory (None: ``paths.experts``'s default).
    """
    return ShippedExpert.at(name, root).info()


def load_expert(name: str, root: Optional[Union[str, Path]] = None, info: Optional[dict[str, Any]] = None) -> LoadedPolicy:
    """The shipped expert for env ``name``: ``load_expert("hopper").predict(obs) -> action``.

    :param name: the env's short name.
    :param root: the experts directory (None: ``paths.experts``'s default).
    :param info: its already validated ``expert_info(name, root)``, to skip reading it again.
    """
    return ShippedExpert.at(name, root).load(info)
