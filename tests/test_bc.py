"""BC's loss math, and a learning check that a broken BC (actions decoupled from states) fails."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from ail import load_demos
from ail.algos.bc import bc_loss, build_policy
from ail.evaluation import evaluate
from ail.policy import LoadedPolicy, ObsNormalizer


def test_discrete_loss_is_cross_entropy():
    torch.manual_seed(0)
    policy = build_policy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(4), [8], "tanh", 1e-3)
    obs, acts = torch.randn(5, 3), torch.tensor([0, 3, 1, 1, 2])
    loss, logs = bc_loss(policy, obs, acts, ent_weight=0.0, l2_weight=0.0)
    logits = policy.action_net(policy.mlp_extractor.forward_actor(policy.extract_features(obs)))
    assert torch.isclose(loss, torch.nn.functional.cross_entropy(logits, acts), atol=1e-6)


def test_continuous_loss_is_gaussian_nll_plus_regularisers():
    torch.manual_seed(0)
    policy = build_policy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (2,)), [8], "tanh", 1e-3)
    obs, acts = torch.randn(5, 3), torch.rand(5, 2) * 2 - 1
    mean = policy.action_net(policy.mlp_extractor.forward_actor(policy.extract_features(obs)))
    std = policy.log_std.exp()
    nll = (0.5 * ((acts - mean) / std) ** 2 + policy.log_std + 0.5 * math.log(2 * math.pi)).sum(-1).mean()
    ent = (0.5 + 0.5 * math.log(2 * math.pi) + policy.log_std).sum()
    l2 = sum(p.pow(2).sum() for n, p in policy.named_parameters() if "weight" in n) / 2
    loss, logs = bc_loss(policy, obs, acts, ent_weight=0.1, l2_weight=0.01)
    assert torch.isclose(loss, nll - 0.1 * ent + 0.01 * l2, atol=1e-5)
    assert np.isclose(logs["neglogp"], nll.item(), atol=1e-5)


def _fit(obs, acts, updates=1000, seed=0):
    torch.manual_seed(seed)
    env = gym.make("CartPole-v1")
    policy = build_policy(env.observation_space, env.action_space, [64, 64], "tanh", 1e-3)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    norm = ObsNormalizer(obs.mean(0), obs.var(0))
    o, a = torch.as_tensor(norm(obs)), torch.as_tensor(acts)
    for _ in range(updates):
        idx = torch.randint(len(o), (128,), generator=g)
        loss, _ = bc_loss(policy, o[idx], a[idx], 0.0, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return LoadedPolicy(policy.eval(), norm)


@pytest.mark.slow
def test_bc_learns_and_broken_bc_does_not():
    demos = load_demos("cartpole", 2)
    good = evaluate(_fit(demos.obs, demos.actions).predict, "cartpole", 3, seed=0).mean()
    shuffled = np.random.default_rng(0).permutation(demos.actions)
    broken = evaluate(_fit(demos.obs, shuffled).predict, "cartpole", 3, seed=0).mean()
    assert good >= 450 and broken < 200, (good, broken)
