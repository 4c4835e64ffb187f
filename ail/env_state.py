"""Snapshot and restore a running gymnasium env mid-episode, so a resumed run continues bit for bit.

Pickling a MuJoCo env rebuilds it from its constructor (gymnasium's ``EzPickle``) and loses the
simulation, so the state is taken apart explicitly:

* the whole MuJoCo ``MjData`` (pickled; restored with ``mj_copyData``). The integration state
  alone (``mj_getState``) is not enough: Humanoid/Ant observations read derived quantities
  (contact forces) that then differ in the first steps;
* for other envs, the unwrapped env's plain attributes (CartPole's ``state`` etc.);
* the env's ``np_random`` generator state;
* each wrapper's plain counters (``TimeLimit._elapsed_steps``, ``Monitor``'s episode
  statistics, the absorbing-state flags, gymnasium's order checks).
"""
from __future__ import annotations

import copy
import pickle
from typing import Any

import gymnasium as gym
import numpy as np

_PLAIN = (bool, int, float, str, type(None), np.ndarray, np.generic, list, tuple, dict)
_SKIP = {"env", "observation_space", "action_space", "spec", "metadata", "_np_random", "np_random",
         "results_writer", "model", "data", "mujoco_renderer", "screen", "clock", "renderer", "viewer"}


def _plain_attrs(obj: Any) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in vars(obj).items() if k not in _SKIP and isinstance(v, _PLAIN)}


def get_env_state(env: gym.Env) -> dict[str, Any]:
    """Everything needed to continue ``env`` (a wrapper stack) from where it is now."""
    wrappers = []
    e = env
    while isinstance(e, gym.Wrapper):
        wrappers.append(_plain_attrs(e))
        e = e.env
    u = e
    state: dict[str, Any] = {"wrappers": wrappers, "np_random": u.np_random.bit_generator.state}
    if hasattr(u, "data") and hasattr(u, "model"):
        state["mujoco"] = pickle.dumps(u.data)
    state["unwrapped"] = _plain_attrs(u)
    return state


def set_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Inverse of :func:`get_env_state` on an env built the same way."""
    e, i = env, 0
    while isinstance(e, gym.Wrapper):
        for k, v in state["wrappers"][i].items():
            setattr(e, k, copy.deepcopy(v))
        e, i = e.env, i + 1
    u = e
    u.np_random.bit_generator.state = state["np_random"]
    for k, v in state["unwrapped"].items():
        setattr(u, k, copy.deepcopy(v))
    if "mujoco" in state:
        import mujoco

        mujoco.mj_copyData(u.data, u.model, pickle.loads(state["mujoco"]))


def get_vec_env_states(venv: Any) -> list[dict[str, Any]]:
    """States of every sub-env of an SB3 ``DummyVecEnv`` (found below any VecEnv wrappers)."""
    return [get_env_state(e) for e in _dummy(venv).envs]


def set_vec_env_states(venv: Any, states: list[dict[str, Any]]) -> None:
    for e, s in zip(_dummy(venv).envs, states):
        set_env_state(e, s)


def _dummy(venv: Any) -> Any:
    while not hasattr(venv, "envs"):
        venv = venv.venv
    return venv
