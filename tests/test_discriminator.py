"""The shared discriminator: rewards, gradient penalty, label smoothing, entropy, encodings, learning."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from ail.config import CONF_DIR
from ail.discriminator import Discriminator, absorbing_pairs, build_discriminator, check_reward_for_task, loss_from_logits, reward_from_logits
from ail.errors import ConfigError, TrainingError
from ail.schema import DiscriminatorConfig

BOX_OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
BOX_ACT = gym.spaces.Box(-1, 1, (2,), np.float32)


def test_reward_variants_match_their_formulas_and_signs():
    logits = torch.linspace(-8, 8, 33)
    d = torch.sigmoid(logits.double())
    minimax = reward_from_logits(logits, "minimax")
    log_d = reward_from_logits(logits, "log_d")
    logit = reward_from_logits(logits, "logit")
    assert torch.allclose(minimax.double(), -torch.log(1 - d), atol=1e-5)
    assert torch.allclose(log_d.double(), torch.log(d), atol=1e-5)
    assert torch.allclose(logit.double(), torch.log(d) - torch.log(1 - d), atol=1e-4)
    assert (minimax > 0).all() and (log_d < 0).all()
    assert torch.allclose(logit, minimax + log_d, atol=1e-5)
    # All three grow with D: the more expert-like, the larger the reward.
    for r in (minimax, log_d, logit):
        assert (r[1:] > r[:-1]).all()
    # Stable where a naive log(1 - sigmoid) would give inf.
    assert torch.isfinite(reward_from_logits(torch.tensor([60.0, -60.0]), "minimax")).all()
    with pytest.raises(ConfigError, match="accepted: minimax, log_d, logit"):
        reward_from_logits(logits, "gail")


def test_reward_bias_check():
    check_reward_for_task("minimax", "failure", absorbing=False, allow_biased=False)
    check_reward_for_task("log_d", "success", absorbing=False, allow_biased=False)
    check_reward_for_task("logit", "failure", absorbing=False, allow_biased=False)
    with pytest.raises(ConfigError, match="reward=log_d .*accepted here: minimax or logit"):
        check_reward_for_task("log_d", "failure", absorbing=False, allow_biased=False)
    with pytest.raises(ConfigError, match="reward=minimax .*accepted here: log_d or logit"):
        check_reward_for_task("minimax", "success", absorbing=False, allow_biased=False)
    check_reward_for_task("log_d", "failure", absorbing=True, allow_biased=False)
    check_reward_for_task("minimax", "success", absorbing=False, allow_biased=True)


def test_gradient_penalty_of_a_linear_discriminator_is_exact():
    # f(x) = w.x + b has gradient w everywhere, so the penalty is (||w|| - 1)^2 for any batch.
    disc = Discriminator(BOX_OBS, BOX_ACT, hidden=(), normalize_obs=False)
    with torch.no_grad():
        disc.net[0].weight.copy_(torch.tensor([[1.0, 2.0, 0.0, 2.0, 0.0]]))  # ||w|| = 3
    rng = np.random.default_rng(0)
    obs, act = rng.normal(size=(16, 3)), rng.uniform(-1, 1, (16, 2))
    loss_gp, logs = disc.loss(obs, act, obs + 1, act, grad_penalty=10.0)
    loss_plain, _ = disc.loss(obs, act, obs + 1, act, grad_penalty=0.0)
    assert logs["d_grad_penalty"] == pytest.approx(4.0, rel=1e-5)
    assert (loss_gp - loss_plain).item() == pytest.approx(40.0, rel=1e-5)


def test_gradient_penalty_is_per_sample():
    # f(x) = x1^2 / 2: gradient norm |x1| per sample. Expert and policy both at x1 = c, so every
    # interpolate has norm |c| and the penalty is (|c| - 1)^2, not a batch-pooled quantity.
    disc = Discriminator(BOX_OBS, BOX_ACT, hidden=(), normalize_obs=False)
    disc.forward = lambda x: 0.5 * x[:, 0] ** 2  # type: ignore[method-assign]
    c = np.array([0.5, 2.0, 3.0, 1.0])
    obs = np.stack([c, np.zeros(4), np.zeros(4)], axis=1)
    act = np.zeros((4, 2))
    _, logs = disc.loss(obs, act, obs, act, grad_penalty=1.0)
    assert logs["d_grad_penalty"] == pytest.approx(np.mean((np.abs(c) - 1) ** 2), rel=1e-5)


def test_label_smoothing_is_one_sided():
    disc = Discriminator(BOX_OBS, BOX_ACT, hidden=(8,), normalize_obs=False)
    rng = np.random.default_rng(1)
    e_obs, e_act, p_obs, p_act = rng.normal(size=(32, 3)), rng.uniform(-1, 1, (32, 2)), rng.normal(size=(32, 3)), rng.uniform(-1, 1, (32, 2))
    loss, _ = disc.loss(e_obs, e_act, p_obs, p_act, label_smoothing=0.9)
    f_e, f_p = disc.logits(e_obs, e_act), disc.logits(p_obs, p_act)
    f_all = torch.cat([f_e, f_p])
    expected = F.binary_cross_entropy_with_logits(f_e, torch.full_like(f_e, 0.9)) + F.binary_cross_entropy_with_logits(f_p, torch.zeros_like(f_p))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # Uniform smoothing draws expert labels in [low, high]; the policy term is untouched.
    g = torch.Generator().manual_seed(0)
    loss_u, _ = disc.loss(e_obs, e_act, p_obs, p_act, label_smoothing=(0.7, 1.2), generator=g)
    y = 0.7 + 0.5 * torch.rand(f_e.shape, generator=torch.Generator().manual_seed(0))
    expected_u = F.binary_cross_entropy_with_logits(f_e, y) + F.binary_cross_entropy_with_logits(f_p, torch.zeros_like(f_p))
    assert loss_u.item() == pytest.approx(expected_u.item(), rel=1e-5)
    # Entropy: the mean Bernoulli entropy of D over both batches.
    _, logs = disc.loss(e_obs, e_act, p_obs, p_act, entropy_weight=1.0)
    p = torch.sigmoid(f_all).detach().double()
    assert logs["d_entropy"] == pytest.approx(float(-(p * p.log() + (1 - p) * (1 - p).log()).mean()), rel=1e-4)
    # algo.discriminator.label_smoothing as the schema hands it to loss(): none, a fixed label, or [low, high].
    base = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "discriminator" / "base.yaml"))
    for value, expected in ((None, None), ([0.7, 1.2], (0.7, 1.2)), (0.9, 0.9), (1, 1.0)):
        smoothing = DiscriminatorConfig.model_validate({**base, "label_smoothing": value}).label_smoothing
        assert smoothing == expected and type(smoothing) is type(expected)


def test_discrete_actions_are_one_hot_and_onehot_needs_discrete():
    disc = Discriminator(gym.spaces.Box(-5, 5, (4,), np.float32), gym.spaces.Discrete(2), normalize_obs=False)
    x = disc.features(np.zeros((3, 4)), np.array([0, 1, 1]))
    assert x.shape == (3, 6)  # the blog's 4 + 2 inputs
    assert x[:, 4:].tolist() == [[1, 0], [0, 1], [0, 1]]
    with pytest.raises(ConfigError, match="action_encoding=onehot needs a discrete action space.*accepted here: auto or raw"):
        Discriminator(BOX_OBS, BOX_ACT, action_encoding="onehot")


def test_observation_normalisation_travels_with_the_state_dict():
    obs_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    disc = Discriminator(obs_space, BOX_ACT, clip_obs=5.0)
    rng = np.random.default_rng(0)
    real = rng.normal(10.0, 2.0, size=(5000, 3))
    disc.update_obs_stats(real)
    assert np.allclose(disc.obs_rms.mean, 10.0, atol=0.1) and np.allclose(np.sqrt(disc.obs_rms.var), 2.0, atol=0.1)
    x = disc.features(np.array([[10.0, 12.0, 8.0], [10.0, 10.0, 100.0]]), np.array([[0.5, -0.5], [0.5, -0.5]]))
    assert np.allclose(x[0, :3].numpy(), [0.0, 1.0, -1.0], atol=0.05)
    assert x[1, 2] == 5.0  # clipped
    assert x[0, 3:].tolist() == [0.5, -0.5]
    # Statistics travel with the state dict (checkpoints).
    other = Discriminator(obs_space, BOX_ACT)
    other.load_state_dict(disc.state_dict())
    assert np.allclose(other.obs_rms.mean, disc.obs_rms.mean) and torch.equal(
        other.features(real[:4], np.zeros((4, 2))), disc.features(real[:4], np.zeros((4, 2)))
    )


def test_obs_slice_narrows_what_d_judges():
    obs_space = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    disc = Discriminator(obs_space, BOX_ACT, obs_slice=(1, 3))
    assert disc.net[0].in_features == 2 + 2 and disc.obs_rms.mean.shape == (2,)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(200, 5)) * [1, 2, 3, 4, 5] + [10, 20, 30, 40, 50]
    disc.update_obs_stats(obs)
    assert np.allclose(disc.obs_rms.mean, [20, 30], atol=1.0)  # the statistics of entries 1 and 2 only
    act = rng.uniform(-1, 1, (200, 2))
    other = obs.copy()
    other[:, [0, 3, 4]] = rng.normal(size=(200, 3)) * 100  # entries D does not judge
    torch.testing.assert_close(disc.logits(obs, act), disc.logits(other, act))
    moved = obs.copy()
    moved[:, 2] += 5.0
    assert not torch.allclose(disc.logits(obs, act), disc.logits(moved, act))
    with pytest.raises(ConfigError, match=r"obs_slice=\[2, 6\] is invalid for this task's 5 observation entries.*stop <= 5"):
        Discriminator(obs_space, BOX_ACT, obs_slice=(2, 6))


@pytest.mark.parametrize("spectral", [False, True])
def test_discriminator_learns_to_separate_expert_from_policy(spectral):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    disc = Discriminator(BOX_OBS, BOX_ACT, hidden=(32, 32), spectral_norm=spectral)
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    e_obs, p_obs = rng.normal(1.0, 1.0, (512, 3)), rng.normal(-1.0, 1.0, (512, 3))
    e_act, p_act = rng.uniform(0, 1, (512, 2)), rng.uniform(-1, 0, (512, 2))
    disc.update_obs_stats(np.concatenate([e_obs, p_obs]))
    for _ in range(300):
        i = rng.integers(512, size=64)
        loss, logs = disc.loss(e_obs[i], e_act[i], p_obs[i], p_act[i], grad_penalty=1.0, entropy_weight=1e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["d_acc_expert"] > 0.9 and logs["d_acc_policy"] > 0.9
    for kind in ("minimax", "log_d", "logit"):
        assert disc.reward(e_obs, e_act, kind).mean() > disc.reward(p_obs, p_act, kind).mean()


def test_nan_discriminator_is_a_training_error():
    disc = Discriminator(BOX_OBS, BOX_ACT, hidden=(8,))
    with torch.no_grad():
        disc.net[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="NaN"):
        disc.reward(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(TrainingError, match="NaN"):
        disc.loss(np.zeros((2, 3)), np.zeros((2, 2)), np.ones((2, 3)), np.zeros((2, 2)))


def test_one_seeds_loss_and_k_weighted_seeds_loss_are_the_same_math():
    # ail.discriminator.loss_from_logits serves the shared D (B,) and SAM's stacked D (K, B) with row weights.
    g = torch.Generator().manual_seed(0)
    f_e, f_p, y_e = torch.randn(3, 16, generator=g), torch.randn(3, 16, generator=g), 0.7 + 0.5 * torch.rand(3, 16, generator=g)
    stacked, terms = loss_from_logits(f_e, f_p, y_e, 1e-3, torch.ones(3, 16), torch.ones(3, 16))
    for k in range(3):
        alone, terms_k = loss_from_logits(f_e[k], f_p[k], y_e[k], 1e-3)
        torch.testing.assert_close(stacked[k], alone)
        for n in terms_k:
            torch.testing.assert_close(terms[n][k], terms_k[n])
    # A row of weight 0 is as if it were not there.
    w = torch.ones(3, 16)
    w[:, 8:] = 0.0
    masked, _ = loss_from_logits(f_e, f_p, y_e, 1e-3, w, w)
    half, _ = loss_from_logits(f_e[:, :8], f_p[:, :8], y_e[:, :8], 1e-3, w[:, :8], w[:, :8])
    torch.testing.assert_close(masked, half)


def test_absorbing_pairs_follow_the_real_ones_weighted_by_termination():
    obs = torch.cat([torch.randn(2, 4, 3), torch.zeros(2, 4, 1)], dim=-1)  # real states: indicator 0
    act = torch.randn(2, 4, 2)
    terminal = torch.tensor([[True, False, False, True], [False, False, False, False]])
    o, a, w = absorbing_pairs(obs, act, terminal)
    assert o.shape == (2, 8, 4) and a.shape == (2, 8, 2) and w.shape == (2, 8)
    assert torch.equal(o[:, :4], obs) and torch.equal(a[:, :4], act)
    assert torch.equal(o[:, 4:, -1], torch.ones(2, 4)) and not o[:, 4:, :-1].any() and not a[:, 4:].any()
    assert torch.equal(w, torch.tensor([[1.0] * 4 + [1, 0, 0, 1], [1.0] * 4 + [0] * 4]))


def test_a_step_is_one_optimiser_step_on_the_loss():
    space, acts = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32)
    settings = DiscriminatorConfig(
        hidden=[8], activation="tanh", action_encoding="auto", spectral_norm=False, layer_norm=False, normalize_obs=False,
        clip_obs=5.0, lr=1e-2, batch_size=4, epochs=1, grad_penalty=1.0, label_smoothing=[0.8, 1.0], entropy_weight=1e-3, obs_slice=None,
    )  # fmt: skip
    torch.manual_seed(0)
    d, ref = build_discriminator(space, acts, settings), build_discriminator(space, acts, settings)
    ref.load_state_dict(d.state_dict())
    opt, opt_ref = torch.optim.Adam(d.parameters(), lr=1e-2), torch.optim.Adam(ref.parameters(), lr=1e-2)
    x = [torch.randn(4, 3), torch.rand(4, 2), torch.randn(4, 3), torch.rand(4, 2)]
    logs = d.step(opt, *x, settings, torch.Generator().manual_seed(1))
    loss, ref_logs = ref.loss(*x, grad_penalty=1.0, label_smoothing=(0.8, 1.0), entropy_weight=1e-3, generator=torch.Generator().manual_seed(1))
    opt_ref.zero_grad()
    loss.backward()
    opt_ref.step()
    assert logs == ref_logs and not d.training
    for (n, p), q in zip(d.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), n
