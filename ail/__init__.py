"""ail: adversarial imitation learning platform (GAIL, SAM, MGAIL, Dyna-AIL, BC) on gymnasium tasks.

Python API: ``ail.train(algo, env, demos, seed, overrides) -> run dir``, ``ail.evaluate(policy, env)``,
``ail.load_policy(run_dir)``, ``ail.load_expert(env)``, ``ail.load_demos(env, n)``,
``ail.sweep_jobs(sweep_file) -> [(config, run dir)]``.

The names are imported on first use (PEP 562), so ``launch.py`` refuses bad input before torch and
SB3 are imported (a second, not four).
"""

from importlib import import_module
from typing import Any

_API = {
    "Evaluation": "ail.api",
    "evaluate": "ail.api",
    "train": "ail.api",
    "load_demos": "ail.demos",
    "load_expert": "ail.experts",
    "load_policy": "ail.policy",
    "set_random_seed": "ail.seeding",
    "sweep_jobs": "ail.api",
}
__all__ = sorted(_API)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'ail' has no attribute {name!r}")
