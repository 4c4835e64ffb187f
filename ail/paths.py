"""Where shipped experts and cached demonstrations live (overridable by config or env var), and
how files there are replaced."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

from ail.errors import ConfigError
from ail.provenance import REPO_ROOT


def experts_root(override: Optional[str] = None) -> Path:
    return Path(override or os.environ.get("AIL_EXPERTS_DIR") or REPO_ROOT / "experts")


def demos_root(override: Optional[str] = None) -> Path:
    return Path(override or os.environ.get("AIL_DEMOS_DIR") or REPO_ROOT / "demos")


def check_writable(path: Path, key: str) -> None:
    """``path`` exists as a writable directory or can be created (tried in its nearest existing parent)."""
    probe = path.resolve()
    while not probe.exists():
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        tempfile.TemporaryDirectory(dir=probe).cleanup()
    except OSError as exc:
        raise ConfigError(f"{key}={path} cannot be written ({probe}: {exc.strerror}); accepted: a directory this user can create files in") from None


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a crash never leaves it half-written, and processes writing it
    at once (parallel jobs, test workers) each use their own temporary."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
