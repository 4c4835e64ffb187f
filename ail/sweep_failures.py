"""Failed jobs of a sweep, reported by run directory whatever launcher ran them.

A job of a multirun never raises out of its task (one failure must not hide the others):
it writes ``<sweep dir>/.failures/<job>.json`` instead. Jobs may run in other processes
(joblib) or on other machines (Slurm), so the record goes through the shared sweep directory.
The Hydra callback below runs in the launching process; once the sweep has finished it lists
the records written since the sweep started, and launch.py exits non-zero if there are any.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

FAILED: list[str] = []  # "<run dir>: <message>" for the sweep that just ended (launching process)


def _record_path(sweep_dir: Path, run_dir: Path) -> Path:
    try:
        rel = run_dir.resolve().relative_to(sweep_dir.resolve())
    except ValueError:
        rel = Path(run_dir.name)
    return sweep_dir / ".failures" / (str(rel).replace(os.sep, "__") + ".json")


def write_failure(sweep_dir: Path, run_dir: Path, message: str) -> None:
    path = _record_path(sweep_dir, run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "run_dir": str(run_dir),
        "message": message,
        "time": time.time(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)


def clear_failure(sweep_dir: Path, run_dir: Path) -> None:
    """A job that starts again (rerun, requeue) drops the record of its earlier failure."""
    _record_path(sweep_dir, run_dir).unlink(missing_ok=True)


def read_failures(sweep_dir: Path, since: float = 0.0) -> list[dict[str, Any]]:
    out = []
    for path in sorted((sweep_dir / ".failures").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("time", 0.0) >= since:
            out.append(record)
    return out


class SweepFailures(Callback):
    """Registered in conf/config.yaml (hydra.callbacks)."""

    def __init__(self) -> None:
        self.start = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.start = time.time() - 1.0  # file times may be coarser than the clock
        FAILED.clear()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        for r in read_failures(Path(str(config.hydra.sweep.dir)), self.start):
            line = f"{r['run_dir']}: {r['message']}"
            if r.get("slurm_job_id"):
                line += f" (Slurm job {r['slurm_job_id']})"
            FAILED.append(line)
