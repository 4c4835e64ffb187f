"""SIGTERM / SIGUSR2 / SIGINT -> checkpoint at the next safe point, then exit.

Slurm sends SIGUSR2 (submitit's ``signal_delay_s`` before the limit) or SIGTERM on
preemption; a person presses Ctrl-C (SIGINT). The handler only raises a flag; trainers poll
``requested`` between iterations so a checkpoint is never written from inside a half-finished
step. A second Ctrl-C stops at once (``KeyboardInterrupt``): checkpoints are replaced atomically,
so the last one written stays valid.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Optional

HANDLED = (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT)


class Preempted(Exception):
    """Raised after the checkpoint was written; launch.py exits with ``128 + signum``.

    :param where: the checkpoint files written (one per seed trained in this process).
    """

    def __init__(self, signum: int, env_steps: int, where: str):
        super().__init__(f"received {signal.Signals(signum).name}: checkpoint written at env_steps={env_steps} ({where})")
        self.signum = signum


class PreemptionFlag:
    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handler(self, signum: int, frame: Optional[FrameType]) -> None:
        if signum == signal.SIGINT:
            if self.signum == signal.SIGINT:
                raise KeyboardInterrupt  # the second Ctrl-C: at once
            print("\n[train] Ctrl-C: checkpointing at the end of this iteration (press it again to stop at once)", file=sys.stderr, flush=True)
        self.signum = signum

    def __enter__(self) -> "PreemptionFlag":
        for sig in HANDLED:
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)  # type: ignore[arg-type]


def scheduler_handlers() -> dict[int, object]:
    """The handlers installed for the preemption signals before training starts (e.g. submitit's)."""
    return {sig: signal.getsignal(sig) for sig in HANDLED}


def hand_over(signum: int, handlers: dict[int, object]) -> bool:
    """Once our checkpoint is written, run a job scheduler's own handler for ``signum``.

    Under submitit this is what requeues the Slurm job (``scontrol requeue``) and exits; the
    requeued job re-runs the same overrides and resumes from the run directory's checkpoint.
    Returns False when no such handler exists (plain process: the caller exits).
    """
    handler = handlers.get(signum)
    if not callable(handler) or handler is signal.default_int_handler:
        return False
    handler(signum, None)
    return True
