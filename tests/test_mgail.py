"""MGAIL and Dyna-AIL end to end: the real launch.py, bad input, planning without the env,
determinism, exact resume after preemption, and short learning tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_preemption_resumes_exactly, launch, read_metrics, without_wall_time
from hydra import compose, initialize_config_dir

from ail.config import CONF_DIR, register_resolvers
from ail.demos import load_demos

TINY_MGAIL = [
    "algo=mgail",
    "env=cartpole",
    "train.env_steps=2500",
    "eval.every=800",
    "algo.warmup_steps=700",
    "algo.prep_iters=20",
    "algo.block_iters=10",
    "eval.episodes=2",
    "eval.final_episodes=2",
    "runtime.progress=false",
]
TINY_DYNA = [
    "algo=dyna",
    "env=hopper",
    "train.env_steps=1200",
    "eval.every=400",
    "algo.warmup_steps=350",
    "algo.learn_iters=2",
    "algo.fm_iters=3",
    "algo.plan_iters=3",
    "algo.plan_steps=5",
    "algo.plan_batch=8",
    "eval.episodes=1",
    "eval.final_episodes=1",
    "runtime.progress=false",
]


def run_dir(runs: Path, label: str, env: str, exp: str = "default") -> Path:
    return runs / exp / f"{label}-{env}-d4" / "seed0"


def test_mgail_runs_end_to_end_on_a_discrete_task(runs):
    proc = launch(TINY_MGAIL, runs)
    assert proc.returncode == 0, proc.stderr
    d = run_dir(runs, "mgail", "cartpole")
    assert {"config.yaml", "meta.json", "metrics.csv", "summary.json", "checkpoints", "policy"} <= {p.name for p in d.iterdir()}
    rows = read_metrics(d)
    assert int(rows[-1]["env_steps"]) >= 2500
    assert {"fm_error_1", "fm_error_10", "fm_loss", "d_loss", "policy_loss", "unrolls_stopped"} <= set(rows[-1])
    summary = json.loads((d / "summary.json").read_text())
    assert summary["updates"] > 0 and summary["env_steps"] == int(rows[-1]["env_steps"])
    from ail import load_policy

    policy = load_policy(d)
    assert policy.predict(load_demos("cartpole", 1).obs[:3]).shape == (3,)


@pytest.mark.parametrize("update,model", [("adam", []), ("trpo", ["algo.forward_model.members=2", "algo.forward_model.train_horizon=3"])])
def test_dyna_runs_end_to_end_on_a_continuous_task(runs, update, model):
    proc = launch(TINY_DYNA + [f"algo.policy_update={update}", *model], runs)
    assert proc.returncode == 0, proc.stderr
    d = run_dir(runs, "dyna-tp5", "hopper")
    rows = read_metrics(d)
    assert {"plan_loss", "plan_kept", "fm_error_1"} <= set(rows[-1])
    assert np.isfinite(float(rows[-1]["fm_loss"]))
    if update == "trpo":
        assert 0 < float(rows[-1]["policy_kl"]) <= 0.015
    assert json.loads((d / "summary.json").read_text())["policy_update"] == update


@pytest.mark.parametrize(
    "base,overrides,expected",
    [
        (TINY_MGAIL, ["algo.unroll_steps=0"], "algo.unroll_steps=0 is invalid; accepted: a positive integer"),
        (TINY_MGAIL, ["algo.unroll_steps=501"], "algo.unroll_steps=501 is longer than this task's episodes (500 steps); accepted: 1..500"),
        (TINY_MGAIL, ["algo.forward_model.kind=linear"], "algo.forward_model.kind=linear is invalid; accepted: basic, advanced"),
        (TINY_MGAIL, ["algo.block_iters=0"], "algo.block_iters=0 is invalid"),
        (TINY_MGAIL, ["algo.prep_iters=-1"], "algo.prep_iters=-1 is invalid"),
        (TINY_MGAIL, ["algo.forward_model.max_error=0"], "algo.forward_model.max_error=0 is invalid"),
        (TINY_MGAIL, ["algo.collect_start=reset"], "algo.collect_start=reset is invalid; accepted: live, expert"),
        (TINY_MGAIL, ["algo.collect_start=expert"], "algo.collect_start=expert needs simulator states in the demonstrations"),
        (TINY_MGAIL, ["algo.forward_model.expert_fraction=1.5"], "algo.forward_model.expert_fraction=1.5 is invalid; accepted: a number in [0, 1]"),
        (TINY_MGAIL, ["algo.forward_model.members=0"], "algo.forward_model.members=0 is invalid"),
        (
            TINY_MGAIL,
            ["algo.forward_model.train_horizon=3", "algo.forward_model.expert_fraction=0.5"],
            "algo.forward_model.train_horizon=3 with algo.forward_model.expert_fraction=0.5: the demonstrations hold single transitions",
        ),
        (TINY_DYNA, ["algo.plan_steps=-5"], "algo.plan_steps=-5 is invalid; accepted: a positive integer"),
        (TINY_DYNA, ["algo.plan_steps=1001"], "algo.plan_steps=1001 is longer than this task's episodes (1000 steps)"),
        (TINY_DYNA, ["algo.policy_update=sgd"], "algo.policy_update=sgd is invalid; accepted: adam, trpo"),
        (TINY_DYNA, ["algo.gamma=0"], "algo.gamma=0 is invalid"),
    ],
)
def test_bad_input_is_one_line_before_any_run_dir(runs, base, overrides, expected):
    proc = launch(base + overrides, runs)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr
    assert not runs.exists() or not any(runs.rglob("config.yaml"))


def test_planning_never_steps_the_real_env():
    from ail.algos.model_based.dyna import Dyna

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=TINY_DYNA[:2])
    learner = Dyna(cfg, load_demos("hopper", 4), [0])
    learner.unroller.collect(20)
    steps_before = learner.env_steps

    def refuse(*_args, **_kw):
        raise AssertionError("the planning phase called the real environment")

    learner.venv.step = refuse
    learner.venv.step_async = refuse
    before = [p.detach().clone() for p in learner.policy.parameters()]
    logs = learner.planning_update(steps=10, batch=16)
    assert learner.env_steps == steps_before and logs["plan_kept"] > 0
    assert any(not (p == q).all() for p, q in zip(learner.policy.parameters(), before))  # it did update the policy


@pytest.mark.parametrize("fraction,n_expert", [(0.0, 0), (0.5, 35), (1.0, 70)])
def test_the_forward_model_trains_on_the_demonstrations_share_of_its_batch(fraction, n_expert):
    from ail.algos.model_based.dyna import Dyna

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=TINY_DYNA[:2] + [f"algo.forward_model.expert_fraction={fraction}"])
    learner = Dyna(cfg, load_demos("hopper", 4), [0])
    learner.unroller.collect(20)
    seen, asked = {}, []
    loss, replay_batch = learner.fm.loss, learner._replay_batch

    def spy_loss(obs, act, nxt):
        seen.update(obs=obs, act=act, nxt=nxt)
        return loss(obs, act, nxt)

    def spy_replay(n):
        asked.append(n)
        return replay_batch(n)

    learner.fm.loss, learner._replay_batch = spy_loss, spy_replay
    learner.fm_step()
    assert len(seen["obs"]) == int(cfg.algo.batch_size) == 70
    assert asked == ([70 - n_expert] if n_expert < 70 else [])
    # The last n_expert rows are transitions of the demonstrations: each with its own action and next state.
    for obs, act, nxt in zip(seen["obs"][70 - n_expert :], seen["act"][70 - n_expert :], seen["nxt"][70 - n_expert :]):
        j = int((learner.expert_obs == obs).all(1).nonzero()[0, 0])
        assert torch.equal(learner.expert_act[j], act) and torch.equal(learner.expert_next_obs[j], nxt)


def test_same_seed_gives_the_same_curve(runs):
    for exp in ("a", "b"):
        assert launch(TINY_MGAIL + [f"experiment={exp}"], runs).returncode == 0
    a = without_wall_time(read_metrics(run_dir(runs, "mgail", "cartpole", "a")))
    assert a == without_wall_time(read_metrics(run_dir(runs, "mgail", "cartpole", "b")))


@pytest.mark.slow
@pytest.mark.parametrize("base,label,env", [(TINY_MGAIL, "mgail", "cartpole"), (TINY_DYNA, "dyna-tp5", "hopper")])
def test_preempted_runs_resume_to_the_uninterrupted_curve(runs, base, label, env):
    args = [a for a in base if not a.startswith("train.env_steps")] + ["train.env_steps=8000"]
    assert_preemption_resumes_exactly(args, runs, lambda exp: run_dir(runs, label, env, exp))


@pytest.mark.slow
@pytest.mark.parametrize("algo,steps", [("mgail", 40000), ("dyna", 40000)])
def test_both_imitate_the_cartpole_expert_within_a_short_budget(runs, algo, steps):
    # Seed 0 first scores >= 0.9 at 10k (MGAIL) and 32k (Dyna-AIL) env steps; with a D that does
    # not learn (algo.discriminator.lr=1e-12) both end at -0.03 and never reach 0.9 (measured).
    proc = launch(
        [
            f"algo={algo}",
            "env=cartpole",
            f"train.env_steps={steps}",
            "eval.every=5000",
            "eval.episodes=5",
            "eval.final_episodes=5",
            "runtime.progress=false",
        ],
        runs,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    label = "mgail" if algo == "mgail" else "dyna-tp10"
    summary = json.loads((run_dir(runs, label, "cartpole") / "summary.json").read_text())
    assert "env_steps_to_0.9" in summary, read_metrics(run_dir(runs, label, "cartpole"))


def test_a_diverging_forward_model_stops_unrolls_but_not_the_run(runs):
    # Every unroll exceeds a tiny error bound after its first step: logged, counted, never fatal.
    proc = launch(TINY_MGAIL + ["algo.forward_model.max_error=1e-9"], runs)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run_dir(runs, "mgail", "cartpole") / "summary.json").read_text())
    assert summary["unrolls_stopped"] > 0 and summary["env_steps"] >= 2500
    assert float(read_metrics(run_dir(runs, "mgail", "cartpole"))[-1]["unrolls_stopped"]) > 0


def test_the_averaged_policy_follows_the_trained_one_at_its_rate():
    from ail.algos.model_based.mgail import MGAIL

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=TINY_MGAIL[:2] + ["algo.policy.average=0.25"])
    learner = MGAIL(cfg, load_demos("cartpole", 4), [0])
    learner.unroller.collect(20)
    before = [p.detach().clone() for p in learner.policy.parameters()]
    learner.real_policy_update(5)
    for avg, old, new in zip(learner.policy_avg.parameters(), before, learner.policy.parameters()):
        assert torch.allclose(avg, old + 0.25 * (new - old), atol=1e-7)
    assert learner.acting_policy().policy is learner.policy_avg


def test_expert_starts_put_the_simulator_in_the_demonstrated_state():
    from ail.algos.model_based.unroll import reset_to_states
    from ail.envs import make_vec_env

    demos = load_demos("hopper", 4)
    venv = make_vec_env("hopper", n_envs=3, seed=0)
    obs = reset_to_states(venv, demos.qpos, demos.qvel, np.random.default_rng(7))
    same = np.random.default_rng(7)  # the draws reset_to_states makes: a state index, then a reset seed, per env
    picked = [int(same.integers(len(demos.qpos))) + 0 * int(same.integers(2**31 - 1)) for _ in range(3)]
    np.testing.assert_allclose(obs, demos.obs[picked], atol=1e-6)  # the observations the expert saw there
    # The expert's own actions from there lead to the demonstrated next states.
    nxt, *_ = venv.step(demos.actions[picked])
    np.testing.assert_allclose(nxt, demos.next_obs[picked], atol=1e-5)


@pytest.mark.slow
def test_mgail_collects_from_expert_states_and_resumes_exactly(runs):
    args = [
        "algo=mgail",
        "env=hopper",
        "train.env_steps=5000",
        "eval.every=1600",
        "algo.warmup_steps=700",
        "algo.prep_iters=10",
        "algo.block_iters=5",
        "algo.collect_every=3",
        "algo.collect_start=expert",
        "eval.episodes=1",
        "eval.final_episodes=1",
        "runtime.progress=false",
    ]
    assert_preemption_resumes_exactly(args, runs, lambda exp: run_dir(runs, "mgail", "hopper", exp))
