"""The Python API (ail.train, ail.evaluate): the command line's config, run directory, resume and
errors, from a script."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_BC, launch, read_metrics, without_wall_time

import ail
from ail.errors import ConfigError

OVERRIDES = [a for a in TINY_BC if not a.startswith("env=")]


def test_train_is_launch_py_and_its_run_loads_and_evaluates(runs, capsys):
    path = ail.train("bc", "cartpole", demos=2, seed=1, overrides=OVERRIDES, runs=runs)
    assert path == runs / "default" / "bc-cartpole-d2" / "seed1"
    cli = launch(TINY_BC + ["demos=2", "seed=1", "experiment=cli"], runs)
    assert cli.returncode == 0, cli.stderr
    assert without_wall_time(read_metrics(path)) == without_wall_time(read_metrics(runs / "cli" / "bc-cartpole-d2" / "seed1"))

    assert ail.train("bc", "cartpole", demos=2, seed=1, overrides=OVERRIDES, runs=runs) == path
    assert "is already complete; nothing to do" in capsys.readouterr().out

    policy = ail.load_policy(path)
    by_dir = ail.evaluate(path, "cartpole", episodes=3, seed=7)
    by_policy = ail.evaluate(policy, "cartpole", episodes=3, seed=7)
    by_function = ail.evaluate(lambda obs: policy.predict(obs), "cartpole", episodes=3, seed=7)
    assert by_dir.returns.shape == (3,)
    np.testing.assert_array_equal(by_dir.returns, by_policy.returns)
    np.testing.assert_array_equal(by_dir.returns, by_function.returns)
    expert = ail.load_expert("cartpole").meta
    want = (by_dir.return_mean - expert["random_return_mean"]) / (expert["return_mean"] - expert["random_return_mean"])
    assert by_dir.normalized_score == pytest.approx(want)
    # launch.py task=eval with the same seed runs the same episodes.
    ev = launch(["task=eval", "env=cartpole", f"policy_dir={path}", "eval.final_episodes=3", "seed=7"], runs)
    assert ev.returncode == 0, ev.stderr
    assert f"return {by_dir.return_mean:.1f} ± {by_dir.return_std:.1f} over 3 episodes" in ev.stdout


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"algo": "bcx"}, "unknown algo 'bcx'; accepted: bc, dyna, gail, mgail, sam"),
        ({"env": "nowhere"}, "unknown env 'nowhere'; accepted:"),
        ({"overrides": ["algo.eval_every=0"]}, "algo.eval_every=0 is invalid; accepted: a positive integer"),
        ({"demos": 500}, "demos=500"),
        ({"overrides": ["algo=bc,gail"]}, "Ambiguous value for argument 'algo=bc,gail'"),
        ({"overrides": ["task=demos"]}, "task=demos is not ail.train's; accepted: task=train"),
    ],
)
def test_bad_input_raises_the_command_lines_error_before_any_run_dir(runs, kwargs, expected):
    args = {"algo": "bc", "env": "cartpole", "overrides": OVERRIDES, **kwargs}
    with pytest.raises(ConfigError, match=None) as err:
        ail.train(args.pop("algo"), args.pop("env"), runs=runs, **args)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not runs.exists() or not any(runs.rglob("*"))


def test_evaluate_refuses_what_it_cannot_run(tmp_path):
    with pytest.raises(ConfigError, match="no saved policy in"):
        ail.evaluate(tmp_path, "cartpole")
    with pytest.raises(ConfigError, match="episodes=0 is invalid"):
        ail.evaluate(lambda obs: 0, "cartpole", episodes=0)
    with pytest.raises(ConfigError, match="unknown env 'nowhere'"):
        ail.evaluate(lambda obs: 0, "nowhere")
    with pytest.raises(ConfigError, match="is not usable"):
        ail.evaluate(42, "cartpole")
