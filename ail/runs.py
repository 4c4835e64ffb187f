"""Run directories read back: each training run below some folders as a :class:`RunRecord` (its
identity from ``config.yaml``, its evaluation curve from ``metrics.csv``, its ``summary.json`` once
complete, and a sweep's ``.failures`` record when it failed), which the report and the benchmark
both read, and the mean and band across seeds that the report's figures draw.

Run directories are ``<label>-<env>-d<demos>/seed<seed>`` (``hydra.run.dir`` in
``conf/config.yaml``, :func:`ail.config.run_name`); a group is every seed of one (label, env, demos).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml


@dataclass(frozen=True, order=True)
class Protocol:
    """What a run was shown: ``demos`` trajectories (the first of the set, or drawn with
    ``select_seed``), every ``every``-th (s, a) pair of each from an offset drawn from the same seed
    (``demo_set.subsample``; 1: whole trajectories). Runs of one protocol saw the same pairs, whatever
    their algorithm or training seed (:func:`ail.demos.load_set`); tables never mix protocols."""

    demos: int
    every: int = 1
    select_seed: int = -1  # -1: the first ``demos`` trajectories (demo_set.select_seed: null)

    @property
    def name(self) -> str:
        which = "" if self.select_seed < 0 else f" (drawn with seed {self.select_seed})"
        pairs = "whole trajectories" if self.every == 1 else f"trajectories, every {self.every}th pair"
        return f"{self.demos} {pairs}{which}"

    @property
    def short(self) -> str:
        """Its ``demos`` cell in a table: ``4`` (the first 4 whole trajectories), ``4, every 20th``, ``4, drawn (seed 3)``."""
        drawn = "" if self.select_seed < 0 else f", drawn (seed {self.select_seed})"
        return f"{self.demos}" + ("" if self.every == 1 else f", every {self.every}th") + drawn

    @property
    def figure_suffix(self) -> str:
        """A report's file suffix for it: ``d4`` for the first 4 whole trajectories (the names reports
        had before protocols), its :attr:`slug` otherwise."""
        return f"d{self.demos}" if (self.every, self.select_seed) == (1, -1) else self.slug

    @property
    def slug(self) -> str:
        """Its folder in a report: ``d4-every20``, ``d4-whole``."""
        return f"d{self.demos}-" + ("whole" if self.every == 1 else f"every{self.every}") + ("" if self.select_seed < 0 else f"-s{self.select_seed}")

    @classmethod
    def of(cls, cfg: dict[str, Any]) -> "Protocol":
        """The protocol of a run's resolved config (``demos``, ``demo_set.subsample``, ``demo_set.select_seed``)."""
        demo_set = cfg.get("demo_set") or {}
        select = demo_set.get("select_seed")
        return cls(int(cfg["demos"]), int(demo_set.get("subsample") or 1), -1 if select is None else int(select))


GroupKey = tuple[str, str, Protocol]  # (label, env, the demonstrations shown)


@dataclass
class RunRecord:
    """One run directory: its identity, its evaluation curve and, once complete, its summary."""

    dir: Path
    label: str
    algo: str
    env: str
    env_id: str
    demos: int
    seed: int
    budget: int
    status: str  # complete | incomplete | failed
    steps: np.ndarray  # (evaluations,) env steps
    returns: np.ndarray  # (evaluations,) mean deterministic return
    scores: np.ndarray  # (evaluations,) normalised score
    summary: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    seeds_per_process: int = 1  # train.seeds_per_process: its wall time was shared by this many seeds
    interacts: bool = True  # its learner acts in the env (False: offline, e.g. BC: no env-step budget or curve)
    protocol: Optional[Protocol] = None  # the demonstrations it was shown (None: a failed job without a config)

    @property
    def shown(self) -> Protocol:
        """The demonstrations it was shown; a failed job without a config: its ``demos`` whole trajectories."""
        return self.protocol if self.protocol is not None else Protocol(self.demos)

    @property
    def key(self) -> "GroupKey":
        return (self.label, self.env, self.shown)

    def first_reach(self, threshold: float) -> Optional[int]:
        hit = np.nonzero(self.scores >= threshold)[0]
        return int(self.steps[hit[0]]) if len(hit) else None


def _read_curve(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not path.is_file():
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return (
        np.array([int(float(r["env_steps"])) for r in rows], np.int64),
        np.array([float(r["return_mean"]) for r in rows]),
        np.array([float(r["normalized_score"]) for r in rows]),
    )


def _failures(root: Path) -> dict[Path, str]:
    out: dict[Path, str] = {}
    for path in root.rglob(".failures/*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out[Path(record["run_dir"]).resolve()] = record.get("message", "")
    return out


def _label(run_dir: Path, cfg: dict[str, Any]) -> str:
    """The run group's label (gail-ppo, dyna-tp10...): from the directory <label>-<env>-d<demos>, which
    also names runs made before algo.label existed; else algo.label, else the algorithm's name."""
    suffix = f"-{cfg['env']['name']}-d{cfg['demos']}"
    group = run_dir.parent.name
    if group.endswith(suffix) and len(group) > len(suffix):
        return group[: -len(suffix)]
    return str(cfg["algo"].get("label") or cfg["algo"]["name"])


def load_runs(roots: list[Path]) -> list[RunRecord]:
    """Every training run directory (one with a ``config.yaml`` of ``task: train``) below ``roots``."""
    runs: list[RunRecord] = []
    seen: set[Path] = set()
    for root in roots:
        failed = _failures(root)
        for cfg_path in sorted(root.rglob("config.yaml")):
            d = cfg_path.parent.resolve()
            if d in seen or ".submitit" in d.parts:
                continue
            cfg = yaml.safe_load(cfg_path.read_text()) or {}
            if cfg.get("task") != "train" or "algo" not in cfg:
                continue
            seen.add(d)
            steps, returns, scores = _read_curve(d / "metrics.csv")
            summary_path = d / "summary.json"
            summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
            status = "complete" if summary else ("failed" if d in failed else "incomplete")
            meta_path = d / "meta.json"
            traits = json.loads(meta_path.read_text()).get("learner", {}) if meta_path.is_file() else {}
            # A run written before the learner's traits were recorded: an offline learner's curve stays at 0 env steps.
            interacts = bool(summary.get("interacts_with_env", traits.get("interacts_with_env", (steps > 0).any())))
            algo = cfg["algo"]
            runs.append(
                RunRecord(
                    dir=d,
                    label=_label(d, cfg),
                    algo=str(algo["name"]),
                    env=str(cfg["env"]["name"]),
                    env_id=str(cfg["env"]["id"]),
                    demos=int(cfg["demos"]),
                    seed=int(cfg["seed"]),
                    budget=int(cfg["train"]["env_steps"]) if interacts else 0,
                    status=status,
                    steps=steps,
                    returns=returns,
                    scores=scores,
                    summary=summary,
                    message=failed.get(d, ""),
                    seeds_per_process=int(cfg["train"].get("seeds_per_process", 1)),
                    interacts=interacts,
                    protocol=Protocol.of(cfg),
                )
            )
        # A job that failed before its run directory was written still has its sweep record.
        for d, message in failed.items():
            if d not in seen:
                seen.add(d)
                # Its group and seed from the directory name <label>-<env>-d<demos>/seed<seed>.
                group, seed = re.fullmatch(r"(.+)-([^-]+)-d(\d+)", d.parent.name), re.fullmatch(r"seed(\d+)", d.name)
                label, env, demos = (group.group(1), group.group(2), int(group.group(3))) if group else (d.parent.name, "?", -1)
                runs.append(
                    RunRecord(
                        d,
                        label,
                        "?",
                        env,
                        "?",
                        demos,
                        int(seed.group(1)) if seed else -1,
                        0,
                        "failed",
                        np.zeros(0, np.int64),
                        np.zeros(0),
                        np.zeros(0),
                        message=message,
                    )
                )
    return runs


def demo_returns(run: RunRecord) -> Optional[np.ndarray]:
    """Returns of the demonstrations the run was given: from its summary, else from the demo set."""
    if run.summary.get("demo_returns"):
        return np.asarray(run.summary["demo_returns"], dtype=float)
    try:
        from ail.demos import DemoSpec, load_demos

        cfg = yaml.safe_load((run.dir / "config.yaml").read_text())
        spec = DemoSpec(
            int(cfg["demo_set"]["trajectories"]), bool(cfg["demo_set"]["deterministic"]), int(cfg["demo_set"]["seed"]), cfg["demo_set"]["min_return"]
        )
        demos = load_demos(run.env, run.demos, seed=cfg["demo_set"]["select_seed"], spec=spec, root=cfg.get("paths", {}).get("demos"))
        return np.asarray(demos.ep_returns, dtype=float)
    except Exception:  # noqa: BLE001 - no band rather than no figure when the demo set is not here
        return None


def _seed_values(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's return ``(seeds, steps)`` on the evaluation steps every seed reached (linear interpolation)."""
    curves = [r for r in runs if len(r.steps)]
    if not curves:
        return np.zeros(0), np.zeros((0, 0))
    end = min(r.steps[-1] for r in curves)
    grid = np.unique(np.concatenate([r.steps[r.steps <= end] for r in curves]))
    return grid, np.stack([np.interp(grid, r.steps, r.returns) for r in curves])


def mean_curve(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std across seeds on the evaluation steps every seed reached (linear interpolation)."""
    grid, values = _seed_values(runs)
    if not len(grid):
        return grid, np.zeros(0), np.zeros(0)
    return grid, values.mean(0), values.std(0)


def band(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plotted band: mean ± std, clipped to the seeds' own range, so it never shows a return no
    seed had (e.g. above CartPole's 500 when most seeds sit at it)."""
    grid, values = _seed_values(runs)
    if not len(grid):
        return grid, np.zeros(0), np.zeros(0)
    mean, std = values.mean(0), values.std(0)
    return grid, np.maximum(mean - std, values.min(0)), np.minimum(mean + std, values.max(0))


def display_path(path: Path) -> str:
    """A run directory as written in the outputs: relative to the working directory when below it,
    so committed reports do not carry one machine's absolute paths."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
