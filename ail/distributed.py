"""SAM's parallel instantiations (paper section 5) on ``torch.distributed``.

K workers each own an env, a replay buffer and exploration noise. They start from rank 0's
parameters and stay identical: after every ``backward()`` the gradients are all-reduced and
averaged, then clipped and applied by each worker's own (identical) optimiser. Running
statistics (observation normalisers, Pop-Art, the parameter-noise distance) are reduced the
same way. The backend is gloo on CPU and NCCL on GPU; with one worker every call is a no-op.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist


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
