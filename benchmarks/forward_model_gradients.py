"""How well a trained MGAIL / Dyna-AIL forward model's gradients match the simulator's, per horizon.

    python benchmarks/forward_model_gradients.py RUN_DIR [--states 200] [--horizon 10] [--eps 1e-3] [--expert]

MGAIL's policy gradient reaches an action ``k`` steps back through the model's Jacobians taken at
the real states (the re-parameterised unroll, ``ail/algos/model_based/unroll.py``):

    d s_{t+k} / d a_t = A_{t+k-1} ... A_{t+1} B_t,   A = df/ds,  B = df/da  (autograd).

Along episodes of the run's last policy (its checkpoint, deterministic; ``--expert``: the shipped
expert's, where the learner should go) in the real MuJoCo env,
this script compares that product with the simulator's, built the same way from central finite
differences of one env step around each visited state (the full simulator state, the solver's
warm start included, restored before every perturbed step). Everything is in the model's
normalised units (states and actions divided by the expert data's stds), so each coordinate
weighs alike. For k = 1..horizon it prints the median over start steps of the relative error
``||M - T||_F / ||T||_F`` and of the cosine between ``M`` and ``T`` (flattened), next to the
open-loop prediction error the run logs (``fm_error_k``: normalised MSE, true actions, no
correction). A cosine near 1 means the model's gradient points where the simulator's does;
near 0, the policy learns from noise.

Observations must be ``qpos[1:]`` and ``qvel`` (Hopper, Walker2d, HalfCheetah, with their
default options), so that a visited state can be set from the simulator and perturbed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf

from ail.algos.model_based.diff_policy import DiffPolicy
from ail.algos.model_based.forward_model import ForwardModel
from ail.envs import env_id
from ail.experts import load_expert


def load(run_dir: Path) -> tuple[object, ForwardModel, DiffPolicy, gym.Env]:
    """The run's config, forward model and policy as of its checkpoint, and a raw env of its task."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["state"]["learner"]
    env = gym.make(env_id(cfg.env.name))
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    f = cfg.algo.forward_model
    fm = ForwardModel(
        np.zeros(obs_dim),
        np.ones(obs_dim),
        np.zeros(act_dim),
        np.ones(act_dim),
        str(f.kind),
        int(f.width),
        list(f.decoder),
        bool(f.delta),
        int(f.get("members", 1)),  # a run from before these keys had one ReLU model
        str(f.get("activation", "relu")),
    )
    fm.load_state_dict(state["fm"])  # the normalisation buffers come with it
    p = cfg.algo.policy
    policy = DiffPolicy(
        env.observation_space, env.action_space, net_arch=list(p.net_arch), noise_std=float(p.noise_std), action_bound=str(p.action_bound)
    )
    policy.load_state_dict(state["policy"])
    return cfg, fm, policy.eval(), env


class Simulator:
    """One env step from a saved MuJoCo state, differentiated by central finite differences."""

    def __init__(self, env: gym.Env, eps: float):
        self.u = env.unwrapped
        self.eps = eps
        self.nq = self.u.model.nq

    def save(self) -> tuple[np.ndarray, ...]:
        d = self.u.data
        return d.qpos.copy(), d.qvel.copy(), d.qacc_warmstart.copy()

    def step_from(self, saved: tuple[np.ndarray, ...], action: np.ndarray, dq: np.ndarray | None = None) -> np.ndarray:
        qpos, qvel, warm = saved
        q = np.concatenate([qpos, qvel])
        if dq is not None:
            q = q.copy()
            q[1:] += dq  # the observed coordinates: qpos[1:] and qvel (qpos[0], x, is not observed)
        self.u.set_state(q[: self.nq], q[self.nq :])
        self.u.data.qacc_warmstart[:] = warm
        self.u.do_simulation(action, self.u.frame_skip)
        return self.u._get_obs()

    def jacobians(self, saved: tuple[np.ndarray, ...], action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(A, B)``: d obs' / d obs ``(n, n)`` and d obs' / d a ``(n, m)`` in raw units."""
        n = len(saved[0]) - 1 + len(saved[1])
        cols_s = []
        for j in range(n):
            e = np.zeros(n)
            e[j] = self.eps
            cols_s.append((self.step_from(saved, action, e) - self.step_from(saved, action, -e)) / (2 * self.eps))
        cols_a = []
        for j in range(len(action)):
            e = np.zeros(len(action))
            e[j] = self.eps
            cols_a.append((self.step_from(saved, action + e) - self.step_from(saved, action - e)) / (2 * self.eps))
        self.u.set_state(saved[0], saved[1])
        self.u.data.qacc_warmstart[:] = saved[2]
        return np.stack(cols_s, 1), np.stack(cols_a, 1)


def model_jacobians(fm: ForwardModel, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = torch.as_tensor(obs, dtype=torch.float32)
    a = torch.as_tensor(act, dtype=torch.float32)
    A, B = torch.autograd.functional.jacobian(lambda s_, a_: fm.predict(s_[None], a_[None])[0], (s, a))
    return A.numpy().astype(np.float64), B.numpy().astype(np.float64)


Rows = list[tuple[float, float, float]]


def compare(fm: ForwardModel, act: Callable[[np.ndarray], np.ndarray], env: gym.Env, states: int, horizon: int, eps: float) -> tuple[Rows, int]:
    """Per horizon ``k = 1..horizon``: the medians over start steps of (relative error, cosine,
    open-loop MSE), along episodes of ``act(obs) -> action`` from reset seeds 200000, 200001, ...
    until ``states`` start steps are compared; returns those rows and the number of episodes."""
    sim = Simulator(env, eps)
    s_std, a_std = fm.obs_std.double().numpy(), fm.act_std.double().numpy()
    H = horizon
    rel: list[list[float]] = [[] for _ in range(H)]
    cos: list[list[float]] = [[] for _ in range(H)]
    open_loop: list[list[float]] = [[] for _ in range(H)]
    episode = 0
    while len(rel[-1]) < states:
        obs, _ = env.reset(seed=200_000 + episode)
        episode += 1
        traj = []  # (obs, action, model A, model B, true A, true B), normalised units
        while True:
            a = act(obs)
            saved = sim.save()
            tA, tB = sim.jacobians(saved, a)
            mA, mB = model_jacobians(fm, obs, a)
            norm = lambda J, cols: J / s_std[:, None] * cols[None, :]  # noqa: E731
            traj.append((obs, a, norm(mA, s_std), norm(mB, a_std), norm(tA, s_std), norm(tB, a_std)))
            obs, _, term, trunc, _ = env.step(a)
            if term or trunc or len(traj) > 400:
                traj.append((obs,))
                break
        for t in range(len(traj) - 1 - H):
            M, T = traj[t][3], traj[t][5]
            s_pred = torch.as_tensor(traj[t][0], dtype=torch.float32)[None]
            for k in range(H):
                if k:
                    M, T = traj[t + k][2] @ M, traj[t + k][4] @ T
                rel[k].append(np.linalg.norm(M - T) / max(np.linalg.norm(T), 1e-12))
                cos[k].append(float((M * T).sum() / max(np.linalg.norm(M) * np.linalg.norm(T), 1e-12)))
                with torch.no_grad():
                    s_pred = fm.predict(s_pred, torch.as_tensor(traj[t + k][1], dtype=torch.float32)[None])
                err = (s_pred[0].double().numpy() - traj[t + k + 1][0]) / s_std
                open_loop[k].append(float(np.mean(err**2)))
    return [(float(np.median(rel[k])), float(np.median(cos[k])), float(np.median(open_loop[k]))) for k in range(H)], episode


def print_table(rows: Rows) -> None:
    print(f"{'k':>3} {'rel. error of d s_t+k / d a_t':>30} {'cosine':>8} {'open-loop MSE':>14}")
    for k, (rel, cos, mse) in enumerate(rows):
        print(f"{k + 1:>3} {rel:30.3f} {cos:8.3f} {mse:14.4f}")


def expert_actions(env_name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The shipped expert's deterministic action for one raw observation, as float64."""
    expert = load_expert(env_name)
    return lambda obs: np.asarray(expert.predict(obs[None], deterministic=True)[0], dtype=np.float64).reshape(-1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--states", type=int, default=200, help="start steps compared (episodes are rolled until this many)")
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--eps", type=float, default=1e-3, help="finite-difference step, raw units")
    parser.add_argument("--expert", action="store_true", help="roll the shipped expert instead of the run's policy")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg, fm, policy, env = load(args.run_dir)

    def own(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy().astype(np.float64)

    rows, episodes = compare(fm, expert_actions(cfg.env.name) if args.expert else own, env, args.states, args.horizon, args.eps)
    whose = "the shipped expert" if args.expert else "its last policy"
    print(f"{args.run_dir}: {cfg.algo.name} on {cfg.env.name}, {args.states}+ start steps from {episodes} episodes of {whose}")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
