"""SAM's parallel instantiations (paper section 5) on ``torch.distributed``.

K workers each own an env, a replay buffer and exploration noise. They start from rank 0's
parameters and stay identical: after every ``backward()`` the gradients are all-reduced and
averaged, then clipped and applied by each worker's own (identical) optimiser. Running
statistics (observation normalisers, Pop-Art, the parameter-noise distance) are reduced the
same way. The backend is gloo on CPU and NCCL on GPU; with one worker every call is a no-op.

:func:`spawned` starts the workers and watches them: a worker that dies (an error, a kill) would
leave the others blocked in a collective until the gloo timeout, so the job ends at once with one
line naming the worker and its error instead; every checkpoint is replaced atomically, so the last
one written is kept.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ail.errors import ConfigError, StorageError, TrainingError
from ail.preemption import Preempted

WATCH_EVERY_S = 0.5
HANDOVER_S = 3.0  # how long the watcher leaves a dead worker to the job's own process (a failed collective) before it acts
WORKER_DIED_EXIT = 3  # as a numerical failure: the run stopped, its last checkpoint kept


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def average_tensors(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor, in place, by its mean over workers (one flat all-reduce)."""
    if not active():
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def sum_tensors(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor summed over workers (new tensors; the inputs themselves without workers)."""
    if not active():
        return tensors
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    return tuple(part.view_as(t) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors))


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every worker (``obj`` itself without workers)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_scalar(x: float) -> float:
    if not active():
        return x
    t = torch.tensor([x], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t[0]) / dist.get_world_size()


def gather_rows(x: np.ndarray) -> np.ndarray:
    """Concatenate every worker's ``(B, ...)`` array along axis 0 (equal B on all workers)."""
    if not active():
        return x
    t = torch.as_tensor(np.ascontiguousarray(x))
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return torch.cat(out).numpy()


def init(rank: int, world: int, port: int, timeout: datetime.timedelta) -> None:
    """Join the job's gloo group (rank 0 is the job's own process)."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _death(procs: list[Any], errors: Any, wait_s: float) -> Optional[str]:
    """The line that says which worker died and of what, once one has (waiting up to ``wait_s``); None if none did."""
    deadline = time.monotonic() + wait_s
    while True:
        dead = [(rank, p) for rank, p in enumerate(procs, start=1) if p.exitcode not in (None, 0)]
        if dead or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not dead:
        return None
    reported: dict[int, str] = {}
    while not errors.empty():
        rank, message = errors.get()
        reported[rank] = message
    rank, p = dead[0]
    why = reported.get(rank) or (f"killed by {signal.Signals(-p.exitcode).name}" if p.exitcode < 0 else f"exit code {p.exitcode}")
    return f"worker {rank} of {len(procs) + 1} died ({why}); the job stopped, its last checkpoint is kept: relaunch to resume"


def _kill(procs: list[Any]) -> None:
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join(timeout=10)


def _watch(procs: list[Any], errors: Any, done: threading.Event) -> None:
    """Where the job's own process cannot notice a dead worker (blocked in a rendezvous or a
    collective that waits for it), end the job: one line naming it and its error, exit 3."""
    while not done.wait(WATCH_EVERY_S):
        if any(p.exitcode not in (None, 0) for p in procs) and not done.wait(HANDOVER_S):
            message = _death(procs, errors, 0.0)
            print(f"error: {message}", file=sys.stderr, flush=True)
            _kill(procs)
            os._exit(WORKER_DIED_EXIT)  # the main thread is inside a gloo call, where no exception reaches it


@contextlib.contextmanager
def spawned(world: int, target: Callable[..., None], args: tuple[Any, ...], timeout: datetime.timedelta) -> Iterator[None]:
    """This process as rank 0 of ``world``, ranks 1.. as spawned processes running
    ``target(rank, world, port, errors, *args)``, all joined over gloo, watched until they end.

    ``target`` joins the group with :func:`init` and, should it fail, puts ``(rank, one line)`` on
    ``errors`` before exiting non-zero. A collective that fails because a worker died becomes a
    :class:`ail.errors.TrainingError` naming the worker and its error; preemption ends every worker
    at the same iteration and tears the group down together; any other error of this process ends
    the workers with it.
    """
    port = _free_port()
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    procs = [ctx.Process(target=target, args=(rank, world, port, errors, *args), daemon=True) for rank in range(1, world)]
    for p in procs:
        p.start()
    done = threading.Event()
    threading.Thread(target=_watch, args=(procs, errors, done), daemon=True, name="worker-watch").start()
    try:
        init(0, world, port, timeout)
        yield
    except Preempted:
        _teardown(procs)
        raise
    except (ConfigError, TrainingError, StorageError, KeyboardInterrupt):
        _kill(procs)
        raise
    except BaseException:
        message = _death(procs, errors, HANDOVER_S / 2)
        _kill(procs)
        if message is None:
            raise
        raise TrainingError(message) from None
    else:
        _teardown(procs)
    finally:
        done.set()


def _teardown(procs: list[Any]) -> None:
    # Every worker is at the same point: a gloo peer that vanishes mid-teardown would abort the others.
    dist.barrier()
    dist.destroy_process_group()
    for p in procs:
        p.join(timeout=60)
