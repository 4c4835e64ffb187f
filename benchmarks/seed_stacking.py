"""Would K seeds in one process, their updates stacked with torch.func.vmap, pay off here?

    python benchmarks/seed_stacking.py [--env hopper] [--seeds 4] [--updates 300] [--steps 300] [--device cpu]

Builds K SAM workers (seeds 0..K-1, default compiled config) in this process, fills each past
``learning_starts``, then times, side by side in this one process:

* **one at a time**: each seed's own compiled update (``SAM.update_discriminator`` +
  ``SAM.update_actor_critic``), K times;
* **stacked** (:class:`ail.algos.sam.compiled.StackedSteps`): each seed prepares its own batch
  (own replay, generators, Pop-Art), the four gradient/target computations run once for all K
  seeds under ``vmap`` over their stacked parameters, and each seed applies its own slice (own
  clipping and Adam state);
* **collection**: one env step of each seed (SB3 ``collect_rollouts``), which stacking cannot share.

It checks that the stacked update gives each seed the same parameters as its own update (to
float tolerance), then prints seed-updates/s for both and the ratio, with and without collection.
The issue-8 target is a ratio >= 2.5 at K = 4 (docs/performance.md).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402 - the suite's config composition

from ail.algos.sam.compiled import StackedSteps  # noqa: E402
from ail.algos.sam.learner import Worker  # noqa: E402
from ail.demos import load_demos  # noqa: E402


def _state(m: Any) -> dict[str, torch.Tensor]:
    return {**{f"d.{k}": v.clone() for k, v in m.disc.state_dict().items()}, **{f"p.{k}": v.clone() for k, v in m.policy.state_dict().items()}}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--updates", type=int, default=300, help="timed updates per seed and way")
    parser.add_argument("--steps", type=int, default=300, help="timed env steps per seed (collection)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (runtime.device of every seed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    workers = []
    for seed in range(args.seeds):
        w = Worker(suite._sam_cfg(args.env, (f"seed={seed}", f"runtime.device={args.device}")), load_demos(args.env, 4), 0)
        while w.model.num_timesteps <= suite.LEARNING_STARTS + 100:
            w.iterate()
        workers.append(w)
    models = [w.model for w in workers]
    stacked = StackedSteps(models)

    # Same state in, same parameters out (float tolerance): the stacked update is each seed's own.
    saved = [copy.deepcopy(w.snapshot()) for w in workers]
    for m in models:
        m.update_discriminator(), m.update_actor_critic()
    alone = [_state(m) for m in models]
    for w, s in zip(workers, saved):
        w.restore(s)
    stacked.update()
    worst = max(float((_state(m)[k] - a[k]).abs().max()) for m, a in zip(models, alone) for k in a)
    print(f"[stacking] largest parameter difference, stacked vs one at a time, after one update: {worst:.2e}")
    if worst > 1e-4:
        print("error: the stacked update does not reproduce the per-seed update", file=sys.stderr)
        return 1

    for _ in range(20):  # warm both ways up (compilation) before timing
        stacked.update()
        for m in models:
            m.update_discriminator(), m.update_actor_critic()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.updates):
        for m in models:
            m.update_discriminator(), m.update_actor_critic()
    sync()
    one = (time.perf_counter() - t0) / (args.updates * len(models))
    t0 = time.perf_counter()
    for _ in range(args.updates):
        stacked.update()
    sync()
    many = (time.perf_counter() - t0) / (args.updates * len(models))
    t0 = time.perf_counter()
    for _ in range(args.steps):
        for w in workers:
            m = w.model
            m.collect_rollouts(w.env, w.callback, m.train_freq, m.replay_buffer, m.action_noise, m.learning_starts)
    collect = (time.perf_counter() - t0) / (args.steps * len(models))
    k = len(models)
    where = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "cpu"
    print(f"[stacking] {args.env}, K = {k}, device {args.device} ({where}), one torch thread, per seed-update:")
    print(f"  update one at a time  {one * 1e3:6.2f} ms   ({1 / one:7.1f} seed-updates/s)")
    print(f"  update stacked        {many * 1e3:6.2f} ms   ({1 / many:7.1f} seed-updates/s)   ratio {one / many:.2f}")
    print(f"  collection (per step) {collect * 1e3:6.2f} ms   (not shared by stacking)")
    print(
        f"  with collection: one at a time {1 / (one + collect):.1f}, stacked {1 / (many + collect):.1f} seed-updates/s, "
        f"ratio {(one + collect) / (many + collect):.2f} (target >= 2.5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
