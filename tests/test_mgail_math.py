"""MGAIL / Dyna-AIL math: the re-parameterised unroll, Gumbel straight-through, forward models, trust region."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv

from ail.algos.model_based.config import TrustRegionConfig
from ail.algos.model_based.diff_policy import DiffPolicy, gumbel_softmax_st, tanh_squash
from ail.algos.model_based.forward_model import ForwardModel
from ail.algos.model_based.natural_gradient import mean_kl, natural_gradient_step
from ail.algos.model_based.unroll import RealUnroller, imagined_unroll, replay_sequences
from ail.discriminator import Discriminator

A = np.array([[0.9, 0.2], [-0.1, 0.8]])
B = np.array([[0.5], [0.3]])


class LinearEnv(gym.Env):
    """``s' = A s + B a``: a tiny known system whose dynamics an exact forward model can copy."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)

    def __init__(self) -> None:
        self.s = np.zeros(2)
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        self.s = np.array([1.0, -0.5])
        self.steps = 0
        return self.s.astype(np.float32), {}

    def step(self, action):
        self.steps += 1
        self.s = A @ self.s + B @ np.asarray(action, dtype=np.float64)
        return self.s.astype(np.float32), 0.0, False, self.steps >= 50, {}


class ExactModel(ForwardModel):
    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return obs @ torch.as_tensor(A.T, dtype=torch.float32) + act @ torch.as_tensor(B.T, dtype=torch.float32)


def _pieces(model_cls=ExactModel):
    torch.manual_seed(0)
    venv = DummyVecEnv([LinearEnv])
    policy = DiffPolicy(venv.observation_space, venv.action_space, net_arch=[8], noise_std=0.3)
    fm = model_cls(np.zeros(2), np.ones(2), np.zeros(1), np.ones(1), kind="basic", width=8, decoder=[8])
    disc = Discriminator(venv.observation_space, venv.action_space, hidden=[16], activation="tanh", normalize_obs=False)
    replay = ReplayBuffer(1000, venv.observation_space, venv.action_space, device="cpu", handle_timeout_termination=False)
    return venv, policy, fm, disc, replay


def _unroll_loss(venv, policy, fm, disc, replay, steps=5, seed=3):
    unroller = RealUnroller(venv, policy, fm, replay, gamma=0.9, max_error=1e9, generator=torch.Generator().manual_seed(seed))
    return unroller.unroll(steps, store=True).loss(disc), unroller


def test_unrolled_gradient_matches_finite_differences_with_an_exact_model():
    venv, policy, fm, disc, replay = _pieces()
    loss, _ = _unroll_loss(venv, policy, fm, disc, replay)
    params = list(policy.parameters())
    grads = torch.autograd.grad(loss, params)
    eps = 1e-2
    checked = 0
    for p, g in zip(params, grads):
        for i in range(min(p.numel(), 4)):
            flat = p.data.view(-1)
            old = float(flat[i])
            values = []
            for sign in (1, -1):
                flat[i] = old + sign * eps
                with torch.no_grad():
                    values.append(float(_unroll_loss(venv, policy, fm, disc, replay)[0]))  # same reset, same noise
            flat[i] = old
            fd = (values[0] - values[1]) / (2 * eps)
            assert fd == pytest.approx(float(g.view(-1)[i]), rel=3e-2, abs=2e-4), (p.shape, i)
            checked += 1
    assert checked >= 8


def test_a_wrong_model_gives_a_different_gradient_but_the_real_state_values():
    # With a random forward model the values along the unroll are still the real states (so the
    # cost is the real one), while the gradient follows the model: it no longer matches.
    venv, policy, fm, disc, replay = _pieces(ForwardModel)
    loss, _ = _unroll_loss(venv, policy, fm, disc, replay, steps=6)
    g_wrong = torch.autograd.grad(loss, list(policy.parameters()))
    obs_values = _unroll_loss(venv, policy, fm, disc, replay, steps=6)[1]
    unrolled = RealUnroller(venv, policy, fm, replay, 0.9, 1e9, torch.Generator().manual_seed(3)).unroll(6, store=False)
    env = LinearEnv()
    s, _ = env.reset()
    for obs_t, act_t in zip(unrolled.obs, unrolled.act):
        assert np.allclose(obs_t.detach().numpy()[0], s, atol=1e-5)
        s = env.step(act_t.detach().numpy()[0])[0]
    venv2, policy2, fm2, disc2, replay2 = _pieces()
    policy2.load_state_dict(policy.state_dict())
    disc2.load_state_dict(disc.state_dict())
    g_exact = torch.autograd.grad(_unroll_loss(venv2, policy2, fm2, disc2, replay2, steps=6)[0], list(policy2.parameters()))
    assert not all(torch.allclose(a, b, rtol=1e-2, atol=1e-4) for a, b in zip(g_wrong, g_exact))
    assert obs_values.env_steps == 6


def test_gumbel_straight_through_is_one_hot_with_the_soft_gradient():
    logits = torch.tensor([[0.3, -1.0, 2.0], [1.0, 1.0, 0.0]], requires_grad=True)
    w = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    y = gumbel_softmax_st(logits, tau=0.7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(y.detach().sum(-1), torch.ones(2)) and set(y.detach().unique().tolist()) <= {0.0, 1.0}
    (g_st,) = torch.autograd.grad((y * w).sum(), logits)
    u = torch.rand(logits.shape, generator=torch.Generator().manual_seed(5)).clamp_(1e-10, 1.0 - 1e-7)
    soft = torch.softmax((logits - torch.log(-torch.log(u))) / 0.7, dim=-1)
    (g_soft,) = torch.autograd.grad((soft * w).sum(), logits)
    assert torch.allclose(g_st, g_soft) and g_st.abs().sum() > 0


def test_tanh_squash_stays_inside_the_bounds_with_live_gradients():
    x = torch.tensor([-3.0, 0.5, 0.55, 4.0], requires_grad=True)
    low, high = torch.tensor(0.0), torch.tensor(1.0)
    y = tanh_squash(x, low, high)
    assert (y >= 0).all() and (y <= 1).all()
    (g,) = torch.autograd.grad(y.sum(), x)
    y = y.detach()
    assert float(y[1]) == pytest.approx(0.5) and abs(float(y[2]) - 0.55) < 1e-3  # near identity at the centre
    assert float(g[1]) == pytest.approx(1.0) and (g > 0).all()


@pytest.mark.parametrize("kind,delta", [("basic", False), ("advanced", False), ("advanced", True), ("basic", True)])
def test_forward_model_training_reduces_its_loss_on_a_fixed_batch(kind, delta):
    torch.manual_seed(0)
    obs = torch.randn(256, 4) * 3 + 1
    act = torch.randn(256, 2)
    nxt = obs + 0.1 * torch.tanh(obs[:, :2].repeat(1, 2) * act.repeat(1, 2))
    fm = ForwardModel(obs.mean(0).numpy(), obs.std(0).numpy(), np.zeros(2), np.ones(2), kind=kind, width=32, decoder=[32], delta=delta)
    opt = torch.optim.Adam(fm.parameters(), lr=3e-3)
    first = float(fm.loss(obs, act, nxt).detach())
    for _ in range(300):
        loss = fm.loss(obs, act, nxt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(fm.loss(obs, act, nxt).detach()) < 0.2 * first
    err = fm.multi_step_error(torch.stack([obs[:8], nxt[:8]], 1), act[:8, None])
    assert err.shape == (1,) and float(err[0]) == pytest.approx(2 * float(fm.loss(obs[:8], act[:8], nxt[:8]).detach()), rel=1e-4)


def test_a_diverging_model_stops_the_real_unroll_without_crashing():
    class NaNModel(ForwardModel):
        def predict(self, obs, act):
            return obs * float("nan")

    venv, policy, fm, disc, replay = _pieces(NaNModel)
    unroller = RealUnroller(venv, policy, fm, replay, 0.9, 1e9, torch.Generator().manual_seed(0))
    unrolled = unroller.unroll(5, store=True)
    assert unrolled.stopped_early and len(unrolled.obs) == 1 and unroller.stopped_unrolls == 1
    assert torch.isfinite(unrolled.loss(disc))
    assert unroller.env_steps == 1  # the real step it took still counts


def test_imagined_chains_that_leave_the_bound_stop_contributing():
    class Exploding(ForwardModel):
        def predict(self, obs, act):
            return obs * 10.0

    _, policy, _, disc, _ = _pieces()
    fm = Exploding(np.zeros(2), np.ones(2), np.zeros(1), np.ones(1), kind="basic", width=4, decoder=[])
    start = torch.tensor([[1.0, 1.0], [0.001, 0.001]])
    unrolled, kept = imagined_unroll(policy, fm, start, steps=4, gamma=1.0, bound=50.0, generator=torch.Generator().manual_seed(0))
    weights = torch.stack(unrolled.weight)
    # chain 0: 1 -> 10 -> 100 (out at step 2); chain 1 stays inside the bound for all 4 steps.
    assert weights[:, 0].tolist() == [1.0, 1.0, 0.0, 0.0] and weights[:, 1].tolist() == [1.0] * 4
    assert kept == pytest.approx(6 / 8)
    assert torch.isfinite(unrolled.loss(disc))


def test_replay_sequences_stay_inside_episodes():
    space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    replay = ReplayBuffer(50, space, gym.spaces.Box(-1, 1, (1,), np.float32), device="cpu", handle_timeout_termination=False)
    t_in_episode = 0
    for t in range(80):  # wraps: the oldest rows are overwritten
        done = t_in_episode == 6
        replay.add(np.array([[t]]), np.array([[t + 1]]), np.zeros((1, 1)), np.zeros(1), np.array([done]), [{}])
        t_in_episode = 0 if done else t_in_episode + 1
    obs, acts = replay_sequences(replay, 4, 30, np.random.default_rng(0))
    assert obs.shape == (len(obs), 5, 1) and acts.shape == (len(obs), 4, 1)
    assert np.all(np.diff(obs[:, :, 0], axis=1) == 1)  # consecutive steps of one episode, never across a done


def test_trust_region_step_respects_the_kl_bound_and_descends():
    torch.manual_seed(0)
    space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    policy = DiffPolicy(space, gym.spaces.Box(-1, 1, (2,), np.float32), net_arch=[16], noise_std=0.2)
    states = torch.randn(64, 3)
    target = torch.randn(64, 2)
    loss_fn = lambda: (policy.head(states) - target).pow(2).mean()  # noqa: E731
    before = float(loss_fn().detach())
    with torch.no_grad():
        old_head = policy.head(states)
    region = TrustRegionConfig(max_kl=0.01, cg_damping=0.1, cg_iters=10, backtrack_steps=10, backtrack_ratio=0.5, kl_accept=1.5)
    applied, kl = natural_gradient_step(policy, loss_fn(), states, region)
    assert applied and 0 < kl <= 0.015
    assert float(mean_kl(policy, states, old_head).detach()) == pytest.approx(kl)
    assert float(loss_fn().detach()) < before


def test_discriminator_encoded_actions_match_index_actions():
    obs_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    disc = Discriminator(obs_space, gym.spaces.Discrete(4), hidden=[8])
    obs = torch.randn(5, 3)
    idx = torch.tensor([0, 3, 1, 2, 3])
    onehot = torch.nn.functional.one_hot(idx, 4).float()
    assert torch.allclose(disc.logits(obs, idx), disc.logits(obs, onehot, encoded=True))


def test_clip_bound_clips_values_passes_gradients_and_reports_the_overshoot():
    from ail.algos.model_based.diff_policy import overshoot, straight_through_clip

    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0])
    x = torch.tensor([[1.5, 1.0], [-3.0, -1.0]], requires_grad=True)
    y = straight_through_clip(x, low, high)
    assert y.tolist() == [[1.0, 1.0], [-1.0, 0.0]]
    (g,) = torch.autograd.grad(y.sum(), x)
    assert g.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    # excess in half-widths, squared and summed: row 0: (0.5/1)^2; row 1: (2/1)^2 + (1/1)^2
    assert overshoot(x.detach(), low, high).tolist() == pytest.approx([0.25, 5.0])
