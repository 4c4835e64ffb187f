"""SAM's compiled update (ail/algos/sam/compiled.py) against the eager one (ail/algos/sam/agent.py).

From one saved state, one discriminator update and one actor-critic update are taken on each
path; every parameter, optimiser moment and Pop-Art statistic must agree to float tolerance.
The functional math is checked uncompiled for several configurations (fast), and compiled with
torch.compile for the default one (slow: ~1 min of compilation).
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import launch
from hydra import compose, initialize_config_dir
from test_sam import TINY

from ail.algos.sam.compiled import Compiled, CompiledSteps, StackedSteps
from ail.algos.sam.learner import Worker
from ail.config import CONF_DIR, register_resolvers
from ail.demos import load_demos

# tests/test_sam.py's TINY shapes, so the compiled test reuses the graphs cached by its runs.
BASE = [
    "algo=sam",
    "env=invertedpendulum",
    "algo.learning_starts=300",
    "algo.batch_size=32",
    "algo.discriminator.batch_size=32",
    "runtime.progress=false",
]
VARIANTS = {
    "default": [],
    "td3-mse-no-popart-stored-rewards": [
        "algo.critic.n_critics=2",
        "algo.critic.target_noise=0.2",
        "algo.critic.popart=false",
        "algo.critic.loss=mse",
        "algo.recompute_rewards=false",
        "algo.actor.q_scale=0.5",
    ],
    "one-step-only-no-penalty-entropy": [
        "algo.nstep=1",
        "algo.discriminator.grad_penalty=0",
        "algo.discriminator.entropy_weight=0.01",
        "algo.discriminator.label_smoothing=null",
        "algo.critic.weight_decay=0.1",
    ],
}


def _worker(overrides: list[str]) -> Worker:
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=BASE + overrides)
    w = Worker(cfg, load_demos("invertedpendulum", 4), 0)
    while w.model.num_timesteps <= 400:  # past learning_starts: some updates, some episode ends
        w.iterate()
    return w


def _state(w: Worker) -> dict[str, torch.Tensor]:
    m = w.model
    out = {f"disc.{k}": v.clone() for k, v in m.disc.state_dict().items()}
    out.update({f"policy.{k}": v.clone() for k, v in m.policy.state_dict().items()})
    for name, opt in (("d_opt", m.d_opt), ("actor_opt", m.actor.optimizer), ("critic_opt", m.critic.optimizer)):
        for i, st in opt.state_dict()["state"].items():
            out.update({f"{name}.{i}.{k}": v.clone() for k, v in st.items() if torch.is_tensor(v)})
    if m.popart:
        out.update({f"popart.{k}": v.clone() for k, v in m.popart.state_dict().items()})
    return out


def _one_update_each(w: Worker, fast: CompiledSteps | None) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    m = w.model
    m.fast, m._fast_d, m._fast_actor = fast, fast is not None, fast is not None
    logs = {**m.update_discriminator(), **m.update_actor_critic()}
    return _state(w), logs


def _compare(w: Worker, fast: CompiledSteps) -> None:
    saved = copy.deepcopy(w.snapshot())  # state_dict() tensors alias the live ones
    eager, eager_logs = _one_update_each(w, None)
    w.restore(saved)
    got, got_logs = _one_update_each(w, fast)
    assert eager.keys() == got.keys()
    for k in eager:
        torch.testing.assert_close(got[k], eager[k], rtol=1e-4, atol=1e-6, msg=k)
    assert eager_logs.keys() == got_logs.keys()
    for k in eager_logs:
        assert got_logs[k] == pytest.approx(eager_logs[k], rel=1e-4, abs=1e-6), k


_state_before: dict[str, torch.Tensor] = {}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_functional_update_equals_the_eager_update(variant):
    w = _worker(VARIANTS[variant] + ["algo.compile=false"])
    _state_before.clear()
    _state_before.update(_state(w))
    _compare(w, CompiledSteps(w.model, enabled=False))
    after = _state(w)
    # The comparison is not vacuous: the update moved D, the critic, the actor and the targets.
    for prefix in ("disc.net.0.weight", "policy.critic.qf0.0.weight", "policy.actor.mu.0.0.weight", "policy.actor_target.mu.0.0.weight"):
        assert not torch.equal(after[prefix], _state_before[prefix]), prefix


@pytest.mark.slow
def test_compiled_update_equals_the_eager_update():
    w = _worker([])
    fast = w.model.fast
    assert isinstance(fast, CompiledSteps) and fast.d_grads.compiled is not None
    _state_before.clear()
    _state_before.update(_state(w))
    _compare(w, fast)
    # Still compiled: no step fell back to eager.
    assert all(c.compiled is not None for c in (fast.d_grads, fast.targets, fast.critic_grads, fast.actor_grads))


def test_a_step_that_cannot_compile_falls_back_to_the_same_function(capsys):
    def needs_numpy(x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(x.numpy().tolist()) * 2  # .tolist() breaks a fullgraph trace

    step = Compiled(needs_numpy, "test", enabled=True)
    assert torch.equal(step(torch.ones(3)), torch.full((3,), 2.0))
    assert step.compiled is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("[sam] torch.compile of the test step failed") and err[0].endswith("running it uncompiled")


def test_stacked_update_of_two_seeds_equals_each_seeds_own_update():
    workers = [_worker([f"seed={seed}", "algo.compile=false"]) for seed in (0, 1)]
    for w in workers:
        m = w.model
        m.fast, m._fast_d, m._fast_actor = CompiledSteps(m, enabled=False), True, True
    saved = [copy.deepcopy(w.snapshot()) for w in workers]
    alone = []
    for w in workers:
        w.model.update_discriminator(), w.model.update_actor_critic()
        alone.append(_state(w))
    for w, s in zip(workers, saved):
        w.restore(s)
    StackedSteps([w.model for w in workers], enabled=False).update()
    for w, expected in zip(workers, alone):
        got = _state(w)
        for k in expected:
            torch.testing.assert_close(got[k], expected[k], rtol=1e-4, atol=1e-6, msg=k)
    # Two seeds really differ, so a mix-up of their slices would show.
    assert not torch.equal(alone[0]["disc.net.0.weight"], alone[1]["disc.net.0.weight"])


def test_a_machine_without_a_compiler_trains_uncompiled_with_one_warning_per_step(runs, tmp_path):
    # An empty inductor cache and no working C++ compiler: every step must fall back and the run finish.
    env = {"CXX": str(tmp_path / "no-such-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    proc = launch(TINY + ["algo.compile=true"], runs, env=env)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("[sam] torch.compile of the")]
    assert [w.split(" step failed")[0].rsplit(" ", 1)[1] for w in warnings] == ["discriminator", "target", "critic", "actor"], proc.stderr
    assert all(w.endswith("running it uncompiled") for w in warnings)
    assert (runs / "default" / "sam-invertedpendulum-d4" / "seed0" / "summary.json").is_file()


def test_a_step_whose_cuda_graphs_fail_tries_plain_compilation_then_none(capsys):
    # The GPU path asks for CUDA graphs first (mode="reduce-overhead"); every failure says what is tried next.
    def needs_numpy(x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(x.numpy().tolist()) * 2

    step = Compiled(needs_numpy, "test", enabled=True, cuda_graphs=True)
    assert step.mode == "reduce-overhead"
    assert torch.equal(step(torch.ones(3)), torch.full((3,), 2.0))
    assert step.compiled is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith("[sam] torch.compile(mode='reduce-overhead') of the test step failed")
    assert err[0].endswith("trying torch.compile without CUDA graphs")
    assert err[1].startswith("[sam] torch.compile of the test step failed") and err[1].endswith("running it uncompiled")
