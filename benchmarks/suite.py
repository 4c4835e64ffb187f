"""The speed benchmark suite: each comparison runs as a pair of processes side by side, ratios printed.

    python benchmarks/suite.py [--env hopper] [--steps 3000] [--gail-steps 40960] [--out docs/notes/performance]

Comparisons (one process per learner, the two of a pair started together, one torch thread each,
so background load hits both alike; only the ratios are meant to travel between machines):

- SAM vs. plain SB3 DDPG and vs. plain SB3 TD3: same hidden sizes and batch, one actor-critic
  update per env step; SAM also trains its discriminator, relabels n-step rewards and keeps
  Pop-Art statistics. Timed after a warm-up past ``learning_starts`` (which also absorbs
  torch.compile's compilation). ``sam`` is the default compiled update, ``sam_eager`` the same
  learner with ``algo.compile=false``.
- GAIL-PPO vs. plain SB3 PPO: the same PPO settings (conf/algo/gail.yaml + the env's pair file).
- Replay memory: bytes SB3's and SAM's replay buffers allocate for 1M humanoid transitions, and the
  peak memory of filling SAM's.

Each worker reports env steps/s, gradient updates/s and its peak resident memory (ru_maxrss).
Writes ``OUT.json`` and ``OUT.md`` (the machine, the commands, the table) when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WARMUP = 1500
LEARNING_STARTS = 1000


# ----- workers (run in their own process) --------------------------------------------------------
def _compose(overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    from ail.config import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("config", overrides=overrides)


def _sam_cfg(env: str, extra: tuple[str, ...] = ()) -> Any:
    return _compose(["algo=sam", f"env={env}", f"algo.ddpg.learning_starts={LEARNING_STARTS}", "train.env_steps=100000000", *extra])


def worker_sam(env: str, steps: int, compiled: bool = True) -> dict[str, Any]:
    """SAM as configured; ``compiled=False``: the eager update (``algo.compile=false``).
    The warm-up past learning_starts also absorbs torch.compile's one-off compilation."""
    from ail.algos.sam.learner import SAMLearner
    from ail.demos import load_demos

    cfg = _sam_cfg(env, (f"algo.compile={str(compiled).lower()}",))
    sam = SAMLearner(cfg, load_demos(env, 4), [0])
    while sam.num_timesteps < WARMUP:
        sam.iterate()
    s0, u0, t0 = sam.num_timesteps, sam.n_updates, time.perf_counter()
    while sam.num_timesteps < s0 + steps:
        sam.iterate()
    dt = time.perf_counter() - t0
    return {
        "env_steps": sam.num_timesteps - s0,
        "updates": sam.n_updates - u0,
        "seconds": dt,
        "hidden": sam.algo.ac.network.hidden,
        "batch_size": sam.algo.batch_size,
    }


def worker_offpolicy(algo: str, env: str, steps: int) -> dict[str, Any]:
    import numpy as np
    from stable_baselines3 import DDPG, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    from ail.envs import make_vec_env
    from ail.schema import algo_settings

    sam = algo_settings(_sam_cfg(env))  # SAM's validated settings: the same network sizes and batch as SAM
    hidden, batch = sam.network.hidden, sam.batch_size
    venv = make_vec_env(env, n_envs=1, seed=0)
    act_dim = venv.action_space.shape[0]
    cls = {"ddpg": DDPG, "td3": TD3}[algo]
    model = cls(
        "MlpPolicy",
        venv,
        learning_starts=LEARNING_STARTS,
        batch_size=batch,
        train_freq=1,
        gradient_steps=1,
        action_noise=NormalActionNoise(np.zeros(act_dim), 0.1 * np.ones(act_dim)),
        policy_kwargs={"net_arch": hidden},
        seed=0,
        device="cpu",
    )
    model.learn(WARMUP)
    s0, u0, t0 = model.num_timesteps, model._n_updates, time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return {
        "env_steps": model.num_timesteps - s0,
        "updates": model._n_updates - u0,
        "seconds": time.perf_counter() - t0,
        "hidden": hidden,
        "batch_size": batch,
    }


def _gail_cfg(env: str, steps: int, runs: str) -> Any:
    return _compose(
        [
            "algo=gail",
            f"env={env}",
            f"train.env_steps={steps}",
            f"eval.every={10 * steps}",
            "eval.episodes=1",
            "eval.final_episodes=1",
            "runtime.progress=false",
            f"paths.runs={runs}",
        ]
    )


def worker_ppo(env: str, steps: int) -> dict[str, Any]:
    from stable_baselines3.common.vec_env import VecNormalize

    from ail.algos.gail import build_generator
    from ail.envs import make_vec_env
    from ail.schema import algo_settings

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _gail_cfg(env, steps, tmp)
        gail = algo_settings(cfg)
        venv = VecNormalize(make_vec_env(env, n_envs=gail.n_envs, seed=0), norm_obs=True, norm_reward=False)
        model = build_generator(gail, venv, seed=0)
        t0 = time.perf_counter()
        model.learn(steps)
        return {"env_steps": model.num_timesteps, "updates": model._n_updates, "seconds": time.perf_counter() - t0}


def worker_gail(env: str, steps: int) -> dict[str, Any]:
    import csv

    from ail.app import train_run

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _gail_cfg(env, steps, tmp)
        (run_dir,) = train_run(cfg, Path(tmp) / "run")
        with open(run_dir / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        # Between the step-0 evaluation and the last one (one episode each): training only.
        return {
            "env_steps": int(rows[-1]["env_steps"]),
            "updates": int(rows[-1]["updates"]),
            "seconds": float(rows[-1]["wall_time"]) - float(rows[0]["wall_time"]),
        }


def worker_replay_bytes(env: str, transitions: int) -> dict[str, Any]:
    """Bytes SB3's ReplayBuffer and SAM's CompactReplayBuffer allocate for ``transitions`` steps, and the
    peak memory of actually filling the compact one (numpy allocates lazily: untouched pages cost nothing)."""
    from stable_baselines3.common.buffers import ReplayBuffer

    from ail.algos.sam.replay import CompactReplayBuffer
    from ail.envs import make_env

    e = make_env(env)
    out: dict[str, Any] = {"transitions": transitions, "obs_dim": int(e.observation_space.shape[0])}
    for name, cls in (("sb3", ReplayBuffer), ("compact", CompactReplayBuffer)):
        buf = cls(transitions, e.observation_space, e.action_space, device="cpu", n_envs=1)
        arrays = {k: v.nbytes for k, v in vars(buf).items() if hasattr(v, "nbytes") and hasattr(v, "dtype")}
        out[name] = {"bytes": int(sum(arrays.values())), "arrays": arrays, "obs_dtype": str(buf.observations.dtype)}
        del buf
    import numpy as np

    buf = CompactReplayBuffer(transitions, e.observation_space, e.action_space, device="cpu", n_envs=1)
    obs = np.zeros((1, out["obs_dim"]))
    act = np.zeros((1, *e.action_space.shape), dtype=np.float32)
    for i in range(transitions):  # every row written, one episode end per 1000 steps
        buf.add(obs, obs, act, np.zeros(1), np.array([i % 1000 == 999]), [{}])
    out["compact_filled_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


WORKERS = {
    "sam": lambda a: worker_sam(a.env, a.steps),
    "sam_eager": lambda a: worker_sam(a.env, a.steps, compiled=False),
    "ddpg": lambda a: worker_offpolicy("ddpg", a.env, a.steps),
    "td3": lambda a: worker_offpolicy("td3", a.env, a.steps),
    "ppo": lambda a: worker_ppo(a.env, a.steps),
    "gail": lambda a: worker_gail(a.env, a.steps),
    "replay": lambda a: worker_replay_bytes(a.env, a.steps),
}


def run_worker(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    result = WORKERS[args.worker](args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


# ----- the suite ---------------------------------------------------------------------------------
def _spawn(worker: str, env: str, steps: int) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", worker, "--env", env, "--steps", str(steps)]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # One compile worker: SAM's torch.compile must not spill onto the other learner's core.
        env={**os.environ, "OMP_NUM_THREADS": "1", "TORCHINDUCTOR_COMPILE_THREADS": "1"},
    )


def _collect(proc: subprocess.Popen, name: str) -> dict[str, Any]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {name} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def pair(a: str, b: str, env: str, steps: int) -> dict[str, Any]:
    """Start both learners at once, one process each; return their measurements."""
    pa, pb = _spawn(a, env, steps), _spawn(b, env, steps)
    ra, rb = _collect(pa, a), _collect(pb, b)
    for r in (ra, rb):
        r["env_steps_per_s"] = r["env_steps"] / r["seconds"]
        r["updates_per_s"] = r["updates"] / r["seconds"]
    return {a: ra, b: rb}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def markdown(result: dict[str, Any], command: str) -> str:
    m = result["machine"]
    lines = [
        "## Measured side by side",
        "",
        "Generated by `" + command + "` (`benchmarks/suite.py`); every figure below comes from that one run.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}; Python {m['python']}, torch {m['torch']}; "
        "one torch thread per learner; the two learners of a comparison run at the same time, one process each.",
        "",
        "| comparison | env | learner | env steps/s | updates/s | peak memory (MB) | ratio (ours / SB3) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in result["comparisons"]:
        ours, theirs = c["ours"], c["baseline"]
        o, t = c["results"][ours], c["results"][theirs]
        key = "updates_per_s" if c["metric"] == "updates/s" else "env_steps_per_s"
        ratio = o[key] / t[key]
        for name, r in ((theirs, t), (ours, o)):
            lines.append(
                f"| {ours} vs {theirs} | {c['env']} | {name} | {r['env_steps_per_s']:.1f} | {r['updates_per_s']:.1f} | "
                f"{r['peak_rss_mb']:.0f} | " + (f"**{ratio:.2f}** ({c['metric']})" if name == ours else "") + " |"
            )
    rp = result["replay"]
    lines += [
        "",
        f"Replay memory for {rp['transitions']:,} {result['replay_env']} transitions (obs dim {rp['obs_dim']}): "
        f"SB3's `ReplayBuffer` allocates {rp['sb3']['bytes'] / 1e9:.2f} GB ({rp['sb3']['obs_dtype']} observations and "
        f"next observations); SAM's `CompactReplayBuffer` {rp['compact']['bytes'] / 1e9:.2f} GB "
        f"({rp['compact']['obs_dtype']}, each observation once), ratio {rp['compact']['bytes'] / rp['sb3']['bytes']:.2f}; "
        f"the process that filled every row of it peaked at {rp['compact_filled_rss_mb'] / 1024:.2f} GB resident.",
    ]
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- benchmarks/suite.py: begin -->", "<!-- benchmarks/suite.py: end -->"


def _write_between_markers(path: Path, text: str) -> None:
    """Replace the generated block of ``path`` and keep the hand-written text around it (targets, profiles)."""
    block = f"{BEGIN}\n{text}{END}\n"
    old = path.read_text() if path.is_file() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        block = head + block + rest.split(END, 1)[1].lstrip("\n")
    path.write_text(block)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--steps", type=int, default=3000, help="timed env steps of each off-policy learner")
    parser.add_argument("--gail-steps", type=int, default=40960, help="env steps of GAIL and of PPO")
    parser.add_argument("--replay-env", default="humanoid")
    parser.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)
    from ail.config import group_options

    if args.env not in group_options("env"):
        print(f"error: unknown env '{args.env}'; accepted: {', '.join(group_options('env'))}", file=sys.stderr)
        return 2
    command = "python benchmarks/suite.py " + " ".join(argv)
    comparisons = []
    for ours, base, steps, metric in (
        ("sam", "ddpg", args.steps, "updates/s"),
        ("sam_eager", "ddpg", args.steps, "updates/s"),
        ("sam", "td3", args.steps, "updates/s"),
        ("gail", "ppo", args.gail_steps, "env steps/s"),
    ):
        print(f"[bench] {ours} vs {base} on {args.env} ...", flush=True)
        comparisons.append(
            {"ours": ours, "baseline": base, "env": args.env, "metric": metric, "steps": steps, "results": pair(ours, base, args.env, steps)}
        )
    replay = _collect(_spawn("replay", args.replay_env, 1_000_000), "replay")
    result = {"machine": machine(), "command": command, "comparisons": comparisons, "replay": replay, "replay_env": args.replay_env}
    text = markdown(result, command.strip())
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
        _write_between_markers(args.out.with_suffix(".md"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
