"""The config schema (ail/schema.py): every shipped config passes it, and each kind of bad value is one line."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from ail.config import CONF_DIR, group_options, register_resolvers
from ail.errors import ConfigError
from ail.schema import AlgoConfig, check_config, check_override, shipped_schema

pytestmark = pytest.mark.xdist_group("test_schema")  # its module-scoped fixture is built once


@pytest.fixture(scope="module")
def compose_job():
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        yield lambda overrides: compose("config", overrides=overrides)


def test_every_shipped_algo_env_pair_passes_the_schema(compose_job):
    for algo in group_options("algo"):
        assert issubclass(shipped_schema(algo), AlgoConfig)
        for env in group_options("env"):
            check_config(compose_job([f"algo={algo}", f"env={env}"] + (["env.id=Pendulum-v1"] if env == "gym" else [])))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["algo=sam", "algo.ddpg.critic.loss=l1"], "algo.ddpg.critic.loss=l1 is invalid; accepted: huber, mse"),
        (["algo=sam", "algo.gamma=1.0"], "algo.gamma=1.0 is invalid; accepted: 0 < gamma < 1"),
        (["algo=sam", "algo.ddpg.network.hidden=[64,0]"], "algo.ddpg.network.hidden=[64, 0] is invalid; accepted: a list of positive integers"),
        (
            ["algo=sam", "algo.discriminator.label_smoothing=[1.2,0.7]"],
            "algo.discriminator.label_smoothing=[1.2, 0.7] is invalid; accepted: [low, high] with low <= high",
        ),
        (
            ["algo=mgail", "algo.discriminator.obs_slice=[3,3]"],
            "algo.discriminator.obs_slice=[3, 3] is invalid; accepted: [start, stop] with 0 <= start < stop, or null",
        ),
        (["algo=gail", "algo.discriminator.lr=0"], "algo.discriminator.lr=0 is invalid; accepted: a positive number"),
        (["algo=gail", "algo.relabel=1"], "algo.relabel=1 is invalid; accepted: true or false"),
        (["algo=bc", "algo.updates=2.5"], "algo.updates=2.5 is invalid; accepted: a positive integer"),
        (["algo=mgail", "algo.policy.average=2"], "algo.policy.average=2 is invalid; accepted: a number in [0, 1]"),
        (["algo=dyna", "algo.policy_update=sgd"], "algo.policy_update=sgd is invalid; accepted: adam, trpo"),
        (["seed=-1"], "seed=-1 is invalid; accepted: an integer >= 0"),
        (["+algo.typo=3"], "algo.typo is not a config key; accepted keys here: "),
    ],
)
def test_a_bad_value_is_one_line_naming_it(compose_job, overrides, message):
    with pytest.raises(ConfigError) as exc:
        check_config(compose_job(overrides))
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_overrides_are_checked_against_every_selected_algorithm_that_has_the_key():
    check_override("algo.gamma", 1.0, ["mgail"])  # gamma in (0, 1] for MGAIL
    with pytest.raises(ConfigError, match=r"algo.gamma=1.0 is invalid; accepted: 0 < gamma < 1"):
        check_override("algo.gamma", 1.0, ["mgail", "sam"])
    with pytest.raises(ConfigError, match="eval.every=0 is invalid; accepted: a positive integer"):
        check_override("eval.every", 0, [])
    with pytest.raises(ConfigError, match="algo.typo is not a key of algo=sam; accepted keys there: absorbing, "):
        check_override("algo.typo", 1, ["sam"])
    with pytest.raises(ConfigError, match="train.typo is not a key of the job config; accepted keys there: checkpoint_every, "):
        check_override("train.typo", 1, [])
    check_override("algo.ppo.ent_coef", 0.01, ["gail"])  # any SB3 keyword argument
    check_override("algo.lr", 0.5, ["bc", "sam"])  # BC has it: Hydra refuses it for SAM's jobs
    check_override("env.id", "Pendulum-v1", ["bc"])  # the env group is checked where it is used
