"""Which config changes a stored run accepts on relaunch (ail.run: keys that never change what a run computes)."""

from __future__ import annotations

from ail.algos.sam.learner import SAMLearner
from ail.run import _comparable, _first_difference


def _diff(stored: dict, new: dict, learner=None):
    return _first_difference(_comparable(stored, *([learner] if learner else [])), _comparable(new, *([learner] if learner else [])))


STORED = {
    "task": "train",
    "experiment": "old",
    "seed": 0,
    "env": {"name": "hopper", "expert": {"algo": "ppo"}},
    "algo": {"name": "gail", "label": "gail", "settings": "ail.algos.gail.GAILConfig", "n_envs": 1, "compile": True, "policy": {"lr": 1e-3}},
    "train": {"env_steps": 10, "seeds_per_process": 1},
}


def test_naming_and_execution_keys_may_change():
    new = {
        **STORED,
        "experiment": "new",
        "env": {"name": "hopper", "termination": "failure", "expert": {"algo": "sac"}},
        "algo": {**STORED["algo"], "label": "gail-ppo", "compile": False},
        "train": {"env_steps": 10, "seeds_per_process": 4},
    }
    assert _diff(STORED, new) is None
    before_settings_key = {**STORED, "algo": {k: v for k, v in STORED["algo"].items() if k != "settings"}}
    assert _diff(before_settings_key, STORED) is None  # algo.settings names code, not what is computed


def test_a_real_change_or_a_new_key_is_refused():
    assert _diff(STORED, {**STORED, "algo": {**STORED["algo"], "n_envs": 8}}) == ("algo.n_envs", 1, 8)
    assert _diff(STORED, {**STORED, "seed": 1}) == ("seed", 0, 1)
    assert _diff(STORED, {**STORED, "algo": {**STORED["algo"], "vec_env": "dummy"}}) == ("algo.vec_env", "<unset>", "dummy")


def test_a_run_from_before_the_expert_file_and_demo_source_keys_resumes_when_they_keep_their_defaults():
    old = {**STORED, "demo_set": {"trajectories": 50, "seed": 0}}
    new = {
        **old,
        "env": {"name": "hopper", "expert": {"algo": "ppo", "path": None}},
        "demo_set": {"trajectories": 50, "seed": 0, "source": "expert", "export": None, "export_id": None},
    }
    assert _diff(old, new) is None
    other_expert = {**new, "env": {"name": "hopper", "expert": {"algo": "ppo", "path": "zoo/model.zip"}}}
    assert _diff(old, other_expert) == ("env.expert_path", None, "zoo/model.zip")
    minari = {**new, "demo_set": {**new["demo_set"], "source": "minari:d4rl/hopper/expert-v0"}}
    assert _diff(old, minari) == ("demo_set.source", "expert", "minari:d4rl/hopper/expert-v0")


def test_a_run_from_before_the_discriminators_obs_slice_resumes_when_d_judges_everything():
    old = {**STORED, "algo": {"name": "gail", "label": "gail-ppo", "discriminator": {"lr": 3e-4}}}
    new = {**old, "algo": {**old["algo"], "discriminator": {"lr": 3e-4, "obs_slice": None}}}
    assert _diff(old, new) is None
    narrowed = {**old, "algo": {**old["algo"], "discriminator": {"lr": 3e-4, "obs_slice": [0, 27]}}}
    assert _diff(old, narrowed) == ("algo.discriminator.obs_slice", None, [0, 27])


def test_a_sam_run_from_before_the_pre_activation_penalty_resumes_when_it_stays_off():
    old = {**STORED, "algo": {"name": "sam", "label": "sam", "actor": {"lr": 1e-4, "d_scale": 0.0}}}
    new = {**old, "algo": {**old["algo"], "actor": {**old["algo"]["actor"], "preact_penalty": 0.0}}}
    assert _diff(old, new, SAMLearner) is None  # the learner says how its older configs read today
    on = {**old, "algo": {**old["algo"], "actor": {**old["algo"]["actor"], "preact_penalty": 0.01}}}
    assert _diff(old, on, SAMLearner) == ("algo.ddpg.actor.preact_penalty", 0.0, 0.01)


def test_a_sam_run_from_before_the_expert_fraction_resumes_when_it_stays_zero():
    old = {**STORED, "algo": {"name": "sam", "label": "sam-sac", "generator": "sac", "sac": {"lr": 3e-4}}}
    assert _diff(old, {**old, "algo": {**old["algo"], "expert_fraction": 0.0}}, SAMLearner) is None
    mixed = {**old, "algo": {**old["algo"], "expert_fraction": 0.25}}
    assert _diff(old, mixed, SAMLearner) == ("algo.expert_fraction", 0.0, 0.25)


def test_a_model_based_run_from_before_ensembles_and_k_step_training_resumes_with_one_model_and_one_step():
    from ail.algos.model_based.mgail import MGAIL

    old = {**STORED, "algo": {"name": "mgail", "label": "mgail", "forward_model": {"kind": "advanced", "delta": False}}}
    new = {**old, "algo": {**old["algo"], "forward_model": {**old["algo"]["forward_model"], "members": 1, "train_horizon": 1, "activation": "relu"}}}
    assert _diff(old, new, MGAIL) is None
    ensemble = {**old, "algo": {**old["algo"], "forward_model": {**new["algo"]["forward_model"], "members": 5}}}
    assert _diff(old, ensemble, MGAIL) == ("algo.forward_model.members", 1, 5)
