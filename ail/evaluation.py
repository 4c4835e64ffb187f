"""Deterministic evaluation, the normalised score, and how an expert's record is measured.

A record (``expert.json`` of an installed expert, the once-measured record of a user's expert file or
of a Minari dataset) holds the expert's return and a uniformly random policy's, each over
``FINAL_EVAL_EPISODES`` episodes reset from seed ``FINAL_EVAL_SEED``: the two ends of the normalised score.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from ail.envs import make_env

FINAL_EVAL_EPISODES = 50
FINAL_EVAL_SEED = 100_000  # episodes the expert never saw during model selection


def evaluate(
    act: Callable[[np.ndarray], np.ndarray],
    env_name: str,
    episodes: int,
    seed: int,
) -> np.ndarray:
    """Returns of ``episodes`` episodes (shape ``(episodes,)``) of ``act(raw_obs) -> action`` on env ``env_name``.

    Episode ``i`` is reset with seed ``seed + i``, so an evaluation is reproducible and
    independent of what ran before it.
    """
    return rollouts(act, env_name, episodes, seed)[0]


def rollouts(
    act: Callable[[np.ndarray], np.ndarray],
    env_name: str,
    episodes: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`evaluate`'s episodes, with how each ended.

    :return: the returns, shape ``(episodes,)``, and whether each episode was ended by the
        environment (``terminated``: a fall, in the locomotion tasks) rather than by its time limit,
        shape ``(episodes,)``, bool.
    """
    env = make_env(env_name)
    returns = np.zeros(episodes, dtype=np.float64)
    ended = np.zeros(episodes, dtype=bool)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            returns[i] += float(reward)
            done = terminated or truncated
        ended[i] = terminated
    env.close()
    return returns, ended


def random_policy_returns(env_name: str, episodes: int, seed: int) -> np.ndarray:
    env = make_env(env_name, seed=seed)
    space = env.action_space
    return evaluate(lambda _obs: space.sample(), env_name, episodes, seed)


def random_record(env_name: str) -> dict[str, float]:
    """A random policy's part of an expert record: its return's mean and std on the record's episodes.

    :param env_name: the env's short name.
    """
    rand = random_policy_returns(env_name, FINAL_EVAL_EPISODES, seed=FINAL_EVAL_SEED)
    return {"random_return_mean": round(float(rand.mean()), 3), "random_return_std": round(float(rand.std()), 3)}


def normalized_score(ret: float, expert_return: Optional[float], random_return: Optional[float]) -> float:
    """``(R - R_random) / (R_expert - R_random)``: 0 = random policy, 1 = expert; NaN when unknown."""
    if expert_return is None or random_return is None or expert_return == random_return:
        return float("nan")
    return float((ret - random_return) / (expert_return - random_return))


def stats(returns: np.ndarray) -> dict[str, float]:
    return {
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "return_min": float(np.min(returns)),
        "return_max": float(np.max(returns)),
    }
