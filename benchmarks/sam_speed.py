"""SAM's env steps/s and gradient updates/s next to plain SB3 DDPG, measured side by side.

    python benchmarks/sam_speed.py [--env hopper] [--steps 2000] [--rounds 4] [--hidden 64 64] [--ks 1] [--device cpu] [OVERRIDE ...]

Both learners get the same actor/critic sizes (``--hidden``), batch size, replay ratio (one
actor-critic update per env step: SAM's default schedule) and one torch thread. DDPG is SB3's
``DDPG`` with Gaussian action noise learning from the env reward; SAM (``launch.py algo=sam``'s
default config plus ``OVERRIDE``s) also trains the discriminator, recomputes n-step rewards
with it and keeps Pop-Art statistics. After a warm-up past ``learning_starts`` the two are timed
in alternating chunks of ``--steps`` env steps, so background load hits both alike. The last
line prints SAM / DDPG: above 1.0 means SAM's whole update loop is faster than DDPG's. ``--ks``:
SAM with K seeds in one process (``train.seeds_per_process=K``), each timed in the alternation:
its seed-updates/s (updates/s times K) against DDPG's one seed.
``--device cuda`` puts both learners' networks on the GPU (SAM: ``runtime.device=cuda``; DDPG:
SB3's ``device``); the envs step on the CPU either way.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from stable_baselines3 import DDPG
from stable_baselines3.common.noise import NormalActionNoise

from ail.algos.sam.learner import SAMLearner
from ail.config import CONF_DIR, register_resolvers
from ail.demos import load_demos
from ail.envs import make_vec_env

WARMUP = 1500
LEARNING_STARTS = 1000


def build_sam(env: str, hidden: list[int], k: int, overrides: list[str]) -> SAMLearner:
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "algo=sam",
                f"env={env}",
                f"algo.ddpg.network.hidden=[{','.join(map(str, hidden))}]",
                f"algo.ddpg.learning_starts={LEARNING_STARTS}",
                "train.env_steps=100000000",
                f"train.seeds_per_process={k}",
                *overrides,
            ],
        )
    sam = SAMLearner(cfg, load_demos(env, 4), list(range(k)))
    while sam.num_timesteps < WARMUP:
        sam.iterate()
    return sam


def build_ddpg(env: str, hidden: list[int], batch_size: int, device: str = "cpu") -> DDPG:
    venv = make_vec_env(env, n_envs=1, seed=0)
    act_dim = venv.action_space.shape[0]
    model = DDPG(
        "MlpPolicy",
        venv,
        learning_starts=LEARNING_STARTS,
        batch_size=batch_size,
        train_freq=1,
        gradient_steps=1,
        action_noise=NormalActionNoise(np.zeros(act_dim), 0.1 * np.ones(act_dim)),
        policy_kwargs={"net_arch": hidden},
        seed=0,
        device=device,
    )
    model.learn(WARMUP)
    return model


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--steps", type=int, default=2000, help="env steps per timed chunk")
    parser.add_argument("--rounds", type=int, default=4, help="alternating chunks per learner")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N, for both learners")
    parser.add_argument("--ks", type=int, nargs="+", default=[1], help="seeds per SAM process, one learner each")
    parser.add_argument("overrides", nargs="*", help="launch.py overrides for SAM (e.g. algo.ddpg.nstep=96)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sams = {k: build_sam(args.env, args.hidden, k, [f"runtime.device={args.device}", *args.overrides]) for k in args.ks}
    sam = sams[args.ks[0]]
    ddpg = build_ddpg(args.env, args.hidden, sam.algo.batch_size, args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    names = ["ddpg", *(f"sam K={k}" for k in args.ks)]
    times, steps, updates = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0), dict.fromkeys(names, 0)
    for _ in range(args.rounds):
        for k, learner in sams.items():
            name = f"sam K={k}"
            sync()
            s0, u0, t0 = learner.num_timesteps, learner.n_updates, time.perf_counter()
            while learner.num_timesteps < s0 + args.steps:
                learner.iterate()
            sync()
            times[name] += time.perf_counter() - t0
            steps[name] += (learner.num_timesteps - s0) * k
            updates[name] += (learner.n_updates - u0) * k
        s0, u0, t0 = ddpg.num_timesteps, ddpg._n_updates, time.perf_counter()
        ddpg.learn(args.steps, reset_num_timesteps=False)
        sync()
        times["ddpg"] += time.perf_counter() - t0
        steps["ddpg"] += ddpg.num_timesteps - s0
        updates["ddpg"] += ddpg._n_updates - u0
    where = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "cpu, one torch thread"
    print(
        f"env={args.env} hidden={args.hidden} batch={sam.algo.batch_size} nstep={sam.algo.ac.nstep} "
        f"compile={sam.algo.compile} device={args.device} ({where}); timed {args.rounds} x {args.steps} env steps each"
    )
    print(f"{'learner':10s} {'env steps/s':>12s} {'updates/s':>10s}   (SAM: summed over its K seeds)")
    for name in names:
        print(f"{name:10s} {steps[name] / times[name]:12.1f} {updates[name] / times[name]:10.1f}")
    ddpg_rate = updates["ddpg"] / times["ddpg"]
    for name in names[1:]:
        print(f"{name} / DDPG updates/s: {(updates[name] / times[name]) / ddpg_rate:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
