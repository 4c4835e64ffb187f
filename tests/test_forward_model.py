"""The forward model's ensemble and k-step training loss (ail/algos/model_based/forward_model.py) against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ail.algos.model_based.forward_model import ForwardModel


def _linear(members: int, delta: bool = False) -> ForwardModel:
    """Small MLP members on ``[s_n; a_n]`` (states normalised by std 2)."""
    torch.manual_seed(0)
    return ForwardModel(np.zeros(2), np.full(2, 2.0), np.zeros(1), np.ones(1), kind="basic", width=3, decoder=[], delta=delta, members=members)


def test_an_ensemble_predicts_and_differentiates_as_its_members_mean():
    fm = ForwardModel(np.zeros(3), np.ones(3), np.zeros(2), np.ones(2), kind="advanced", width=8, decoder=[8], members=3)
    s = torch.randn(5, 3, requires_grad=True)
    a = torch.randn(5, 2, requires_grad=True)
    single = [fm._next(m, s, a) for m in range(3)]
    torch.testing.assert_close(fm.predict(s, a), torch.stack(single).mean(0))
    grad = torch.autograd.grad(fm.predict(s, a).sum(), a)[0]
    per_member = torch.stack([torch.autograd.grad(out.sum(), a)[0] for out in single])
    torch.testing.assert_close(grad, per_member.mean(0))
    assert not torch.equal(single[0], single[1])  # independently initialised


def test_the_one_step_loss_is_half_the_mean_squared_normalised_error():
    fm = _linear(1)
    obs, act, nxt = torch.randn(6, 2), torch.randn(6, 1), torch.randn(6, 2)
    pred = fm.predict_normalized(obs / 2.0, act)
    assert float(fm.loss(obs, act, nxt).detach()) == pytest.approx(float(0.5 * (pred - nxt / 2.0).pow(2).mean().detach()), rel=1e-6)


@pytest.mark.parametrize("delta", [False, True])
def test_the_k_step_loss_unrolls_each_member_open_loop_and_sums_the_members(delta):
    fm = _linear(2, delta=delta)
    torch.manual_seed(1)
    obs, act = torch.randn(4, 4, 2), torch.randn(4, 3, 1)  # 4 sequences of H = 3 steps
    expected = 0.0
    for m in range(2):
        s = obs[:, 0] / 2.0
        errors = []
        for k in range(3):
            with torch.no_grad():
                out = fm.members[m].net(torch.cat([s, act[:, k]], 1))
            s = s + out if delta else out
            errors.append(float((s - obs[:, k + 1] / 2.0).pow(2).mean()))
        expected += 0.5 * np.mean(errors)
    assert float(fm.sequence_loss(obs, act).detach()) == pytest.approx(expected, rel=1e-5)


def test_k_step_training_fits_the_open_loop_error_better_than_one_step_training():
    # A system whose one-step map is easy to fit almost right and whose small errors compound.
    torch.manual_seed(0)
    A = torch.tensor([[1.0, 0.1], [-0.1, 1.0]]) * 1.02
    obs = [torch.randn(512, 2)]
    act = torch.randn(512, 8, 1) * 0.3
    for k in range(8):
        obs.append(obs[-1] @ A.T + torch.cat([act[:, k], torch.zeros(512, 1)], 1) + 0.05 * torch.tanh(3 * obs[-1]))
    seq = torch.stack(obs, 1)
    errors = {}
    for horizon in (1, 8):
        torch.manual_seed(2)
        fm = ForwardModel(np.zeros(2), np.ones(2), np.zeros(1), np.ones(1), kind="basic", width=32, decoder=[32], delta=True)
        opt = torch.optim.Adam(fm.parameters(), lr=3e-3)
        for _ in range(300):
            loss = fm.sequence_loss(seq[:, : horizon + 1], act[:, :horizon])
            opt.zero_grad()
            loss.backward()
            opt.step()
        errors[horizon] = float(fm.multi_step_error(seq, act)[-1])
    assert errors[8] < 0.75 * errors[1], errors  # measured: 0.52 of it


def test_a_checkpoint_of_a_single_model_from_before_ensembles_loads_into_member_0():
    fm = ForwardModel(np.zeros(3), np.ones(3), np.zeros(2), np.ones(2), kind="advanced", width=8, decoder=[8])
    old = {k.replace("members.0.", ""): v.clone() + 1.0 for k, v in fm.state_dict().items()}
    assert "gru.weight_ih" in old and not any(k.startswith("members") for k in old)
    fm.load_state_dict(old)
    torch.testing.assert_close(fm.members[0].gru.weight_ih, old["gru.weight_ih"])
