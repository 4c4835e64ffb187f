"""ail.evaluation.rollouts: returns, and whether the environment or the time limit ended each episode."""

import numpy as np

from ail import load_expert
from ail.evaluation import evaluate, rollouts


def test_a_fall_is_told_from_the_time_limit():
    # Always pushing left tips CartPole over well before its 500-step limit.
    returns, ended = rollouts(lambda _obs: 0, "cartpole", 3, seed=0)
    assert ended.dtype == bool and ended.all() and (returns < 100).all()
    # The shipped InvertedPendulum expert balances to the 1000-step limit.
    returns, ended = rollouts(load_expert("invertedpendulum").predict, "invertedpendulum", 2, seed=0)
    assert not ended.any() and (returns == 1000).all()


def test_evaluate_is_the_returns_of_the_same_episodes():
    act = load_expert("cartpole").predict
    np.testing.assert_array_equal(evaluate(act, "cartpole", 2, seed=5), rollouts(act, "cartpole", 2, seed=5)[0])
