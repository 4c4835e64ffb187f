"""Where shipped experts, cached demonstrations and runs live (overridable by config or env var),
that the runs directory is writable, and how files there are replaced."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ail.errors import ConfigError, StorageError
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


def _os_error(exc: BaseException) -> Optional[OSError]:
    """The OSError behind ``exc``: itself, or one it was raised from or during (torch's writer
    reports a full disk as a RuntimeError raised while handling the OSError of the failed write)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


@contextlib.contextmanager
def writing(path: Path, what: str, tmp: Optional[Path] = None) -> Iterator[None]:
    """Around the writes of ``what`` to ``path``: one that fails for the file system (no space left,
    no permission, a read-only mount) ends in one :class:`StorageError` naming the path, what was
    being written and the cause, with its temporary ``tmp`` removed; other errors pass unchanged."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        cause = _os_error(exc)
        if cause is None:
            raise
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {what} to {path}: {cause.strerror or cause}") from exc


def atomic_write_text(path: Path, text: str, what: Optional[str] = None) -> None:
    """Replace ``path`` in one step: a crash never leaves it half-written, and processes writing it
    at once (parallel jobs, test workers) each use their own temporary. ``what`` names the file in
    the :class:`StorageError` of a write that fails (default: its name)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with writing(path, what or path.name, tmp):
        tmp.write_text(text)
        tmp.replace(path)
