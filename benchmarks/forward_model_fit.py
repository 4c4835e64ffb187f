"""Can a forward model of a given design have the simulator's gradients? Fit it offline, then compare.

    python benchmarks/forward_model_fit.py ENV [--algo mgail] [--steps 20000] [--batch 256]
        [--data 100000] [--noise 0.3] [--seed 0] [algo.forward_model.KEY=VALUE ...]

The cheapest test of a forward-model design for MGAIL / Dyna-AIL, before any imitation run:

1. ``--data`` transitions of the shipped expert with Gaussian action noise of std ``--noise``
   (raw action units, clipped to the box), from reset seeds 100000, 100001, ...: states near
   the expert's, with varied actions (a deterministic expert shows one action per state);
2. the model that ``algo=ALGO env=ENV`` builds (its ``algo.forward_model`` with the pair file's
   settings and the overrides, normalised by this data), fitted with the learner's loss
   (:meth:`ForwardModel.sequence_loss`) for ``--steps`` Adam steps of ``--batch`` sequences;
3. ``benchmarks/forward_model_gradients.py``'s comparison on the expert's own episodes: for
   k = 1..10, the median relative error and cosine between the model's ``d s_{t+k} / d a_t`` and
   the simulator's (finite differences), and the open-loop MSE.

An in-run learner sees less data, less varied, for fewer steps: a design whose cosine stays low
here will not do better in MGAIL. A design that passes here may still fail there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).parent))
from forward_model_gradients import compare, expert_actions, print_table  # noqa: E402

from ail.algos.model_based.forward_model import build_forward_model  # noqa: E402
from ail.config import CONF_DIR, check_config, register_resolvers  # noqa: E402
from ail.envs import env_id  # noqa: E402
from ail.errors import ConfigError  # noqa: E402
from ail.schema import algo_settings  # noqa: E402


def collect(env_name: str, n: int, noise: float, horizon: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy expert transitions as sequences: ``obs (S, horizon+1, obs_dim)``, ``act (S, horizon, act_dim)``
    (every window of ``horizon`` steps inside an episode; ``n`` counts steps, not windows)."""
    env = gym.make(env_id(env_name))
    act_fn = expert_actions(env_name)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    obs_w, act_w, steps, episode = [], [], 0, 0
    while steps < n:
        obs, _ = env.reset(seed=100_000 + seed * 10_000 + episode)
        episode += 1
        ep_obs, ep_act = [obs], []
        while steps < n:
            a = np.clip(act_fn(obs) + noise * rng.standard_normal(len(low)), low, high)
            obs, _, term, trunc, _ = env.step(a)
            ep_obs.append(obs)
            ep_act.append(a)
            steps += 1
            if term or trunc:
                break
        o, a_ = np.asarray(ep_obs), np.asarray(ep_act)
        for t in range(len(a_) - horizon + 1):
            obs_w.append(o[t : t + horizon + 1])
            act_w.append(a_[t : t + horizon])
    return np.asarray(obs_w, dtype=np.float32), np.asarray(act_w, dtype=np.float32)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. algo.forward_model.members=5 (the model is algo=ALGO env=ENV's)")
    parser.add_argument("--algo", default="mgail", choices=["mgail", "dyna"])
    parser.add_argument("--steps", type=int, default=20000, help="Adam steps of the model's own training step")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--data", type=int, default=100000, help="noisy expert env steps to fit on")
    parser.add_argument("--noise", type=float, default=0.3, help="action noise std, raw units")
    parser.add_argument("--states", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=[f"algo={args.algo}", f"env={args.env}", *args.overrides])
    try:
        check_config(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    fcfg = algo_settings(cfg).forward_model
    t0 = time.time()
    obs, act = collect(args.env, args.data, args.noise, fcfg.train_horizon, args.seed)
    flat_obs, flat_act = obs[:, 0], act[:, 0]
    fm = build_forward_model(fcfg, flat_obs, flat_act, continuous=True)
    opt = torch.optim.Adam(fm.parameters(), lr=fcfg.lr)
    g = torch.Generator().manual_seed(args.seed)
    obs_t, act_t = torch.as_tensor(obs), torch.as_tensor(act)
    t1 = time.time()
    for step in range(args.steps):
        idx = torch.randint(len(obs_t), (args.batch,), generator=g)
        loss = fm.sequence_loss(obs_t[idx], act_t[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % max(1, args.steps // 5) == 0:
            print(f"[fit] step {step + 1}/{args.steps} loss {float(loss.detach()) / fcfg.members:.5f} ({time.time() - t1:.0f} s)", flush=True)
    rows, episodes = compare(fm, expert_actions(args.env), gym.make(env_id(args.env)), args.states, 10, 1e-3)
    shown = " ".join(args.overrides) or "(conf defaults)"
    print(
        f"{args.env}: algo={args.algo} {shown}; fitted {args.steps} steps x {args.batch} on {args.data} steps of the expert "
        f"with noise {args.noise}; compared on {episodes} expert episodes ({time.time() - t0:.0f} s in all)"
    )
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
