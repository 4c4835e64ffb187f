"""Where shipped experts and cached demonstrations live (overridable by config or env var)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ail.provenance import REPO_ROOT


def experts_root(override: Optional[str] = None) -> Path:
    return Path(override or os.environ.get("AIL_EXPERTS_DIR") or REPO_ROOT / "experts")


def demos_root(override: Optional[str] = None) -> Path:
    return Path(override or os.environ.get("AIL_DEMOS_DIR") or REPO_ROOT / "demos")
