"""ail entry point: ``python launch.py [task=train] algo=A env=E demos=N seed=S [-m for sweeps]``.

Tasks: train (default), expert (train an SB3 expert), demos (roll out the shipped expert),
eval (evaluate a saved policy). Configs live in conf/; see README.md.
"""

import sys

import hydra
from omegaconf import DictConfig

from ail.app import run
from ail.config import check_overrides, register_resolvers
from ail.errors import ConfigError
from ail.sweep_failures import FAILED as SWEEP_FAILED

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    try:
        check_overrides(sys.argv[1:])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    main()
    # Collected by ail.sweep_failures' callback once the sweep ended, whichever launcher ran the jobs.
    if SWEEP_FAILED:
        print(f"error: {len(SWEEP_FAILED)} job(s) failed:", *SWEEP_FAILED, sep="\n  ", file=sys.stderr)
        sys.exit(1)
