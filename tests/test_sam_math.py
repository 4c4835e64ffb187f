"""SAM's pieces of math, each against a hand computation: n-step windows, Pop-Art, parameter
noise, OU noise, weight-decay scope, and gradient averaging across two gloo workers."""

from __future__ import annotations

import os
import socket

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from stable_baselines3.common.noise import OrnsteinUhlenbeckActionNoise
from torch import nn

from ail import distributed
from ail.algos.sam.exploration import AdaptiveParamNoise, perturbable
from ail.algos.sam.nets import SAMPolicy
from ail.algos.sam.popart import PopArt
from ail.algos.sam.replay import lookahead, nstep_targets

GAMMA = 0.9


def _window(dones, timeouts, pos, full, rows, n):
    d = np.asarray(dones, dtype=np.float32)[:, None]
    t = np.asarray(timeouts, dtype=np.float32)[:, None]
    return lookahead(d, t, pos, full, np.asarray(rows), np.zeros(len(rows), dtype=int), n)


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


def _critic_like() -> tuple[nn.Sequential, nn.Sequential]:
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    target = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    return online, target


def test_popart_update_preserves_the_denormalised_outputs_of_online_and_target_critics():
    online, target = _critic_like()
    popart = PopArt(min_var=1e-2)
    popart.update(torch.randn(64) * 3 + 10, [online[-1], target[-1]])
    x = torch.randn(32, 4)
    before = [popart.denormalize(net(x)).detach().clone() for net in (online, target)]
    popart.update(torch.randn(64) * 50 - 200, [online[-1], target[-1]])  # statistics move a lot
    after = [popart.denormalize(net(x)).detach() for net in (online, target)]
    assert float(popart.mean) < 0 and float(popart.sigma) > 10
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_popart_statistics_match_numpy_over_all_targets_and_floor_sigma():
    popart = PopArt(min_var=1e-2)
    batches = [np.random.default_rng(i).normal(5, 2, 100) for i in range(3)]
    for b in batches:
        popart.update(torch.as_tensor(b), [])
    allv = np.concatenate(batches)
    assert float(popart.mean) == pytest.approx(allv.mean(), rel=1e-4)
    assert float(popart.sigma) == pytest.approx(allv.std(), rel=1e-3)
    flat = PopArt(min_var=1e-2)
    flat.update(torch.full((10,), 3.0), [])
    assert float(flat.sigma) == pytest.approx(0.1)  # sqrt(min_var = 1e-2)
    y = torch.tensor([7.0])
    assert float(popart.denormalize(popart.normalize(y))) == pytest.approx(7.0)


def _actor() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.LeakyReLU(0.2), nn.LayerNorm(16), nn.Linear(16, 2), nn.Tanh())


def test_param_noise_grows_sigma_when_actions_barely_move_and_shrinks_it_when_they_move_too_much():
    actor, obs = _actor(), torch.randn(64, 3)
    small = AdaptiveParamNoise(actor, initial_sigma=1e-4, target_distance=0.2, factor=1.01)
    small.adapt(actor, obs, torch.Generator().manual_seed(0))
    assert small.sigma == pytest.approx(1e-4 * 1.01) and small.last_distance < 0.2
    big = AdaptiveParamNoise(actor, initial_sigma=5.0, target_distance=0.2, factor=1.01)
    big.adapt(actor, obs, torch.Generator().manual_seed(0))
    assert big.sigma == pytest.approx(5.0 / 1.01) and big.last_distance > 0.2


def test_param_noise_leaves_layernorm_alone_and_perturbs_everything_else():
    actor = _actor()
    pn = AdaptiveParamNoise(actor, initial_sigma=0.5, target_distance=0.2, factor=1.01)
    pn.resample(actor, torch.Generator().manual_seed(1))
    names = {n for n, _ in perturbable(actor)}
    assert names == {"0.weight", "0.bias", "3.weight", "3.bias"}
    original, perturbed = dict(actor.named_parameters()), dict(pn.perturbed.named_parameters())
    for name in original:
        same = torch.equal(original[name], perturbed[name])
        assert same == (name not in names), name


def test_ou_noise_starts_at_zero_and_reaches_its_stationary_spread():
    sigma, theta, dt = 0.2, 0.15, 1e-2
    noise = OrnsteinUhlenbeckActionNoise(np.zeros(2000), sigma * np.ones(2000), theta=theta, dt=dt)
    np.random.seed(0)
    first = noise()
    assert np.std(first) == pytest.approx(sigma * np.sqrt(dt), rel=0.1)  # one step from x0 = 0
    for _ in range(3000):
        x = noise()
    stationary = sigma * np.sqrt(dt / (1 - (1 - theta * dt) ** 2))  # about 0.365 (sam-tf: "about 0.36 after 1000 steps")
    assert abs(np.mean(x)) < 0.05 and np.std(x) == pytest.approx(stationary, rel=0.1)
    noise.reset()
    assert np.all(noise.noise_prev == 0)


def test_weight_decay_reaches_only_the_critics_hidden_kernels():
    obs_space = gym.spaces.Box(-1, 1, (5,), np.float32)
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    policy = SAMPolicy(obs_space, act_space, lambda _: 1e-3, net_arch=[8, 8], n_critics=2, layer_norm=True, head_init=3e-3)
    decayed = {id(w) for w in policy.critic.hidden_weights()}
    linears = [m for q in policy.critic.q_networks for m in q if isinstance(m, nn.Linear)]
    assert len(decayed) == 4  # two hidden kernels per head, two heads
    assert all(id(m.weight) in decayed for q in policy.critic.q_networks for m in list(q)[:-1] if isinstance(m, nn.Linear))
    assert all(id(m.bias) not in decayed for m in linears)
    assert all(id(q[-1].weight) not in decayed for q in policy.critic.q_networks)
    ln = [p for m in policy.critic.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()]
    assert ln and all(id(p) not in decayed for p in ln)
    assert all(id(p) not in decayed for p in policy.actor.parameters())


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
    distributed.average_gradients(net.parameters())
    torch.save([p.grad for p in net.parameters()], os.path.join(out_dir, f"grad{rank}.pt"))
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
