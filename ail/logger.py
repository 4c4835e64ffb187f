"""One metrics interface: ``metrics.csv`` always, TensorBoard and W&B when switched on."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig

from ail.paths import writing

BASE_COLUMNS = [
    "env_steps",
    "updates",
    "wall_time",
    "return_mean",
    "return_std",
    "return_min",
    "return_max",
    "normalized_score",
]


def _wandb_mode(requested: Optional[str]) -> str:
    if requested:
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    netrc = Path.home() / ".netrc"
    if not has_key and netrc.is_file():
        has_key = "api.wandb.ai" in netrc.read_text(errors="ignore")
    return "online" if has_key else "offline"


class MetricsLogger:
    """Rows keyed by ``env_steps`` and ``updates``; each sink gets the same numbers."""

    def __init__(self, run_dir: Path, cfg: DictConfig, group: str, name: str, config: dict[str, Any], wandb_id: Optional[str]):
        self.path = run_dir / "metrics.csv"
        self.columns: list[str] = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                self.columns = next(csv.reader(f), [])
        self.tb = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        self.wandb = None
        self.wandb_id = wandb_id
        if cfg.wandb.enabled:
            import wandb

            self.wandb = wandb.init(
                project=cfg.wandb.project,
                entity=cfg.wandb.entity,
                group=group,
                name=name,
                job_type="train",
                config=config,
                dir=str(run_dir),
                id=wandb_id,
                resume="allow",
                mode=_wandb_mode(cfg.wandb.mode),
                reinit="create_new",  # several runs per process (train.seeds_per_process), each its own object
            )
            self.wandb_id = self.wandb.id
            self.wandb.define_metric("env_steps")
            self.wandb.define_metric("eval/*", step_metric="env_steps")
            self.wandb.define_metric("train/*", step_metric="env_steps")

    def truncate(self, env_steps: int, updates: int) -> None:
        """Drop rows written after the checkpoint being resumed (all of them for ``-1, -1``), so
        none is duplicated. A row cut short by a kill (a field missing) is dropped too."""
        if not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [
            r
            for r in rows
            if None not in r.values() and None not in r and int(float(r["env_steps"])) <= env_steps and int(float(r["updates"])) <= updates
        ]
        if len(keep) != len(rows) or not self.path.read_bytes().endswith(b"\n"):
            self._rewrite(keep)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(f"metrics.csv.{os.getpid()}.tmp")
        with writing(self.path, "the metrics", tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.columns)
                w.writeheader()
                w.writerows(rows)
            tmp.replace(self.path)

    def log(self, row: dict[str, Any]) -> None:
        new = [k for k in row if k not in self.columns]
        if new:
            old_rows: list[dict[str, Any]] = []
            if self.path.is_file():
                with open(self.path, newline="") as f:
                    old_rows = list(csv.DictReader(f))
            self.columns = (self.columns or list(BASE_COLUMNS)) + [k for k in new if k not in BASE_COLUMNS]
            self._rewrite(old_rows)
        # A row cut short by a failed write is dropped by the next launch's truncate().
        with writing(self.path, "a metrics row"), open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(row)
            f.flush()
            os.fsync(f.fileno())
        step = int(row["env_steps"]) if int(row["env_steps"]) > 0 else int(row["updates"])
        metrics = {k: v for k, v in row.items() if k not in ("env_steps", "updates") and isinstance(v, (int, float))}
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(("eval/" if k in BASE_COLUMNS else "train/") + k, v, global_step=step)
            self.tb.flush()
        if self.wandb is not None:
            payload = {("eval/" if k in BASE_COLUMNS else "train/") + k: v for k, v in metrics.items()}
            payload.update(env_steps=int(row["env_steps"]), updates=int(row["updates"]))
            self.wandb.log(payload)

    def summary(self, summary: dict[str, Any]) -> None:
        if self.wandb is not None:
            for k, v in summary.items():
                self.wandb.summary[k] = v

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
