"""SAM's env steps/s and gradient updates/s next to plain SB3 DDPG, measured side by side.

    python benchmarks/sam_speed.py [--env hopper] [--steps 2000] [--rounds 4] [--hidden 64 64] [--device cpu] [OVERRIDE ...]

Both learners get the same actor/critic sizes (``--hidden``), batch size, replay ratio (one
actor-critic update per env step: SAM's default schedule) and one torch thread. DDPG is SB3's
``DDPG`` with Gaussian action noise learning from the env reward; SAM (``launch.py algo=sam``'s
default config plus ``OVERRIDE``s) also trains the discriminator, recomputes n-step rewards
with it and keeps Pop-Art statistics. After a warm-up past ``learning_starts`` the two are timed
in alternating chunks of ``--steps`` env steps, so background load hits both alike. The last
line prints SAM / DDPG: above 1.0 means SAM's whole update loop is faster than DDPG's.
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

from ail.algos.sam.learner import Worker
from ail.config import CONF_DIR, register_resolvers
from ail.demos import load_demos
from ail.envs import make_vec_env

WARMUP = 1500
LEARNING_STARTS = 1000


def build_sam(env: str, hidden: list[int], overrides: list[str]) -> Worker:
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "algo=sam",
                f"env={env}",
                f"algo.network.hidden=[{','.join(map(str, hidden))}]",
                f"algo.learning_starts={LEARNING_STARTS}",
                "train.env_steps=100000000",
                *overrides,
            ],
        )
    w = Worker(cfg, load_demos(env, 4), 0)
    while w.model.num_timesteps < WARMUP:
        w.iterate()
    return w


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
    parser.add_argument("overrides", nargs="*", help="launch.py overrides for SAM (e.g. algo.nstep=96)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sam = build_sam(args.env, args.hidden, [f"runtime.device={args.device}", *args.overrides])
    ddpg = build_ddpg(args.env, args.hidden, int(sam.cfg.algo.batch_size), args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    # SAM's runs ask torch for deterministic kernels (ail/seeding.py), a process-wide switch;
    # plain SB3 runs with torch's defaults, so DDPG's chunks do too.
    sam_deterministic = torch.are_deterministic_algorithms_enabled()
    times = {"sam": 0.0, "ddpg": 0.0}
    steps = {"sam": 0, "ddpg": 0}
    updates = {"sam": 0, "ddpg": 0}
    for _ in range(args.rounds):
        torch.use_deterministic_algorithms(sam_deterministic, warn_only=True)
        sync()
        s0, u0, t0 = sam.model.num_timesteps, sam.sb3.n_updates, time.perf_counter()
        while sam.model.num_timesteps < s0 + args.steps:
            sam.iterate()
        sync()
        times["sam"] += time.perf_counter() - t0
        steps["sam"] += sam.model.num_timesteps - s0
        updates["sam"] += sam.sb3.n_updates - u0
        torch.use_deterministic_algorithms(False)
        s0, u0, t0 = ddpg.num_timesteps, ddpg._n_updates, time.perf_counter()
        ddpg.learn(args.steps, reset_num_timesteps=False)
        sync()
        times["ddpg"] += time.perf_counter() - t0
        steps["ddpg"] += ddpg.num_timesteps - s0
        updates["ddpg"] += ddpg._n_updates - u0
    where = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "cpu, one torch thread"
    print(
        f"env={args.env} hidden={args.hidden} batch={sam.cfg.algo.batch_size} nstep={sam.cfg.algo.nstep} "
        f"compile={sam.cfg.algo.compile} device={args.device} ({where}); timed {args.rounds} x {args.steps} env steps each"
    )
    print(f"{'learner':8s} {'env steps/s':>12s} {'updates/s':>10s}")
    for name in ("ddpg", "sam"):
        print(f"{name:8s} {steps[name] / times[name]:12.1f} {updates[name] / times[name]:10.1f}")
    ratio = (updates["sam"] / times["sam"]) / (updates["ddpg"] / times["ddpg"])
    print(f"SAM / DDPG updates/s: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
