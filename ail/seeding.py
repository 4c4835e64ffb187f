"""One seed for python, numpy, torch (and, through the env factories, envs and action spaces)."""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.utils import set_random_seed as sb3_set_random_seed


def set_random_seed(seed: int, threads: int = 1) -> None:
    """Seed python, numpy and torch, pin torch to ``threads`` CPU threads, and ask for deterministic kernels."""
    torch.set_num_threads(threads)
    sb3_set_random_seed(seed)
    # Deterministic cuBLAS on a GPU; read when cuBLAS starts, so set before any GPU work (unused on the CPU).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    # That also fills every new tensor with NaN (a kernel per allocation: on a GPU, about 100 extra
    # launches per SAM update). Correct code never reads memory it did not write, so runs stay
    # reproducible without it.
    torch.utils.deterministic.fill_uninitialized_memory = False


def rng_state() -> dict[str, Any]:
    """Everything a checkpoint needs to continue the random streams where they stopped."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
