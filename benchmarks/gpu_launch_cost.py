"""What one small GPU operation costs the CPU on this machine, next to the same on the CPU.

    python benchmarks/gpu_launch_cost.py [--device cuda]

SAM's networks are 64 units wide and its batches 256 rows, so a kernel computes for a
microsecond or two: its launch, not its arithmetic, is what a GPU update pays for. This prints
the CPU time of a kernel launch, a launch followed by a synchronisation, a ``.item()`` read, a
1 KB host-to-device copy, and a (256, 64) in-place add on the CPU (docs/notes/performance.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

import torch


def per_call_us(fn: Callable[[], object], sync: Callable[[], None], n: int = 2000) -> float:
    for _ in range(100):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t0) / n * 1e6


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"error: --device {args.device} needs a CUDA GPU; torch {torch.__version__} sees none", file=sys.stderr)
        return 2
    dev = torch.device(args.device)
    sync = lambda: torch.cuda.synchronize(dev)  # noqa: E731
    x = torch.zeros(64, device=dev)
    host = torch.ones(256)
    print(f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    for name, fn in [
        ("kernel launch (add_)", lambda: x.add_(1)),
        ("launch + synchronize", lambda: (x.add_(1), torch.cuda.synchronize(dev))),
        (".item() of a sum", lambda: x.sum().item()),
        ("1 KB host-to-device copy", lambda: host.to(dev)),
    ]:
        print(f"  {name:26s} {per_call_us(fn, sync):7.1f} us")
    torch.set_num_threads(1)
    a = torch.zeros(256, 64)
    print(f"  {'CPU (256, 64) add_, 1 thread':26s} {per_call_us(lambda: a.add_(1), lambda: None, 20000):7.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
