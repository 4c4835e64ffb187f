"""How SAM's update (:mod:`ail.algos.sam.update`) is run compiled: :class:`Compiled` wraps the one
update function in ``torch.compile`` and falls back, one way at a time, to the eager function
itself when a way fails (no C++ toolchain, an op inductor cannot lower), so the math never differs
between the paths: only how it is executed.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import torch


class Compiled:
    """``fn`` compiled on first use; falls back to ``fn`` itself, uncompiled, if that fails.

    ``fullgraph=False`` lets gloo's collectives (``algo.workers``) split the graph where they run.

    ``cuda_graphs``: on a GPU, compile with ``mode="reduce-overhead"``: each call replays one CUDA
    graph instead of launching its kernels one by one. At these sizes a kernel computes for a
    microsecond or two and its launch costs several, so launches are the GPU update's cost
    (docs/notes/performance.md). Each call starts a new CUDA-graph iteration: the outputs of the
    previous call are then overwritten, so callers use a call's outputs before the next call
    (SAM does: gradients are applied, targets normalised, logs read in between) and drop them.
    The first argument is the state the update mutates in place: its tensors are marked as static
    addresses, without which inductor refuses to graph a function that mutates its inputs
    ("skipping cudagraphs due to mutated inputs") and launches every kernel itself.
    If that mode fails, the plain compiled graph is tried next, then no compilation.

    On the CPU the graph is compiled with inductor's C++ wrapper (``cpp_wrapper``): the code that
    allocates buffers and calls the kernels is then compiled too, instead of running as Python on
    each call, a large share of a small update's time (docs/notes/performance.md). Its intermediate
    buffers come from one pool (``memory_planning``) instead of an allocation each, which a K = 1
    update, about a hundred small buffers, measurably pays for. The kernels are the same, so are
    the results. If it fails, the Python wrapper is tried next, unless the failure is a missing C++
    compiler, which the Python wrapper's kernels need as well.
    """

    def __init__(self, fn: Callable[..., Any], name: str, enabled: bool, cuda_graphs: bool = False, fullgraph: bool = True):
        self.fn, self.name, self.fullgraph = fn, name, fullgraph
        first = ("reduce-overhead", {}) if cuda_graphs else (None, {"cpp_wrapper": True, "memory_planning": True})
        self.modes: list[tuple[Optional[str], dict[str, bool]]] = [first, (None, {})] if enabled else []
        if enabled:
            # Every learner's update is a bound method of one function, so each learner in a process
            # (tests, benchmarks) adds cache entries to one code object; torch's default of 8 would
            # send the ninth back to eager.
            config = torch._dynamo.config
            limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.6
            setattr(config, limit, max(int(getattr(config, limit)), 64))
        self.compiled = self._next()

    def _next(self) -> Optional[Callable[..., Any]]:
        if not self.modes:
            return None
        self.mode, self.options = self.modes.pop(0)
        return torch.compile(self.fn, dynamic=False, fullgraph=self.fullgraph, mode=self.mode, options=self.options or None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        while self.compiled is not None:
            if self.mode == "reduce-overhead":
                _mark_static(args[0])
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # a missing toolchain or an op inductor cannot lower: same math, another way
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                failed = self._label()
                was_graphs = self.mode == "reduce-overhead"
                if not was_graphs and _no_cxx_compiler(exc):
                    self.modes = []  # inductor's CPU kernels are C++ whichever wrapper calls them
                self.compiled = self._next()
                then = (
                    "running it uncompiled"
                    if self.compiled is None
                    else "trying torch.compile without CUDA graphs"
                    if was_graphs
                    else "trying torch.compile with its Python wrapper"
                )
                print(f"[sam] {failed} of the {self.name} step failed ({type(exc).__name__}: {first[:160]}); {then}", file=sys.stderr, flush=True)
        return self.fn(*args, **kwargs)

    def _label(self) -> str:
        if self.mode:
            return f"torch.compile(mode={self.mode!r})"
        return "torch.compile(cpp_wrapper=True)" if self.options.get("cpp_wrapper") else "torch.compile"


def _no_cxx_compiler(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it wraps is inductor's "no working C++ compiler"."""
    from torch._inductor.exc import InvalidCxxCompiler

    seen: Optional[BaseException] = exc
    for _ in range(16):  # a chain of causes, bounded against a cycle
        if seen is None or isinstance(seen, InvalidCxxCompiler):
            return seen is not None
        seen = getattr(seen, "inner_exception", None) or seen.__cause__ or seen.__context__
    return False


def _mark_static(tree: Any) -> None:
    """Mark every tensor of a nested dict as a static input of the CUDA graph (``guard=False``: a
    tensor that moves, as after a checkpoint load, makes the graph re-record, not recompile)."""
    if isinstance(tree, dict):
        for v in tree.values():
            _mark_static(v)
    elif isinstance(tree, torch.Tensor):
        torch._dynamo.mark_static_address(tree, guard=False)
