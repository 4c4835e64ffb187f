"""SAM's stacked update (ail/algos/sam/update.py) alone, next to SB3's update of the same generator, in one run.

    python benchmarks/sam_update.py [--env hopper] [--generator ddpg|td3|sac] [--ks 1 2 4 8] [--seconds 10] [--eager]
                                    [--device cuda] [--process-steps 100000]

``--generator`` (default ddpg, the paper's SAM) picks SAM's actor-critic (``algo.generator``) and
the SB3 algorithm it is timed against: DDPG, TD3 or SAC (where "DDPG" is written below, read that one).

One torch thread. For each K: SAM updates/s and seed-updates/s of the compiled update (and the
uncompiled one with ``--eager``), on a batch of random data with the task's shapes and
``conf/algo/sam.yaml``'s settings (batch 256, n = 10, 64-64 networks, D with gradient penalty).
Next to it, SB3 ``DDPG.train`` updates/s with the same networks and batch on a filled replay
buffer (its whole update: sampling, critic, actor, Polyak). Last, the FLOPs of one K = 1 SAM
update and of one DDPG update (``torch.utils.flop_counter``) against this core's measured rate on
SAM's matmul shapes: the arithmetic limit, and the fraction of it each K (and DDPG) reaches. SAM's
update does several times DDPG's arithmetic (a discriminator step with gradient penalty, and D's
rewards over every n-step window), so it matches DDPG's updates/s only where it uses the core
that many times better. Only the update is timed here; benchmarks/sam_speed.py times whole
training loops.

Last, whole processes one after the other on this core (``--process-steps N``, 0 skips them):
``launch.py algo=sam env=ENV train.env_steps=N`` as a user runs it (compilation, evaluations and
the final 50 episodes included) and an SB3 DDPG process learning ``N`` env steps with the same
networks, batch, ``learning_starts`` and one update per env step (no evaluations): each one's wall
time and peak resident memory (the child's ``VmHWM``).

``--device cuda``: the same on a GPU, compiled as the learner compiles it there (one CUDA graph per
call), next to SB3 DDPG on the GPU; the arithmetic limit, a CPU core's, is then not computed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from stable_baselines3 import DDPG, SAC, TD3
from stable_baselines3.common.noise import NormalActionNoise
from torch.utils.flop_counter import FlopCounterMode

from ail.algos.sam.compile import Compiled
from ail.algos.sam.config import SAMConfig
from ail.algos.sam.stacked import to_device
from ail.algos.sam.update import SAMUpdate
from ail.config import CONF_DIR, register_resolvers
from ail.envs import make_vec_env
from ail.schema import algo_settings

REPO = Path(__file__).resolve().parent.parent


def batch(u: SAMUpdate, k: int, b: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Random inputs of the update's shapes (the speed does not depend on their values)."""
    obs, act, n = u.actor.sizes[0], u.act_dim, u.algo.ac.nstep
    d_obs = u.disc.sizes[0] - act
    valid = torch.ones(k, b, n, dtype=torch.bool)

    def r(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g) * 2 - 1

    return {
        "obs": r(k, b, obs),
        "act": r(k, b, act),
        "d_stats_obs": r(k, 2 * b, obs),
        "e_obs": r(k, b, d_obs),
        "e_act": r(k, b, act),
        "p_obs": r(k, b, d_obs),
        "p_act": r(k, b, act),
        "y_e": 0.7 + 0.5 * torch.rand(k, b, generator=g),
        "eps": torch.rand(k, b, 1, generator=g),
        "w_e": torch.ones(k, b),
        "w_p": torch.ones(k, b),
        "win_obs": r(k, b * n, d_obs),
        "win_act": r(k, b * n, act),
        "r_stored": torch.rand(k, b, n, generator=g),
        "next_obs": r(k, 2 * b if n > 1 else b, obs),
        "target_noise": 0.1 * r(k, 2 * b if n > 1 else b, act),
        "next_noise": torch.randn(k, 2 * b if n > 1 else b, act, generator=g),
        "noise": torch.randn(k, b, act, generator=g),
        "term1": torch.zeros(k, b, dtype=torch.bool),
        "valid": valid,
        "length": valid.sum(-1),
        "terminal": torch.zeros(k, b, dtype=torch.bool),
    }


def sync() -> None:
    """Wait for queued GPU work, so that a timing window ends when its calls have run."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def rate(fn, seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after two untimed calls)."""
    fn()
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    sync()
    return n / (time.perf_counter() - t0)


def matmul_rate(shapes: list[tuple[int, int, int]], seconds: float) -> float:
    """FLOP/s of ``torch.baddbmm`` over these (rows, in, out) shapes, each weighted by its FLOPs."""
    flops, secs = 0.0, 0.0
    for m, k, n in shapes:
        a, w, bias = torch.randn(1, m, k), torch.randn(1, n, k), torch.randn(1, 1, n)
        calls = rate(lambda: torch.baddbmm(bias, a, w.transpose(1, 2)), seconds / len(shapes))
        flops += 2 * m * k * n
        secs += 1 / calls
    return flops / secs


def process(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one child process run to its end.

    The peak is the child's ``VmHWM`` in ``/proc``, read until it exits: its ``ru_maxrss`` would not
    do, since Linux carries the parent's peak over into a child at fork and exec (this process has
    compiled and run every K by then, so both children would report its peak)."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child cannot block on a full pipe
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
        peak_kb = 0
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak_kb = max(peak_kb, int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]))
            except (OSError, StopIteration, ValueError):
                pass  # exiting (or no /proc): the last reading stands
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.read().decode()[-3000:]}")
    return seconds, peak_kb / 1024


def settings(cfg: DictConfig) -> SAMConfig:
    """SAM's validated settings of a composed config."""
    algo = algo_settings(cfg)
    assert isinstance(algo, SAMConfig)
    return algo


SB3 = {"ddpg": DDPG, "td3": TD3, "sac": SAC}


def sb3_process(cfg: DictConfig, steps: int) -> None:
    """``--sb3-process``: SB3's DDPG, TD3 or SAC learning ``steps`` env steps with SAM's networks, batch and ``learning_starts``."""
    a = settings(cfg)
    venv = make_vec_env(cfg.env.name, n_envs=1, seed=0)
    act = venv.action_space.shape[0]
    noise = {} if a.stochastic else {"action_noise": NormalActionNoise(np.zeros(act), 0.1 * np.ones(act))}
    SB3[a.generator](
        "MlpPolicy",
        venv,
        learning_starts=a.ac.learning_starts,
        batch_size=a.batch_size,
        train_freq=1,
        gradient_steps=1,
        policy_kwargs={"net_arch": a.ac.network.hidden},
        seed=0,
        device="cpu",
        **noise,
    ).learn(steps)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--generator", default="ddpg", choices=list(SB3), help="SAM's algo.generator, timed against SB3's algorithm of that name")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=10.0, help="timing window per measurement")
    parser.add_argument("--eager", action="store_true", help="also time the uncompiled update")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--process-steps", type=int, default=100_000, help="env steps of the whole-process rows (0: skip them)")
    parser.add_argument("--sb3-process", type=int, default=0, help=argparse.SUPPRESS)  # the SB3 child of those rows
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    dev = torch.device(args.device)
    torch.set_num_threads(1)
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=["algo=sam", f"env={args.env}", f"algo.generator={args.generator}"])
    if args.sb3_process:
        sb3_process(cfg, args.sb3_process)
        return 0
    a = settings(cfg)
    venv = make_vec_env(cfg.env.name, n_envs=1, seed=0)
    space = venv.action_space
    obs_dim = int(venv.observation_space.shape[0])
    u = SAMUpdate.build(a, obs_dim, torch.as_tensor(space.low), torch.as_tensor(space.high))
    b = a.batch_size
    where = "cpu, one torch thread" if dev.type == "cpu" else torch.cuda.get_device_name()
    gen = a.generator
    print(f"env={args.env} generator={gen} obs={obs_dim} act={space.shape[0]} hidden={a.ac.network.hidden} batch={b} nstep={a.ac.nstep} ({where})")

    base = SB3[gen]("MlpPolicy", venv, learning_starts=0, batch_size=b, policy_kwargs={"net_arch": a.ac.network.hidden}, seed=0, device=dev)
    base.learn(2 * b)  # a few rows in the buffer to sample from
    sb3_rate = 100 * rate(lambda: base.train(gradient_steps=100, batch_size=b), args.seconds)
    with FlopCounterMode(display=False) as counter:
        base.train(gradient_steps=1, batch_size=b)
    sb3_flops = counter.get_total_flops()
    print(f"{'sb3 ' + gen:<16} {sb3_rate:9.1f} updates/s; one update: {sb3_flops / 1e6:.1f} MFLOP")

    g = torch.Generator().manual_seed(0)
    st1, b1 = u.init_state([g]), batch(u, 1, b, g)
    with FlopCounterMode(display=False) as counter:
        u.update(st1, b1, True)
    flops = counter.get_total_flops()
    if dev.type == "cpu":
        hidden, d_hidden = a.ac.network.hidden[0], a.discriminator.hidden[0]
        shapes = [(b, hidden, hidden), (b * a.ac.nstep, d_hidden, d_hidden), (2 * b, hidden, hidden), (b, u.disc.sizes[0], d_hidden)]
        limit = matmul_rate(shapes, args.seconds) / flops
        sb3_share = sb3_rate * sb3_flops / (flops * limit)
        print(
            f"one K=1 update: {flops / 1e6:.1f} MFLOP ({flops / sb3_flops:.1f}x SB3 {gen}'s); matmul rate on its shapes "
            f"{flops * limit / 1e9:.1f} GFLOP/s: limit {limit:.0f} updates/s (SB3 {gen} reaches {sb3_share:.0%} of that rate)"
        )
        last = "of limit"
    else:
        print(f"one K=1 update: {flops / 1e6:.1f} MFLOP")
        last = "GFLOP/s"
    u.to(dev)

    print(f"{'learner':<16} {'K':>3} {'updates/s':>10} {'seed-upd/s':>11} {'x SB3':>7} {last:>9}")
    for compiled in [True] + ([False] if args.eager else []):
        for k in args.ks:
            st, bk = to_device(u.init_state([g] * k), dev), to_device(batch(u, k, b, g), dev)
            fn = Compiled(u.update, "benchmark", True, cuda_graphs=dev.type == "cuda") if compiled else u.update
            t0 = time.perf_counter()
            fn(st, bk, True)
            sync()
            first = time.perf_counter() - t0
            per = rate(lambda: fn(st, bk, True), args.seconds)
            name = "sam compiled" if compiled else "sam eager"
            share = f"{k * per / limit:9.0%}" if dev.type == "cpu" else f"{k * per * flops / 1e9:9.1f}"
            print(f"{name:<16} {k:>3} {per:10.1f} {k * per:11.1f} {k * per / sb3_rate:7.2f} {share}   (first call {first:.0f} s)")
    if args.process_steps and dev.type == "cpu":
        n = args.process_steps
        print(f"whole processes, {n} env steps each, one after the other")
        with tempfile.TemporaryDirectory() as runs:
            sam_cmd = [
                sys.executable,
                "launch.py",
                "algo=sam",
                f"env={args.env}",
                f"algo.generator={gen}",
                f"train.env_steps={n}",
                f"paths.runs={runs}",
                "runtime.progress=false",
            ]
            sam_s, sam_mb = process(sam_cmd)
        sb3_s, sb3_mb = process([sys.executable, __file__, "--env", args.env, "--generator", gen, "--sb3-process", str(n)])
        print(f"{'sb3 ' + gen:<16} {sb3_s:8.1f} s  peak {sb3_mb:6.0f} MB")
        print(f"{'launch.py sam':<16} {sam_s:8.1f} s  peak {sam_mb:6.0f} MB   {sam_s / sb3_s:.2f}x SB3 {gen}'s time ({' '.join(sam_cmd[1:5])})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
