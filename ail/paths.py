"""Where shipped experts, cached demonstrations and runs live (overridable by config or env var),
that the runs directory is writable, and how files there are replaced."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ail.errors import ConfigError
from ail.provenance import REPO_ROOT


def experts_root(override: Optional[str] = None) -> Path:
    return Path(override or os.environ.get("AIL_EXPERTS_DIR") or REPO_ROOT / "experts")


def demos_root(override: Optional[str] = None) -> Path:
    return Path(override or os.environ.get("AIL_DEMOS_DIR") or REPO_ROOT / "demos")


def check_writable(path: Path, key: str) -> None:
    """``path`` exists as a writable directory or can be created (tried in its nearest existing parent);
    ``key`` is the setting that chose it, named in the error."""
    probe = path.resolve()
    while not probe.exists():
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        tempfile.TemporaryDirectory(dir=probe).cleanup()
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({probe}: {exc.strerror}); accepted: {key}=DIR where this user can create files") from None


class WritableRuns(Callback):
    """Hydra creates the job's (or sweep's) directory before any of our code runs, so an unwritable
    ``paths.runs`` would end in Hydra's chained tracebacks; this callback (conf/config.yaml:
    hydra.callbacks) checks it first and stops with one line, exit 2."""

    def _check(self, directory: Any) -> None:
        try:
            check_writable(Path(str(directory)), "paths.runs")
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir)


def remove_empty_dirs(out: Path, stop: Path) -> None:
    """Remove ``out`` and its parents below ``stop`` while they are empty directories: Hydra (or
    ail.train) named the job's directory before any check ran; an error before any write leaves no trace."""
    stop = stop.resolve()
    out = out.resolve()
    while out != stop and stop in out.parents and out.is_dir() and not any(out.iterdir()):
        out.rmdir()
        out = out.parent


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a crash never leaves it half-written, and processes writing it
    at once (parallel jobs, test workers) each use their own temporary."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
