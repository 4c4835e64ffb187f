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
_SKIP = {
    "env",
    "observation_space",
    "action_space",
    "spec",
    "metadata",
    "_np_random",
    "np_random",
    "results_writer",
    "model",
    "data",
    "mujoco_renderer",
    "screen",
    "clock",
    "renderer",
    "viewer",
}


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


class StateAccess(gym.Wrapper):
    """Outermost wrapper of each env of a ``SubprocVecEnv``: its state is read and written in the
    worker process through ``env_method`` (the env objects never leave it). The state is that of
    the stack below, so it is interchangeable with an in-process env's."""

    def ail_get_state(self) -> dict[str, Any]:
        return get_env_state(self.env)

    def ail_set_state(self, state: dict[str, Any]) -> None:
        set_env_state(self.env, state)


def get_vec_env_states(venv: Any) -> list[dict[str, Any]]:
    """States of every sub-env of an SB3 ``DummyVecEnv`` or ``SubprocVecEnv`` (below any VecEnv wrappers)."""
    base = _base(venv)
    if hasattr(base, "envs"):
        return [get_env_state(e) for e in base.envs]
    return base.env_method("ail_get_state")


def set_vec_env_states(venv: Any, states: list[dict[str, Any]]) -> None:
    base = _base(venv)
    if hasattr(base, "envs"):
        for e, s in zip(base.envs, states):
            set_env_state(e, s)
    else:
        for i, s in enumerate(states):
            base.env_method("ail_set_state", s, indices=[i])


def _base(venv: Any) -> Any:
    while hasattr(venv, "venv"):
        venv = venv.venv
    return venv
