"""SAM with ``algo.generator=sac``: the pieces of SAC's math in the stacked update (ail/algos/sam/update.py).

The tanh-Gaussian's log-density against ``torch.distributions``, the soft 1-step target on a
critic whose value is known, and the temperature's first Adam step. K stacked seeds against each
seed alone and compiled against eager: tests/test_sam_update.py (its sac variants).
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from test_sam_update import ACT, B, _settings, _update
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform


def test_the_sampled_actions_log_density_is_the_tanh_gaussians():
    u, st, batch = _update(_settings("algo.generator=sac", "algo.sac.log_std_bounds=[-5,2]"), 2)
    obs_n = u.normalize(st["obs_stats"], batch["obs"])
    st["actor"]["l2.bias"] += 0.7  # a mean and log-std away from 0
    pi = u.sample(st["actor"], obs_n, batch["noise"])
    mean, log_std = u.actor(st["actor"], obs_n).split(ACT, dim=-1)
    std = log_std.clamp(-5, 2).exp()
    u_pre = mean + std * batch["noise"]
    torch.testing.assert_close(pi.action, torch.tanh(u_pre))
    # The change of variables with torch's own pieces, evaluated at u (inverting tanh(u) with atanh loses digits near +-1):
    reference = Normal(mean, std).log_prob(u_pre) - TanhTransform().log_abs_det_jacobian(u_pre, torch.tanh(u_pre))
    torch.testing.assert_close(pi.log_prob, reference.sum(-1))
    # ... and away from the tails, the distribution's log_prob at the action itself.
    inner = torch.tanh(u_pre).abs().amax(-1) < 0.9
    dist = TransformedDistribution(Normal(mean, std), [TanhTransform()])
    torch.testing.assert_close(pi.log_prob[inner], dist.log_prob(torch.tanh(u_pre)).sum(-1)[inner], rtol=1e-4, atol=1e-4)
    det = u.sample(st["actor"], obs_n)
    torch.testing.assert_close(det.action, torch.tanh(mean))
    assert torch.equal(det.log_prob, torch.zeros_like(det.log_prob))


def test_the_log_std_is_clipped_to_its_bounds():
    u, st, batch = _update(_settings("algo.generator=sac", "algo.sac.log_std_bounds=[-3,-1]"), 1)
    obs_n = u.normalize(st["obs_stats"], batch["obs"])
    st["actor"]["l2.bias"][..., ACT:] += 50.0  # log-std far above the bound
    pi = u.sample(st["actor"], obs_n, batch["noise"])
    mean = u.actor(st["actor"], obs_n)[..., :ACT]
    torch.testing.assert_close(pi.action, torch.tanh(mean + math.exp(-1) * batch["noise"]))


def _constant_critic(st: dict, values: list[float]) -> None:
    """Every head ``j`` of the online and target critics outputs ``values[j]`` whatever its input."""
    for part in ("critic", "critic_t"):
        for name, t in st[part].items():
            j, layer = int(name[1]), name.split(".", 1)[1]
            if layer.startswith("l2."):
                t.zero_()
                if layer == "l2.bias":
                    t.fill_(values[j])


@pytest.mark.parametrize("coef", ["auto", "0.3"])
def test_the_soft_target_is_reward_plus_discounted_min_q_minus_alpha_log_pi(coef):
    s = _settings(
        "algo.generator=sac", "algo.sac.nstep=1", f"algo.sac.entropy.coef={coef}", "algo.sac.entropy.init=0.5", "algo.recompute_rewards=false"
    )
    u, st, batch = _update(s, 2)
    _constant_critic(st, [2.0, -1.0])  # min_j Q'_j = -1
    batch = {**batch, "valid": batch["valid"][..., :1], "r_stored": batch["r_stored"][..., :1], "next_obs": batch["next_obs"][:, :B]}
    batch["length"] = batch["valid"].sum(-1)
    batch["next_noise"] = batch["next_noise"][:, :B]
    alpha = 0.5 if coef == "auto" else 0.3
    nxt = u.sample(st["actor"], u.normalize(st["obs_stats"], batch["next_obs"]), batch["next_noise"])
    v_next = -1.0 - alpha * nxt.log_prob
    y = batch["r_stored"][..., 0] + s.gamma * torch.where(batch["term1"], torch.zeros_like(v_next), v_next)
    logs = u.update(st, batch, actor_due=True, discriminator=False)
    torch.testing.assert_close(logs["target_mean"], y.mean(1))
    torch.testing.assert_close(logs["alpha"], torch.full((2,), alpha))


def test_a_learned_temperature_steps_against_the_entropy_gap():
    s = _settings("algo.generator=sac", "algo.sac.entropy.init=0.5", "algo.sac.entropy.target=-1.5", "algo.sac.entropy.lr=0.01")
    u, st, batch = _update(s, 2)
    logs = u.update(st, batch, actor_due=True)
    # L = -log(alpha) (log pi + target): Adam's first step is lr * sign of -(dL/dlog alpha) = lr * sign(-(entropy_gap)).
    gap = -logs["entropy"] + (-1.5)  # mean log pi + target
    expected = math.log(0.5) + 0.01 * torch.sign(gap)
    torch.testing.assert_close(st["alpha"]["log_alpha"], expected, rtol=0, atol=1e-6)
    assert u.update(st, batch, actor_due=False).keys().isdisjoint({"alpha", "entropy", "actor_loss"})


def test_the_ceiling_reference_is_sb3s_sac_with_sams_settings_for_it():
    # benchmarks/generator_ceiling.py --algo sam: SB3's SAC on the task's own reward, built from algo.sac.
    cmd = [sys.executable, "benchmarks/generator_ceiling.py", "--algo", "sam", "--env", "invertedpendulum", "--steps", "600", "--eval-every", "300"]
    small = ["--episodes", "2", "algo.sac.learning_starts=200", "algo.sac.network.hidden=[16,16]"]
    proc = subprocess.run([*cmd, *small], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("SAC (sam's sac) on InvertedPendulum-v5 with the true reward, 600 env steps")
    lines = proc.stdout.splitlines()
    assert lines[1] == "note: SB3 has no algo.grad_clip=5.0: this reference runs without them"  # the one setting SAC's defaults do not share
    assert [int(line.split()[0]) for line in lines[3:]] == [300, 600]
    bad = subprocess.run([*cmd, *small, "algo.sac.critic.lr=1e-3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "error: algo.sac.actor.lr=0.0003 and algo.sac.critic.lr=0.001 differ"
    )
