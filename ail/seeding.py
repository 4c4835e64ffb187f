"""The seed scheme: one ``seed`` per run, and every other seed derived from it by :func:`derive_seed`.

A run's ``seed`` seeds python, numpy and torch (:func:`set_random_seed`) and, through the env
factories, its training envs (copy ``i`` gets ``seed + i``) and their action spaces. Every other
random stream has a name here and one formula, so two purposes never share a stream by accident
and a stream is found by name, not by a constant at its call site:

=================  ==============================  =============================================
stream             seed                            used for
=================  ==============================  =============================================
``worker``         ``seed + 1_000_000 * rank``     SAM worker ``rank``'s envs, networks, noise
``sam_init``       ``seed + 3_000_017``            SAM's initial networks (torch Generator; alike on every worker)
``sam_replay``     ``seed + 7_919 * rank``         SAM's replay sampling and exploration noise (numpy Generator)
``sam_update``     ``seed + 104_729 * rank``       SAM's update draws and parameter noise (torch Generator)
``expert_starts``  ``seed + 1_000_003``            MGAIL envs that start from expert states
``eval``           ``1_000_000 + index``           periodic evaluation ``index`` (env steps +
                                                   updates: distinct per evaluation; the same
                                                   episodes for every seed of a cell)
``final_eval``     ``2_000_000 + seed``            the final evaluation in ``summary.json``
``eval_task``      ``seed + 1_000_000``            ``task=eval`` of a saved policy
=================  ==============================  =============================================

An evaluation's episode ``i`` resets with ``stream seed + i`` (:func:`ail.evaluation.evaluate`).
The formulas are the ones the runs in ``docs/results`` were made with.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.utils import set_random_seed as sb3_set_random_seed


def set_random_seed(seed: int, threads: int = 1) -> None:
    """Seed python, numpy and torch and pin torch to ``threads`` CPU threads.

    Eager CPU kernels give the same result run after run without more; what can differ is asked
    for by :func:`deterministic_kernels`."""
    torch.set_num_threads(threads)
    sb3_set_random_seed(seed)


def deterministic_kernels() -> None:
    """Ask torch for deterministic kernels: cuBLAS and CUDA ops on a GPU, inductor's choices in
    ``torch.compile``. Called by the learners that use either, before any GPU work (the cuBLAS
    setting is read when cuBLAS starts); not at every start, since the call imports torch's
    compiler stack (seconds per process)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    # That also fills every new tensor with NaN (a kernel per allocation: on a GPU, about 100 extra
    # launches per SAM update). Correct code never reads memory it did not write, so runs stay
    # reproducible without it.
    torch.utils.deterministic.fill_uninitialized_memory = False


_STREAMS = {
    "worker": lambda seed, i: seed + 1_000_000 * i,
    "sam_init": lambda seed, i: seed + 3_000_017,  # apart from sam_update, also a torch Generator, at rank 0
    "sam_replay": lambda seed, i: seed + 7_919 * i,
    "sam_update": lambda seed, i: seed + 104_729 * i,
    "expert_starts": lambda seed, i: seed + 1_000_003,
    "eval": lambda seed, i: 1_000_000 + i,
    "final_eval": lambda seed, i: 2_000_000 + seed,
    "eval_task": lambda seed, i: seed + 1_000_000,
}
STREAMS = tuple(_STREAMS)


def derive_seed(stream: str, seed: int, index: int = 0) -> int:
    """The seed of random stream ``stream`` (a name in :data:`STREAMS`) of a run seeded ``seed``.

    :param index: the worker rank (``worker``, ``sam_*``) or the evaluation index (``eval``).
    """
    return int(_STREAMS[stream](int(seed), int(index)))


def rng_state() -> dict[str, Any]:
    """Everything a checkpoint needs to continue the random streams where they stopped."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
