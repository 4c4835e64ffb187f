"""SAM's stacked update (ail/algos/sam/update.py, ail/algos/sam/stacked.py), piece by piece.

Each stacked piece is checked against what it replaces or reuses: an MLP slice against
``nn.Sequential``, Adam against ``torch.optim.Adam``, per-seed clipping against
``clip_grad_norm_``, the discriminator loss against :meth:`ail.discriminator.Discriminator.loss`,
the running moments against SB3's ``RunningMeanStd``; then the whole update: K stacked seeds
against each seed alone, and compiled against uncompiled.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import launch
from hydra import compose, initialize_config_dir
from stable_baselines3.common.running_mean_std import RunningMeanStd
from test_sam import TINY
from torch import nn

import ail.discriminator as disc_module
from ail.activations import LeakyReLU02
from ail.algos.sam.compile import Compiled
from ail.algos.sam.config import SAMConfig
from ail.algos.sam.nets import mlp, sequential_state
from ail.algos.sam.stacked import MLP, Adam, clip_per_seed
from ail.algos.sam.update import D_LOGS, LOGS, SAC_LOGS, SAMUpdate, fold_moments
from ail.config import CONF_DIR, register_resolvers
from ail.discriminator import Discriminator
from ail.schema import algo_settings

OBS, ACT, B, N = 5, 2, 16, 4
SPEC = MLP((OBS, 8, 8, ACT), "leaky_relu", True)


def _slice_into(seq: nn.Sequential, p: dict[str, torch.Tensor], k: int, layer_norm: bool) -> None:
    seq.load_state_dict(sequential_state(p, k, layer_norm))


def test_a_seeds_slice_of_a_stacked_mlp_is_the_sequential_mlp_sb3_saves():
    p = SPEC.init([torch.Generator().manual_seed(k) for k in range(3)], head_init=3e-3)
    x = torch.randn(3, 7, OBS)
    out = SPEC(p, x)
    for k in range(3):
        seq = mlp(OBS, [8, 8], ACT, LeakyReLU02, True, 3e-3)
        _slice_into(seq, p, k, True)
        torch.testing.assert_close(out[k], seq(x[k]), rtol=1e-5, atol=1e-6)


def test_stacked_adam_is_torch_adam_for_each_seed():
    g = torch.Generator().manual_seed(1)
    p = SPEC.init([g, g])
    torch_params = [{n: nn.Parameter(t[k].clone()) for n, t in p.items()} for k in range(2)]
    torch_opts = [torch.optim.Adam(list(tp.values()), lr=1e-2) for tp in torch_params]
    adam, state = Adam(1e-2), Adam.init(p)
    for _ in range(5):
        grads = {n: torch.randn(t.shape, generator=g) for n, t in p.items()}
        adam.step(p, grads, state)
        for k in range(2):
            for n, tp in torch_params[k].items():
                tp.grad = grads[n][k].clone()
            torch_opts[k].step()
    for k in range(2):
        for n, tp in torch_params[k].items():
            torch.testing.assert_close(p[n][k], tp.detach(), rtol=1e-5, atol=1e-7)


def test_gradients_are_clipped_per_seed_as_clip_grad_norm_does():
    g = torch.Generator().manual_seed(2)
    grads = {"a": torch.randn(3, 4, 5, generator=g), "b": torch.randn(3, 1, 5, generator=g)}
    grads["a"][1] *= 100.0  # seed 1 over the limit, the others under it
    clipped = clip_per_seed(grads, 5.0)
    for k in range(3):
        ps = [nn.Parameter(torch.zeros(4, 5)), nn.Parameter(torch.zeros(1, 5))]
        ps[0].grad, ps[1].grad = grads["a"][k].clone(), grads["b"][k].clone()
        torch.nn.utils.clip_grad_norm_(ps, 5.0)
        torch.testing.assert_close(clipped["a"][k], ps[0].grad)
        torch.testing.assert_close(clipped["b"][k], ps[1].grad)
    assert clip_per_seed(grads, None) is grads


def test_running_moments_match_sb3_running_mean_std_per_seed():
    g = torch.Generator().manual_seed(3)
    stats = {
        "mean": torch.zeros(2, OBS, dtype=torch.float64),
        "var": torch.ones(2, OBS, dtype=torch.float64),
        "count": torch.full((2,), 1e-4, dtype=torch.float64),
    }
    rms = [RunningMeanStd(shape=(OBS,)) for _ in range(2)]
    for _ in range(3):
        x = torch.randn(2, 32, OBS, generator=g) * 3 + 1
        fold_moments(stats, x)
        for k in range(2):
            rms[k].update(x[k].double().numpy())
    for k in range(2):
        np.testing.assert_allclose(stats["mean"][k].numpy(), rms[k].mean, rtol=1e-10)
        np.testing.assert_allclose(stats["var"][k].numpy(), rms[k].var, rtol=1e-8)
        assert float(stats["count"][k]) == pytest.approx(rms[k].count)


# conf/algo/sam.yaml at these tests' sizes (8-8 networks, n = N), D's inputs unnormalised, and
# the learning rates and D's entropy weight of the comparisons below.
SMALL = [
    f"algo.ddpg.nstep={N}",
    "algo.ddpg.network.hidden=[8,8]",
    f"algo.sac.nstep={N}",
    "algo.sac.network.hidden=[8,8]",
    "algo.sac.actor.lr=1e-3",
    "algo.discriminator.hidden=[8,8]",
    "algo.discriminator.normalize_obs=false",
    "algo.discriminator.entropy_weight=1e-3",
    "algo.discriminator.lr=1e-3",
    "algo.ddpg.actor.lr=1e-3",
]


def _settings(*overrides: str) -> SAMConfig:
    """SAM's validated settings: :data:`SMALL`, then ``overrides`` (``algo.<key>=<value>``, as on the command line)."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=["algo=sam", *SMALL, *overrides])
    algo = algo_settings(cfg)
    assert isinstance(algo, SAMConfig)
    return algo


def test_the_discriminator_loss_is_the_shared_discriminators_for_each_seed(monkeypatch):
    u = _update(_settings(), 2)[0]
    g = torch.Generator().manual_seed(4)
    dp = u.disc.init([g, g])
    x_e, x_p = torch.randn(2, B, OBS + ACT, generator=g), torch.randn(2, B, OBS + ACT, generator=g)
    y_e, eps = 0.7 + 0.5 * torch.rand(2, B, generator=g), torch.rand(2, B, 1, generator=g)
    ones = torch.ones(2, B)
    total, logs = u.d_loss(dp, None, x_e, x_p, y_e, eps, ones, ones)
    space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
    for k in range(2):
        d = Discriminator(
            space, gym.spaces.Box(-1, 1, (ACT,), np.float32), hidden=(8, 8), activation="leaky_relu", layer_norm=True, normalize_obs=False
        )
        _slice_into(d.net, dp, k, True)
        # The stacked loss takes its random draws as inputs: hand the shared loss seed k's.
        monkeypatch.setattr(disc_module, "sample_loss_noise", lambda *args, k=k: (y_e[k], eps[k]))
        _, ref = d.loss(x_e[k, :, :OBS], x_e[k, :, OBS:], x_p[k, :, :OBS], x_p[k, :, OBS:], 10.0, (0.7, 1.2), 1e-3)
        torch.testing.assert_close(torch.stack([logs[n][k] for n in D_LOGS]), torch.tensor([ref[n] for n in D_LOGS]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(total, logs["d_loss"].sum())


def _update(s: SAMConfig, k: int, seed: int = 0) -> tuple[SAMUpdate, dict, dict]:
    """The update for ``OBS`` observations and ``ACT`` actions in [-2, 2], K = ``k`` seeds' state and a batch."""
    u = SAMUpdate.build(s, OBS, -2 * torch.ones(ACT), 2 * torch.ones(ACT))
    g = torch.Generator().manual_seed(seed)
    st = u.init_state([g] * k)
    st["obs_stats"] = {"mean": torch.randn(k, 1, OBS, generator=g) * 0.1, "std": 1 + torch.rand(k, 1, OBS, generator=g)}
    d_obs = OBS + (1 if s.absorbing else 0)
    valid = torch.ones(k, B, N, dtype=torch.bool)
    valid[:, : B // 2, N // 2 :] = False  # half the windows end early
    batch = {
        "obs": torch.randn(k, B, OBS, generator=g),
        "act": torch.rand(k, B, ACT, generator=g) * 2 - 1,
        "d_stats_obs": torch.randn(k, 2 * B, OBS, generator=g),
        "e_obs": torch.randn(k, B, d_obs, generator=g),
        "e_act": torch.rand(k, B, ACT, generator=g) * 4 - 2,
        "p_obs": torch.randn(k, B, d_obs, generator=g),
        "p_act": torch.rand(k, B, ACT, generator=g) * 2 - 1,
        "y_e": 0.7 + 0.5 * torch.rand(k, B, generator=g),
        "eps": torch.rand(k, B, 1, generator=g),
        "w_e": torch.ones(k, B),
        "w_p": torch.ones(k, B),
        "win_obs": torch.randn(k, B * N, d_obs, generator=g),
        "win_act": torch.rand(k, B * N, ACT, generator=g) * 2 - 1,
        "r_stored": torch.rand(k, B, N, generator=g),
        "next_obs": torch.randn(k, 2 * B, OBS, generator=g),
        "target_noise": torch.randn(k, 2 * B, ACT, generator=g).clamp(-0.5, 0.5) * 0.2,
        "next_noise": torch.randn(k, 2 * B, ACT, generator=g),
        "noise": torch.randn(k, B, ACT, generator=g),
        "term1": torch.rand(k, B, generator=g) < 0.2,
        "valid": valid,
        "length": valid.sum(-1),
        "terminal": torch.rand(k, B, generator=g) < 0.2,
    }
    return u, st, batch


def _seed(tree: dict, k: int) -> dict:
    return {n: (_seed(v, k) if isinstance(v, dict) else (v.clone() if n == Adam.SHARED else v[k : k + 1].clone())) for n, v in tree.items()}


VARIANTS = {
    "default": [],
    "td3-mse-stored-rewards-no-popart": [
        "algo.ddpg.critic.n_critics=2",
        "algo.ddpg.critic.target_noise=0.2",
        "algo.ddpg.critic.loss=mse",
        "algo.recompute_rewards=false",
        "algo.ddpg.critic.popart=false",
        "algo.ddpg.actor.q_scale=0.5",
    ],
    "normalised-d-inputs-reward-gradient": [
        "algo.discriminator.normalize_obs=true",
        "algo.ddpg.actor.d_scale=0.3",
        "algo.grad_clip=null",
        "algo.ddpg.one_step_loss=false",
    ],
    "absorbing-spectral-norm-preact-penalty": ["algo.absorbing=true", "algo.discriminator.spectral_norm=true", "algo.ddpg.actor.preact_penalty=0.1"],
    "absorbing-reward-gradient-obs-slice": [
        "algo.absorbing=true",
        "algo.ddpg.actor.d_scale=0.3",
        "algo.discriminator.normalize_obs=true",
        "algo.discriminator.obs_slice=[1,4]",
    ],
    "td3": ["algo.generator=td3", f"algo.td3.nstep={N}", "algo.td3.network.hidden=[8,8]"],
    "sac": ["algo.generator=sac"],
    "sac-fixed-alpha-popart-absorbing-logit-reward-gradient": [
        "algo.generator=sac",
        "algo.reward=logit",
        "algo.sac.entropy.coef=0.2",
        "algo.sac.critic.popart=true",
        "algo.sac.one_step_loss=true",
        "algo.absorbing=true",
        "algo.sac.actor.d_scale=0.3",
        "algo.sac.actor.preact_penalty=0.1",
    ],
}


def _assert_logs_close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-5, msg=n)


@pytest.mark.parametrize("variant", VARIANTS)
def test_k_stacked_seeds_update_as_each_seed_alone(variant):
    u, st, batch = _update(_settings(*VARIANTS[variant]), 3)
    spectral = u.algo.discriminator.spectral_norm
    alone = [(_seed(st, k), _seed(batch, k)) for k in range(3)]
    for step in range(3):
        logs = u.update(st, batch, actor_due=step != 1)
        for k, (st_k, b_k) in enumerate(alone):
            _assert_logs_close({n: t[k : k + 1] for n, t in logs.items()}, u.update(st_k, b_k, actor_due=step != 1))
    assert all(torch.isfinite(t).all() for t in logs.values())
    assert set(logs) == set(LOGS) if u.stochastic else set(LOGS) - set(SAC_LOGS)
    for k, (st_k, _) in enumerate(alone):
        for part in (
            "actor",
            "critic",
            "disc",
            "critic_t",
            "popart",
            "opt_critic",
            *(["disc_sn"] if spectral else []),
            *(["alpha"] if u.learned_alpha else []),
        ):
            for n, t in st_k[part].items():
                if n != Adam.SHARED:
                    torch.testing.assert_close(st[part][n][k : k + 1], t, rtol=1e-4, atol=1e-5, msg=f"{part}.{n}")


def test_the_pre_activation_penalty_adds_its_mean_square_and_pulls_saturated_outputs_back():
    u, st, batch = _update(_settings(), 2)
    # A policy driven deep into tanh's tails: the critic's gradient barely reaches its last layer.
    st["actor"]["l2.bias"] = st["actor"]["l2.bias"] + 5.0
    obs_n = u.normalize(st["obs_stats"], batch["obs"])
    args = (st["actor"], st["critic"], obs_n, st["popart"], None, None, batch["obs"], None, None)
    off, (off_k, _) = u.actor_loss(*args)
    u_pen = SAMUpdate(_settings("algo.ddpg.actor.preact_penalty=0.5"), u.actor, u.critic, u.disc, -2 * torch.ones(ACT), 2 * torch.ones(ACT))
    on, (on_k, _) = u_pen.actor_loss(*args)
    pre = u.actor(st["actor"], obs_n)
    assert pre.abs().min() > 3  # saturated: tanh' < 0.01
    torch.testing.assert_close(on_k, off_k + 0.5 * pre.pow(2).mean((1, 2)))
    bias = st["actor"]["l2.bias"].requires_grad_()
    g_off = torch.autograd.grad(u.actor_loss(*args)[0], bias)[0]
    g_on = torch.autograd.grad(u_pen.actor_loss(*args)[0], bias)[0]
    assert g_on.norm() > 100 * g_off.norm()  # the penalty's gradient does not vanish with tanh's


def test_absorbing_pairs_enter_the_discriminator_batch_as_masked_rows():
    u, st, batch = _update(_settings("algo.absorbing=true"), 2)
    # Rows 0..B-1 are regular pairs; with w = 1 on only the first half, the loss equals the loss on that half alone.
    g = torch.Generator().manual_seed(5)
    dp = u.disc.init([g, g])
    x_e, x_p = torch.randn(2, B, OBS + 1 + ACT, generator=g), torch.randn(2, B, OBS + 1 + ACT, generator=g)
    y_e, eps = torch.ones(2, B), torch.rand(2, B // 2, 1, generator=g)
    w = torch.zeros(2, B)
    w[:, : B // 2] = 1.0
    masked, _ = u.d_loss(dp, None, x_e, x_p, y_e, eps, w, w)
    half, _ = u.d_loss(dp, None, x_e[:, : B // 2], x_p[:, : B // 2], y_e[:, : B // 2], eps, w[:, : B // 2], w[:, : B // 2])
    torch.testing.assert_close(masked, half)
    assert all(torch.isfinite(t).all() for t in u.update(st, batch, True).values())


def test_the_stacked_discriminator_judges_the_same_obs_slice_as_the_shared_one():
    u, st, batch = _update(_settings("algo.discriminator.normalize_obs=true", "algo.discriminator.obs_slice=[1,4]"), 1)
    u.update(st, batch, actor_due=True)  # D's statistics fold in the judged entries of d_stats_obs
    judged = batch["d_stats_obs"][0, :, 1:4].double()
    torch.testing.assert_close(st["d_stats"]["mean"][0], judged.mean(0), rtol=1e-3, atol=1e-3)
    d = Discriminator(gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32), gym.spaces.Box(-2, 2, (ACT,), np.float32), obs_slice=(1, 4), clip_obs=5.0)
    d.load_state_dict(
        {**d.state_dict(), "obs_mean": st["d_stats"]["mean"][0], "obs_var": st["d_stats"]["var"][0], "obs_count": st["d_stats"]["count"][0]}
    )
    obs, act = batch["e_obs"][0], batch["e_act"][0]
    torch.testing.assert_close(u.features(st["d_stats"], obs[None], act[None])[0], d.features(obs, act))


@pytest.mark.slow
@pytest.mark.parametrize("generator", ["ddpg", "sac"])
def test_the_compiled_update_is_the_uncompiled_one(generator):
    u, st, batch = _update(_settings(f"algo.generator={generator}"), 2)
    st_c, batch_c = _clone(st), _clone(batch)
    compiled = torch.compile(u.update, fullgraph=True, dynamic=False)
    for _ in range(3):
        _assert_logs_close(compiled(st_c, batch_c, True), u.update(st, batch, True))
    for part in ("critic", "actor", *(["alpha"] if u.learned_alpha else [])):
        for n, t in st[part].items():
            torch.testing.assert_close(st_c[part][n], t, rtol=1e-4, atol=1e-5)


def _clone(tree: dict) -> dict:
    return {n: (_clone(v) if isinstance(v, dict) else v.clone()) for n, v in tree.items()}


def test_a_step_that_cannot_compile_falls_back_to_the_same_function(capsys):
    def needs_numpy(x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(x.numpy().tolist()) * 2  # .tolist() breaks a fullgraph trace

    # On the CPU the C++ wrapper is tried first, then the Python one; every failure says what is tried next.
    step = Compiled(needs_numpy, "test", enabled=True)
    assert step.options == {"cpp_wrapper": True, "memory_planning": True}
    assert torch.equal(step(torch.ones(3)), torch.full((3,), 2.0))
    assert step.compiled is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith("[sam] torch.compile(cpp_wrapper=True) of the test step failed")
    assert err[0].endswith("trying torch.compile with its Python wrapper")
    assert err[1].startswith("[sam] torch.compile of the test step failed") and err[1].endswith("running it uncompiled")


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


@pytest.mark.slow
def test_a_machine_without_a_compiler_trains_uncompiled_with_one_warning(runs, tmp_path):
    # An empty inductor cache and no working C++ compiler: the step falls back at once (the Python
    # wrapper's kernels would need the compiler too), says so once, and the run finishes.
    env = {"CXX": str(tmp_path / "no-such-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    proc = launch(TINY + ["algo.compile=true"], runs, env=env)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("[sam] torch.compile")]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith("[sam] torch.compile(cpp_wrapper=True) of the SAM update step failed"), proc.stderr
    assert "InvalidCxxCompiler" in warnings[0] and warnings[0].endswith("running it uncompiled"), proc.stderr
    assert (runs / "default" / "sam-invertedpendulum-d4" / "seed0" / "summary.json").is_file()


def test_spectral_norm_matches_torch_parametrization_and_keeps_each_kernels_norm_near_one():
    spec = MLP((OBS, 8, 1), "tanh", False, spectral_norm=True)
    gens = [torch.Generator().manual_seed(k) for k in range(2)]
    p, sn = spec.init(gens), spec.init_sn(gens)
    spec.power_iteration(p, sn, steps=50)
    normed = spec.spectral(p, sn)
    for k in range(2):
        for i in range(spec.n_linear):
            w = normed[f"l{i}.weight"][k]
            assert float(torch.linalg.matrix_norm(w, ord=2)) == pytest.approx(1.0, rel=1e-3)
    # torch's parametrization, given seed 0's kernel and vectors, divides by the same sigma.
    layer = nn.Linear(OBS, 8)
    layer.weight.data.copy_(p["l0.weight"][0])
    torch_sn = nn.utils.parametrizations.spectral_norm(layer)
    torch_sn.parametrizations.weight[0]._u.copy_(sn["u0"][0])
    torch_sn.parametrizations.weight[0]._v.copy_(sn["v0"][0])
    torch_sn.eval()  # no further power iteration: the same vectors
    torch.testing.assert_close(torch_sn.weight, normed["l0.weight"][0], rtol=1e-5, atol=1e-6)
