"""SAM's pieces of math, each against a hand computation: n-step windows, Pop-Art, parameter
noise, OU noise, weight-decay scope, and gradient averaging across two gloo workers."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ail import distributed
from ail.algos.sam.exploration import ActionNoise, ParamNoise, perturbable
from ail.algos.sam.replay import lookahead, nstep_return
from ail.algos.sam.stacked import MLP
from ail.algos.sam.update import Sample, SAMUpdate

GAMMA = 0.9


def _window(dones, timeouts, pos, full, rows, n):
    d = np.asarray(dones, dtype=np.float32)[:, None]
    t = np.asarray(timeouts, dtype=np.float32)[:, None]
    return lookahead(d, t, pos, full, np.asarray(rows), np.zeros(len(rows), dtype=int), n)


def nstep_targets(rewards, win, next_values, gamma, terminal_value=0.0):
    """``y_n`` of the windows ``win`` as the update computes it (:func:`nstep_return`)."""
    fields = (torch.from_numpy(x) for x in (win.valid, win.length, win.terminal))
    return nstep_return(rewards, *fields, next_values, gamma, torch.tensor(terminal_value))


def test_nstep_window_stops_at_the_episode_boundary_and_never_bootstraps_a_termination():
    # rows 0..5; row 2 terminates. From row 0 with n=4 the window is rows 0, 1, 2 (L=3), no bootstrap.
    dones = [0, 0, 1, 0, 0, 0]
    win = _window(dones, [0] * 6, pos=6, full=False, rows=[0], n=4)
    assert win.valid.tolist() == [[True, True, True, False]]
    assert win.length.tolist() == [3] and win.last.tolist() == [2] and win.terminal.tolist() == [True]
    r = np.array([[1.0, 2.0, 3.0, 100.0]])
    y = nstep_targets(torch.as_tensor(r), win, next_values=torch.tensor([50.0]), gamma=GAMMA)
    assert y.tolist() == pytest.approx([1 + GAMMA * 2 + GAMMA**2 * 3])  # the next episode's 100 and Q' = 50 are not used


def test_termination_in_the_last_window_slot_is_not_bootstrapped():
    # sam-tf's bug: a terminal exactly at the last lookahead position still bootstrapped.
    win = _window([0, 0, 0, 1, 0], [0] * 5, pos=5, full=False, rows=[0], n=4)
    assert win.length.tolist() == [4] and win.terminal.tolist() == [True]
    y = nstep_targets(torch.ones(1, 4), win, torch.tensor([1000.0]), GAMMA)
    assert y.tolist() == pytest.approx([1 + GAMMA + GAMMA**2 + GAMMA**3])
    absorbed = nstep_targets(torch.ones(1, 4), win, torch.tensor([1000.0]), GAMMA, terminal_value=20.0)
    assert absorbed.tolist() == pytest.approx([1 + GAMMA + GAMMA**2 + GAMMA**3 + GAMMA**4 * 20.0])  # absorbing state's value


def test_time_limit_truncation_bootstraps_from_the_final_observation():
    win = _window([0, 1, 0, 0], [0, 1, 0, 0], pos=4, full=False, rows=[0], n=4)
    assert win.length.tolist() == [2] and win.last.tolist() == [1] and win.terminal.tolist() == [False]
    y = nstep_targets(torch.ones(1, 4), win, torch.tensor([10.0]), GAMMA)
    assert y.tolist() == pytest.approx([1 + GAMMA + GAMMA**2 * 10.0])


def test_window_stops_at_the_write_head_and_wraps_a_full_buffer():
    # Not full: rows 3, 4 exist (pos=5); from row 3 with n=4 only L=2, bootstrapped (open window).
    win = _window([0] * 8, [0] * 8, pos=5, full=False, rows=[3], n=4)
    assert win.length.tolist() == [2] and win.terminal.tolist() == [False]
    # Full, write head at 2: from row 6 the window is 6, 7, 0, 1 (then the head).
    win = _window([0] * 8, [0] * 8, pos=2, full=True, rows=[6], n=6)
    assert win.length.tolist() == [4] and win.idx[0, :4].tolist() == [6, 7, 0, 1] and win.last.tolist() == [1]


def test_open_window_uses_gamma_to_the_actual_length():
    win = _window([0] * 10, [0] * 10, pos=10, full=False, rows=[2, 8], n=3)
    assert win.length.tolist() == [3, 2]
    y = nstep_targets(torch.ones(2, 3), win, torch.tensor([5.0, 5.0]), GAMMA)
    assert y.tolist() == pytest.approx([1 + GAMMA + GAMMA**2 + GAMMA**3 * 5, 1 + GAMMA + GAMMA**2 * 5])


def _update(*overrides: str) -> SAMUpdate:
    """An update of 3 observations and 2 actions, small ReLU networks, ``overrides`` of SAM's settings (``algo.<key>=<value>``)."""
    from test_sam_update import _settings

    critic = MLP((4, 8, 8, 1), "relu", False)
    return SAMUpdate(_settings(*overrides), MLP((3, 8, 2), "relu", False), critic, MLP((5, 8, 1), "relu", False), -torch.ones(2), torch.ones(2))


def _popart(k: int) -> dict[str, torch.Tensor]:
    f64 = {"dtype": torch.float64}
    return {"mean": torch.zeros(k, **f64), "var": torch.ones(k, **f64), "count": torch.full((k,), 1e-4, **f64)}


def _denormalised(u: SAMUpdate, pop: dict, critic: dict, x: torch.Tensor) -> torch.Tensor:
    q = u.critic({n[3:]: t for n, t in critic.items()}, x).squeeze(-1).double()
    return q * u._sigma(pop).unsqueeze(1) + pop["mean"].unsqueeze(1)


def test_popart_update_preserves_the_denormalised_outputs_of_online_and_target_critics():
    u = _update()
    g = torch.Generator().manual_seed(0)
    online = {f"q0.{n}": t for n, t in u.critic.init([g, g]).items()}
    target = {f"q0.{n}": t for n, t in u.critic.init([g, g]).items()}
    pop = _popart(2)
    u.popart_fold(pop, torch.randn(2, 64, generator=g) * 3 + 10, [online, target])
    x = torch.randn(2, 32, 4, generator=g)
    before = [_denormalised(u, pop, c, x) for c in (online, target)]
    moved = torch.stack([torch.randn(64, generator=g) * 50 - 200, torch.randn(64, generator=g) + 5])  # seed 0 moves a lot
    u.popart_fold(pop, moved, [online, target])
    after = [_denormalised(u, pop, c, x) for c in (online, target)]
    assert float(pop["mean"][0]) < 0 and float(u._sigma(pop)[0]) > 10
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_popart_statistics_match_numpy_over_all_targets_and_floor_sigma():
    u = _update()
    pop = _popart(1)
    batches = [np.random.default_rng(i).normal(5, 2, 100) for i in range(3)]
    for batch in batches:
        u.popart_fold(pop, torch.as_tensor(batch)[None], [])
    allv = np.concatenate(batches)
    assert float(pop["mean"][0]) == pytest.approx(allv.mean(), rel=1e-4)
    assert float(u._sigma(pop)[0]) == pytest.approx(allv.std(), rel=1e-3)
    flat = _popart(1)
    u.popart_fold(flat, torch.full((1, 10), 3.0), [])
    assert float(u._sigma(flat)[0]) == pytest.approx(0.1)  # sqrt(min_var = 1e-2)


ACTOR = MLP((3, 16, 2), "leaky_relu", True)


def _deterministic(p: dict, obs: torch.Tensor) -> Sample:
    """ACTOR as a deterministic tanh policy (SAMUpdate.sample's ddpg case)."""
    u = ACTOR(p, obs)
    return Sample(torch.tanh(u), u.new_zeros(u.shape[:-1]), u)


def test_param_noise_grows_sigma_when_actions_barely_move_and_shrinks_it_when_they_move_too_much():
    gens = [torch.Generator().manual_seed(k) for k in range(2)]
    params, obs = ACTOR.init(gens), torch.randn(2, 64, 3)
    pn = ParamNoise(_deterministic, 2, initial_sigma=0.2, factor=1.01)
    pn.sigma = np.array([1e-4, 5.0])  # seed 0 barely perturbed, seed 1 far too much
    pn.resample(params, gens, [0, 1])
    pn.adapt(params, obs, gens)
    assert pn.sigma[0] == pytest.approx(1e-4 * 1.01) and pn.last_distance[0] < 0.2
    assert pn.sigma[1] == pytest.approx(5.0 / 1.01) and pn.last_distance[1] > 0.2


def test_param_noise_leaves_layernorm_alone_and_perturbs_everything_else():
    gens = [torch.Generator().manual_seed(k) for k in range(2)]
    params = ACTOR.init(gens)
    pn = ParamNoise(_deterministic, 2, initial_sigma=0.5, factor=1.01)
    pn.resample(params, gens, [0, 1])
    assert {n for n in params if perturbable(n)} == {"l0.weight", "l0.bias", "l1.weight", "l1.bias"}
    for name, t in params.items():
        assert torch.equal(t, pn.perturbed[name]) == (not perturbable(name)), name
    # A new episode of seed 1 redraws only seed 1's perturbation.
    kept = {n: t.clone() for n, t in pn.perturbed.items()}
    pn.resample(params, gens, [1])
    assert torch.equal(pn.perturbed["l0.weight"][0], kept["l0.weight"][0])
    assert not torch.equal(pn.perturbed["l0.weight"][1], kept["l0.weight"][1])


def test_ou_noise_starts_at_zero_and_reaches_its_stationary_spread():
    sigma, theta, dt = 0.2, 0.15, 1e-2
    noise = ActionNoise("ou", sigma, 2000, theta=theta, dt=dt)
    rng = np.random.default_rng(0)
    first = noise(rng)
    assert np.std(first) == pytest.approx(sigma * np.sqrt(dt), rel=0.1)  # one step from x0 = 0
    for _ in range(3000):
        x = noise(rng)
    stationary = sigma * np.sqrt(dt / (1 - (1 - theta * dt) ** 2))  # about 0.365 (sam-tf: "about 0.36 after 1000 steps")
    assert abs(np.mean(x)) < 0.05 and np.std(x) == pytest.approx(stationary, rel=0.1)
    noise.reset()
    assert np.all(noise.x == 0)


def test_weight_decay_reaches_only_the_critics_hidden_kernels():
    g = torch.Generator().manual_seed(0)
    u = _update("algo.ddpg.critic.n_critics=2", "algo.ddpg.critic.weight_decay=0.1")
    no_decay = _update("algo.ddpg.critic.n_critics=2", "algo.ddpg.critic.weight_decay=0.0")
    critic = {f"q{j}.{n}": t for j in range(2) for n, t in u.critic.init([g]).items()}
    args = (torch.randn(1, 8, 2, generator=g), torch.randn(1, 8, 2, generator=g), torch.randn(1, 8), torch.randn(1, 8))
    g_wd = torch.func.grad(lambda p: u.critic_loss(p, *args)[0])(critic)
    g_plain = torch.func.grad(lambda p: no_decay.critic_loss(p, *args)[0])(critic)
    decayed = {n for n in critic if not torch.equal(g_wd[n], g_plain[n])}
    assert decayed == {"q0.l0.weight", "q0.l1.weight", "q1.l0.weight", "q1.l1.weight"}  # hidden kernels of both heads
    for n in decayed:
        torch.testing.assert_close(g_wd[n] - g_plain[n], 0.1 * critic[n])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)


def _gloo_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    net = _net()
    x, y = _data()
    half = len(x) // world
    sl = slice(rank * half, (rank + 1) * half)
    ((net(x[sl]) - y[sl]) ** 2).mean().backward()
    grads = [p.grad for p in net.parameters()]
    distributed.average_tensors(grads)
    torch.save(grads, os.path.join(out_dir, f"grad{rank}.pt"))
    dist.destroy_process_group()


def test_gradients_averaged_over_two_gloo_workers_equal_the_single_process_gradient_on_the_whole_batch(tmp_path):
    port = _free_port()
    mp.start_processes(_gloo_worker, args=(2, port, str(tmp_path)), nprocs=2, start_method="spawn", join=True)
    net = _net()
    x, y = _data()
    ((net(x) - y) ** 2).mean().backward()
    for rank in range(2):
        grads = torch.load(tmp_path / f"grad{rank}.pt")
        for g, ref in zip(grads, [p.grad for p in net.parameters()]):
            torch.testing.assert_close(g, ref)
