"""Which config changes a stored run accepts on relaunch (ail.run: ADDED_KEYS, naming keys)."""
from __future__ import annotations

from ail.run import _backfill, _comparable, _first_difference


def _diff(stored: dict, new: dict):
    return _first_difference(_comparable(_backfill(stored, new)), _comparable(new))


STORED = {"task": "train", "experiment": "old", "seed": 0, "env": {"name": "hopper", "expert": {"algo": "ppo"}},
          "algo": {"name": "gail", "label": "gail", "n_envs": 1, "policy": {"lr": 1e-3}}}


def _new(**algo) -> dict:
    return {**STORED, "experiment": "new", "env": {"name": "hopper", "termination": "failure", "expert": {"algo": "sac"}},
            "algo": {**STORED["algo"], "label": "gail-ppo", **algo}}


def test_a_key_added_later_matches_only_the_value_that_reproduces_the_old_code():
    assert _diff(STORED, _new(vec_env="dummy")) is None
    assert _diff(STORED, _new(vec_env="subproc")) == ("algo.vec_env", "<unset>", "subproc")


def test_nested_added_keys_and_naming_keys():
    assert _diff(STORED, _new(policy={"lr": 1e-3, "action_bound": "tanh"})) is None
    assert _diff(STORED, _new(policy={"lr": 1e-3, "action_bound": "clip"}))[0] == "algo.policy.action_bound"


def test_a_real_change_is_still_refused():
    assert _diff(STORED, _new(vec_env="dummy", n_envs=8)) == ("algo.n_envs", 1, 8)
    assert _diff(STORED, {**_new(vec_env="dummy"), "seed": 1}) == ("seed", 0, 1)


def test_the_stored_config_is_not_modified():
    stored = {**STORED, "algo": dict(STORED["algo"])}
    _backfill(stored, _new(vec_env="dummy"))
    assert "vec_env" not in stored["algo"]
