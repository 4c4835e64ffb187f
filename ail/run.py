"""A training run's directory: what it holds, and why nothing can corrupt it.

``runs/<experiment>/<algo>-<env>-d<demos>/seed<seed>/`` holds:
``config.yaml`` (resolved config), ``meta.json`` (versions, git SHA, command, host, pid, Slurm
ids, the learner's traits, one entry per launch), ``metrics.csv`` (one row per evaluation),
``checkpoints/last.pt`` and the one before it, ``checkpoints/previous.pt``, ``policy/``
(:func:`ail.load_policy`), ``summary.json``, written last: its presence marks a finished run, and ``.lock``.

Why a kill or a second launch cannot corrupt it:

- one writer: :class:`RunLock` is held from :meth:`Run.open` to :meth:`Run.close` (or the process's end);
- ``config.yaml``, ``meta.json``, ``checkpoints/last.pt`` and ``summary.json`` are replaced
  atomically (a per-process temporary, then rename); ``policy/`` is written by the last step,
  before ``summary.json``, so a launch killed while writing it writes it again;
- ``metrics.csv`` only grows between checkpoints, and a launch cuts it back to its checkpoint
  (to its header when there is none) before it writes, so rows of a killed launch never stay;
- a write that fails (no space left, no permission) ends the job with one line and leaves no
  temporary (:func:`ail.paths.writing`); the checkpoint written before it stays;
- a checkpoint that cannot be read (a truncated copy, a failing disk) is set aside, renamed
  ``last.pt.unreadable-<time>``, and the run resumes from ``previous.pt`` with ``metrics.csv`` cut
  back to it.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from ail.algorithm import Learner
from ail.demos import Demos
from ail.errors import ConfigError
from ail.evaluation import evaluate, normalized_score, stats
from ail.logger import MetricsLogger
from ail.paths import atomic_write_text, writing
from ail.policy import LoadedPolicy
from ail.provenance import git_sha, versions
from ail.seeding import derive_seed

# Keys that may change between a run and its resumption: where things are written and how
# progress is shown, never what is computed.
RESUME_FREE_KEYS = ("logger", "runtime", "paths", "policy_dir", "expert", "experiment")
LOCK_NAME = ".lock"


def _comparable(cfg: dict[str, Any], learner: type[Learner] = Learner) -> dict[str, Any]:
    out = {k: v for k, v in cfg.items() if k not in RESUME_FREE_KEYS}
    if isinstance(out.get("train"), dict):
        # A seed trained among K in one process writes what it would alone: either may resume it.
        out["train"] = {k: v for k, v in out["train"].items() if k != "seeds_per_process"}
    if isinstance(out.get("env"), dict):
        # How the expert was trained (env.expert) does not change an imitation run: the shipped
        # expert and its demonstrations are recorded in the run directory on their own; which file
        # is the expert (env.expert.path) does. A config older than that key used the shipped one.
        # env.termination describes the task (it vets reward choices before training), not the run.
        expert = out["env"].get("expert") or {}
        out["env"] = {k: v for k, v in out["env"].items() if k not in ("expert", "termination")}
        out["env"]["expert_path"] = expert.get("path")
    if isinstance(out.get("demo_set"), dict):
        # demo_set.export* only act in task=demos; a config older than demo_set.source drew from the expert.
        out["demo_set"] = {k: v for k, v in out["demo_set"].items() if k not in ("export", "export_id")}
        out["demo_set"].setdefault("source", "expert")
    if isinstance(out.get("algo"), dict):
        # algo.label only names the run directory and the W&B group; algo.settings names where the
        # settings' types are declared; algo.compile only changes how the same update is executed
        # (a run may resume on a node where compilation is unavailable).
        out["algo"] = {k: v for k, v in learner.upgrade_config(out["algo"]).items() if k not in ("label", "settings", "compile")}
        if isinstance(out["algo"].get("discriminator"), dict):
            out["algo"]["discriminator"] = {"obs_slice": None, **out["algo"]["discriminator"]}  # older configs: D judged everything
    return out


def _first_difference(a: Any, b: Any, prefix: str = "") -> Optional[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k, "<unset>"), b.get(k, "<unset>"), f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if a == b else (prefix.rstrip("."), a, b)


class RunLock:
    """One writer per run directory: an exclusive ``flock`` on ``<run dir>/.lock`` held for the job's life.

    The OS drops the lock when its holder dies (``kill -9``, a preempted node's job), so a Slurm
    requeue or a relaunch resumes; a second live launch into the directory (a sweep relaunched
    while it still runs) is refused with the holder's host and pid, which the lock file records.
    ``flock`` works across hosts on NFS v4 and Lustre (with ``flock`` mounts), as Slurm clusters use.
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_NAME
        self.fd: Optional[int] = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(
                f"{self.path.parent} is in use by {holder}; accepted: wait for it to end "
                f"(a relaunch then resumes), or use another experiment=NAME or seed"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        """Unlock. Where this launch wrote no run (refused before its ``config.yaml``: a foreign or a
        fresh directory) the lock file goes too, and the directory if that leaves it empty."""
        if self.fd is None:
            return
        run_dir = self.path.parent
        try:
            if not (run_dir / "config.yaml").exists():
                self.path.unlink()
                if not any(run_dir.iterdir()):
                    run_dir.rmdir()
        except OSError:
            pass  # another launch is creating its lock here: the directory is its now
        finally:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


class Run:
    """One run directory, held by this process from :meth:`open` to :meth:`close`.

    The train loop (:mod:`ail.train_loop`) is its only user: it evaluates, checkpoints and
    finishes through it, so every algorithm writes the same files the same way.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, status: str, demos: Demos, expert: dict[str, Any], lock: RunLock, traits: dict[str, Any]):
        self.cfg = cfg
        self.traits = traits
        self.dir = run_dir
        self.status = status  # "new" | "resume" | "complete"
        self.demos = demos
        self.ckpt_path = run_dir / "checkpoints" / "last.pt"
        self.previous_path = run_dir / "checkpoints" / "previous.pt"
        self.expert_return = float(expert["return_mean"])
        self.random_return = float(expert["random_return_mean"])
        self.wall_time_before = 0.0
        self._t0 = time.time()
        self.logger: Optional[MetricsLogger] = None
        self.last_eval: dict[str, Any] = {}
        self._lock = lock

    @classmethod
    def open(cls, cfg: DictConfig, run_dir: Path, demos: Demos, expert: dict[str, Any], learner: type[Learner]) -> "Run":
        """Lock the run dir, then create it, or validate and reopen an unfinished one (resume) or a finished one.

        :param learner: the algorithm's class: how its older configs read today, and its traits for meta.json and summary.json.
        """
        resolved = OmegaConf.to_container(cfg, resolve=True)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            lock = RunLock(run_dir)
            lock.acquire()
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run directory {run_dir} ({exc.strerror}); accepted: paths.runs=DIR where this user can create files"
            ) from None
        try:
            for stale in [*run_dir.glob("*.tmp"), *run_dir.glob("checkpoints/*.tmp")]:
                stale.unlink()  # a killed writer's temporary: only a dead process can have left it, we hold the lock
            stored_path = run_dir / "config.yaml"
            if stored_path.is_file():
                stored = yaml.safe_load(stored_path.read_text())
                diff = _first_difference(_comparable(stored, learner), _comparable(resolved, learner))
                if diff:
                    key, old, new = diff
                    raise ConfigError(
                        f"{run_dir} was created by a different config ({key}={old!r} there, {new!r} now); "
                        f"use another experiment=NAME or remove that directory"
                    )
                status = "complete" if (run_dir / "summary.json").is_file() else "resume"
            else:
                leftovers = [p.name for p in run_dir.iterdir() if p.name != LOCK_NAME]
                if leftovers:
                    raise ConfigError(
                        f"{run_dir} holds files ({', '.join(sorted(leftovers)[:3])}) but no config.yaml; not an ail run, nothing was touched"
                    )
                status = "new"
                atomic_write_text(stored_path, yaml.safe_dump(resolved, sort_keys=False))
            run = cls(cfg, run_dir, status, demos, expert, lock, learner.traits())
            run._write_meta()
        except BaseException:
            lock.release()
            raise
        return run

    def close(self) -> None:
        """Release the directory (the OS does it too when the process dies)."""
        self._lock.release()

    def _write_meta(self) -> None:
        path = self.dir / "meta.json"
        meta = (
            json.loads(path.read_text())
            if path.is_file()
            else {
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "versions": versions(),
                "git_sha": git_sha(),
                "command": " ".join(sys.argv),
                "expert_return": self.expert_return,
                "random_return": self.random_return,
                "learner": self.traits,
                # Fixed at creation, so every launch of this run (resume, Slurm requeue) logs to one W&B run,
                # even one cut short before its first checkpoint. W&B ids: lower-case letters and digits.
                "wandb_id": secrets.token_hex(8),
                "launches": [],
            }
        )
        meta["launches"].append(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "status": self.status,
                "git_sha": git_sha(),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
            }
        )
        atomic_write_text(path, json.dumps(meta, indent=2))

    # ----- logging ---------------------------------------------------------------------------
    def _start_logging(self, wandb_id: Optional[str]) -> None:
        cfg = self.cfg
        group = f"{cfg.algo.label}-{cfg.env.name}-d{cfg.demos}"
        self.logger = MetricsLogger(
            self.dir,
            cfg.logger,
            group=group,
            name=f"seed{cfg.seed}",
            config={**OmegaConf.to_container(cfg, resolve=True), "git_sha": git_sha(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")},
            wandb_id=wandb_id,
        )

    @property
    def wall_time(self) -> float:
        return self.wall_time_before + (time.time() - self._t0)

    def evaluate(self, policy: LoadedPolicy, env_steps: int, updates: int, losses: Optional[dict[str, float]] = None) -> dict[str, Any]:
        """Evaluate ``policy`` on ``eval.episodes`` deterministic episodes and append a metrics row."""
        index = int(env_steps) + int(updates)  # distinct for every evaluation of a run
        ret = evaluate(policy.predict, self.cfg.env.name, int(self.cfg.eval.episodes), seed=derive_seed("eval", int(self.cfg.seed), index))
        s = stats(ret)
        row: dict[str, Any] = {"env_steps": int(env_steps), "updates": int(updates), "wall_time": round(self.wall_time, 2), **s}
        row["normalized_score"] = normalized_score(s["return_mean"], self.expert_return, self.random_return)
        row.update({k: float(v) for k, v in (losses or {}).items()})
        assert self.logger is not None, "load_checkpoint() first"
        self.logger.log(row)
        self.last_eval = row
        return row

    # ----- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], env_steps: int, updates: int) -> None:
        """Atomically write ``state`` plus the run's own bookkeeping (wall time, W&B id, counters)."""
        self.ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "state": state,
            "env_steps": int(env_steps),
            "updates": int(updates),
            "wall_time": self.wall_time,
            "wandb_id": self.logger.wandb_id if self.logger else None,
            "last_eval": self.last_eval,
        }
        tmp = self.ckpt_path.with_name(f"last.pt.{os.getpid()}.tmp")
        with writing(self.ckpt_path, "the checkpoint", tmp):
            # Through a Python file, so a full disk surfaces as its OSError, not only torch's own message.
            with open(tmp, "wb") as f:
                torch.save(payload, f)
            if self.ckpt_path.exists():
                os.replace(self.ckpt_path, self.previous_path)
            os.replace(tmp, self.ckpt_path)

    def _read_checkpoint(self) -> Optional[dict[str, Any]]:
        """The newest readable checkpoint (``last.pt``, else ``previous.pt``); an unreadable one is
        set aside (renamed, never deleted) with one line. ``None`` when there is none at all."""
        found = [p for p in (self.ckpt_path, self.previous_path) if p.is_file()]
        for path in found:
            try:
                return torch.load(path, map_location="cpu", weights_only=False)
            except Exception as exc:  # noqa: BLE001 - a truncated or garbled file fails in many ways inside torch
                aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
                path.rename(aside)
                print(f"[train] {path} cannot be read ({type(exc).__name__}); set aside as {aside.name}", file=sys.stderr, flush=True)
        if found:
            raise ConfigError(
                f"no readable checkpoint in {self.ckpt_path.parent} (set aside as *.unreadable-*); accepted: remove {self.dir} "
                f"(or use another experiment=NAME or seed) to train this run again from the start"
            )
        return None

    def load_checkpoint(self) -> Optional[dict[str, Any]]:
        """The saved state, with ``metrics.csv`` cut back to it and logging resumed; ``None`` (and
        ``metrics.csv`` cut to its header: rows of a launch killed before its first checkpoint) for a fresh start."""
        payload = self._read_checkpoint()
        if payload is None:
            self._start_logging(json.loads((self.dir / "meta.json").read_text()).get("wandb_id"))
            assert self.logger is not None
            self.logger.truncate(-1, -1)
            return None
        self.wall_time_before = float(payload["wall_time"])
        self._t0 = time.time()
        self.last_eval = payload.get("last_eval") or {}
        self._start_logging(payload.get("wandb_id"))
        assert self.logger is not None
        self.logger.truncate(payload["env_steps"], payload["updates"])
        print(f"[train] resuming {self.dir} from env_steps={payload['env_steps']} updates={payload['updates']}", flush=True)
        return payload["state"]

    # ----- the end ---------------------------------------------------------------------------
    def finish(
        self, save_policy_fn: Any, policy: LoadedPolicy, env_steps: int, updates: int, extra: Optional[dict[str, Any]] = None
    ) -> dict[str, Any]:
        """Save the policy, run the final evaluation, write ``summary.json`` last."""
        with writing(self.dir / "policy", "the final policy"):
            save_policy_fn(self.dir / "policy")
        episodes = int(self.cfg.eval.final_episodes)
        ret = evaluate(policy.predict, self.cfg.env.name, episodes, seed=derive_seed("final_eval", int(self.cfg.seed)))
        s = stats(ret)
        summary = {
            "status": "complete",
            "algo": self.cfg.algo.name,
            "env": self.cfg.env.name,
            "env_id": self.cfg.env.id,
            "demos": int(self.cfg.demos),
            "seed": int(self.cfg.seed),
            "env_steps": int(env_steps),
            "updates": int(updates),
            "final_eval_episodes": episodes,
            **{f"final_{k}": v for k, v in s.items()},
            "normalized_score": normalized_score(s["return_mean"], self.expert_return, self.random_return),
            "expert_return": self.expert_return,
            "random_return": self.random_return,
            "demo_returns": [float(r) for r in self.demos.ep_returns],  # the report's expert band
            "wall_time_s": round(self.wall_time, 1),
            **self.traits,
            **(extra or {}),
        }
        if self.logger:
            self.logger.summary(summary)
            self.logger.close()
        atomic_write_text(self.dir / "summary.json", json.dumps(summary, indent=2), "the summary")
        self.status = "complete"
        return summary

    def print_summary(self) -> None:
        s = json.loads((self.dir / "summary.json").read_text())
        print(f"run directory: {self.dir}")
        print(
            f"{s['algo']} on {s['env_id']} with {s['demos']} demos, seed {s['seed']}: "
            f"return {s['final_return_mean']:.1f} ± {s['final_return_std']:.1f} over {s['final_eval_episodes']} episodes | "
            f"expert {s['expert_return']:.1f} | random {s['random_return']:.1f} | normalised score {s['normalized_score']:.3f}"
        )
        if s.get("budget_note"):
            print(f"note: {s['budget_note']}")
