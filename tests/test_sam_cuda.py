"""SAM on a GPU (``runtime.device=cuda``). Skipped where torch sees no CUDA device: CI has none;
these run on a GPU machine (``python -m pytest tests/test_sam_cuda.py``).

The GPU path keeps replay, expert pairs and every random draw on the CPU, in the CPU run's
order, so from one checkpoint an update on either device consumes the same batch and noise:
the parameters it gives must agree to float tolerance (GPU and CPU kernels sum in other orders).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from conftest import launch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_sam import TINY, sam_dir
from test_sam_compiled import BASE, VARIANTS

from ail.algos.sam.learner import Worker
from ail.config import CONF_DIR, register_resolvers
from ail.demos import load_demos
from ail.policy import load_policy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runtime.device=cuda)")


def _worker(device: str, overrides: list[str]) -> Worker:
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=BASE + [f"runtime.device={device}", *overrides])
    return Worker(cfg, load_demos("invertedpendulum", 4), 0)


def _state(w: Worker) -> dict[str, torch.Tensor]:
    m = w.model
    out = {f"disc.{k}": v.detach().cpu().clone() for k, v in m.disc.state_dict().items()}
    out.update({f"policy.{k}": v.detach().cpu().clone() for k, v in m.policy.state_dict().items()})
    if m.popart:
        out.update({f"popart.{k}": v.detach().cpu().clone() for k, v in m.popart.state_dict().items()})
    return out


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("variant", ["default", "td3-mse-no-popart-stored-rewards"])
def test_a_cpu_checkpoint_resumes_on_the_gpu_and_its_updates_match_the_cpus(variant, compiled):
    overrides = VARIANTS[variant] + [f"algo.compile={str(compiled).lower()}"]
    cpu = _worker("cpu", overrides)
    while cpu.model.num_timesteps <= 400:  # past learning_starts: some updates, some episode ends
        cpu.iterate()
    saved = copy.deepcopy(cpu.snapshot())
    gpu = _worker("cuda", overrides)
    gpu.restore(copy.deepcopy(saved))
    assert next(gpu.model.critic.parameters()).is_cuda and next(gpu.disc.parameters()).is_cuda
    for _ in range(3):
        logs = {}
        for w in (cpu, gpu):
            logs[w.device.type] = {**w.model.update_discriminator(), **w.model.update_actor_critic()}
        for k, v in logs["cpu"].items():
            assert logs["cuda"][k] == pytest.approx(v, rel=1e-3, abs=1e-4), k
    if compiled:  # the GPU ran CUDA graphs, not a fallback
        fast = gpu.model.fast
        assert fast.cuda_graphs and all(
            f.compiled is not None and f.mode == "reduce-overhead" for f in (fast.d_grads, fast.targets, fast.critic_grads, fast.actor_grads)
        )
    want, got = _state(cpu), _state(gpu)
    assert want.keys() == got.keys()
    for k in want:
        # Adam turns float-level gradient differences into up to lr-sized steps where a gradient is near 0.
        torch.testing.assert_close(got[k], want[k], rtol=1e-3, atol=1e-4, msg=k)
    # And back: the GPU run's checkpoint loads on the CPU (torch.load maps it there first).
    back = _worker("cpu", overrides)
    back.restore(torch.load(_save(gpu), map_location="cpu", weights_only=False))
    for k, v in _state(back).items():
        torch.testing.assert_close(v, got[k], rtol=0, atol=0, msg=k)


def _save(w: Worker):
    import io

    buf = io.BytesIO()
    torch.save(w.snapshot(), buf)
    buf.seek(0)
    return buf


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
