"""SAM on a GPU (``runtime.device=cuda``). Skipped where torch sees no CUDA device: CI has none;
these run on a GPU machine (``python -m pytest tests/test_sam_cuda.py``).

The GPU path keeps replay, expert pairs and every random draw on the CPU, in the CPU run's
order, and moves each batch over once: from one state and batch the update on either device
must give the same parameters to float tolerance (GPU and CPU kernels sum in other orders).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from conftest import launch
from omegaconf import OmegaConf
from test_sam import TINY, sam_dir
from test_sam_update import VARIANTS, _settings, _update
from torch._dynamo.utils import counters

from ail.algos.sam.compile import Compiled
from ail.algos.sam.stacked import to_device
from ail.policy import load_policy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runtime.device=cuda)")


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("variant", ["default", "td3-mse-stored-rewards-no-popart"])
def test_the_update_on_the_gpu_matches_the_cpus_from_the_same_state_and_batch(variant, compiled):
    u, st, batch = _update(_settings(*VARIANTS[variant]), 2)
    cuda = torch.device("cuda")
    st_gpu, batch_gpu = to_device(st, cuda), to_device(batch, cuda)
    u_gpu = copy.deepcopy(u).to(cuda)  # its action bounds on the GPU, as the learner's are
    step = Compiled(u_gpu.update, "gpu test", compiled, cuda_graphs=compiled)
    counters.clear()
    for _ in range(3):
        cpu_logs, gpu_logs = u.update(st, batch, True), step(st_gpu, batch_gpu, True)
        torch.testing.assert_close(gpu_logs.cpu(), cpu_logs, rtol=1e-3, atol=1e-4)
    # Replayed as a CUDA graph, not run kernel by kernel: inductor only warns when it skips the
    # graph (it did for every update while the state was not marked static), and says so in no
    # public place but this counter.
    assert compiled is False or counters["inductor"]["cudagraph_skips"] == 0, dict(counters["inductor"])
    for part in ("actor", "critic", "disc", "popart"):
        for n, t in st[part].items():
            torch.testing.assert_close(st_gpu[part][n].cpu(), t, rtol=1e-3, atol=1e-4, msg=f"{part}.{n}")


def test_sam_trains_end_to_end_on_the_gpu(runs):
    proc = launch(TINY + ["algo.compile=true", "runtime.device=cuda"], runs)
    assert proc.returncode == 0, proc.stderr
    d = sam_dir(runs)
    summary = json.loads((d / "summary.json").read_text())
    assert summary["env_steps"] == 600 and summary["updates"] == 400
    assert OmegaConf.load(d / "config.yaml").runtime.device == "cuda"
    # The saved policy loads and acts on the CPU (no GPU needed to evaluate it).
    policy = load_policy(d)
    assert next(policy.policy.parameters()).device.type == "cpu" and policy.predict(np.zeros(4, dtype=np.float32)).shape == (1,)


def test_two_seeds_stacked_on_the_gpu_train(runs):
    proc = launch(TINY + ["algo.compile=true", "runtime.device=cuda", "train.seeds_per_process=2"], runs)
    assert proc.returncode == 0, proc.stderr
    for seed in (0, 1):
        assert json.loads((sam_dir(runs, seed=seed) / "summary.json").read_text())["updates"] == 400


def test_gloo_workers_on_the_gpu_are_refused_in_one_line(runs):
    proc = launch(TINY + ["algo.compile=true", "runtime.device=cuda", "algo.workers=2"], runs)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "algo.workers=2 with runtime.device=cuda is not supported" in lines[0]


@pytest.mark.slow
def test_sam_imitates_the_invertedpendulum_expert_on_the_gpu(runs):
    # The CPU learning test (tests/test_sam.py) with the networks on the GPU.
    proc = launch(
        [
            "algo=sam",
            "env=invertedpendulum",
            "train.env_steps=8000",
            "eval.every=8000",
            "eval.episodes=1",
            "eval.final_episodes=10",
            "runtime.progress=false",
            "runtime.device=cuda",
        ],
        runs,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((sam_dir(runs) / "summary.json").read_text())
    assert summary["normalized_score"] >= 0.9, summary
