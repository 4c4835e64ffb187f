"""The four tasks behind launch.py: train, expert, demos, eval.

Each task imports what it needs inside its function: launch.py's checks of the command line
(``ail.config``) then run before torch and SB3 are imported, so bad input is refused at once.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ail import minari_io
from ail.config import check_config, check_device
from ail.errors import ConfigError, StorageError, TrainingError
from ail.paths import remove_empty_dirs
from ail.preemption import Preempted, hand_over, scheduler_handlers


def _record_failure(message: str) -> None:
    """Record a failed job of a sweep in ``<sweep dir>/.failures/<job>.json``.

    Jobs launched by joblib or submitit run in other processes (other machines for Slurm); the
    shared sweep directory is the one place every launcher's jobs can report to, and launch.py,
    which waits for the whole sweep, lists them at the end (ail.sweep_failures).
    """
    from ail.sweep_failures import write_failure

    write_failure(Path(HydraConfig.get().sweep.dir), _output_dir(), message)


def _output_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def task_expert(cfg: DictConfig) -> None:
    from ail.experts import ExpertTrainer, install_expert
    from ail.paths import experts_root

    run_dir = _output_dir()
    trainer = ExpertTrainer(cfg, run_dir)
    trainer.train()
    info = trainer.finalize()
    print(
        f"[expert] {cfg.env.name}: return {info['return_mean']:.1f} ± {info['return_std']:.1f} "
        f"(min {info['return_min']:.1f}, max {info['return_max']:.1f}) over {info['eval_episodes']} deterministic episodes; "
        f"random policy {info['random_return_mean']:.1f}"
    )
    dst = install_expert(run_dir / "expert", cfg.env.name, experts_root(cfg.paths.experts), replace=bool(cfg.expert.replace))
    print(f"[expert] installed in {dst}")


def task_demos(cfg: DictConfig) -> None:
    # Imported here, as each task's own modules are: they load torch and SB3, which launch.py's checks run without.
    from ail.demo_source import demo_source
    from ail.demos import ensure_set, read_demo_file

    path = ensure_set(demo_source(cfg))
    with open(path.with_suffix(".json")) as f:
        meta = json.load(f)
    print(
        f"[demos] {path}: {meta['n_trajectories']} trajectories, {meta['n_transitions']} transitions, "
        f"return {meta['return_mean']:.1f} ± {meta['return_std']:.1f}"
    )
    if cfg.demo_set.export == "minari":
        data, _ = read_demo_file(path, cfg.env.name)
        dataset_id = minari_io.export(data, meta, cfg.env.name, cfg.demo_set.export_id, description=f"ail demo set {path.name}")
        print(f"[demos] written as Minari dataset {dataset_id}")
    remove_empty_dirs(_output_dir(), Path(cfg.paths.runs))  # the set lives under paths.demos: no run dir


def task_train(cfg: DictConfig) -> None:
    train_run(cfg, _output_dir())


def train_run(cfg: DictConfig, run_dir: Path) -> list[Path]:
    """Validate everything (once), then open and lock the run directories, then train through the one loop.

    ``train.seeds_per_process=K``: seeds ``seed .. seed+K-1`` in one process (learners whose
    ``max_seeds >= K``), each in its own run directory (``run_dir``'s sibling ``seed<s>``) with the
    config it would have alone. Returns the run directories.
    """
    from ail import train_loop
    from ail.algorithm import learner_class
    from ail.demo_source import demo_source
    from ail.demos import load_set
    from ail.run import Run

    cls = learner_class(cfg)
    check_device(cfg.runtime.device, f"algo={cfg.algo.name}", cls.devices, gpu_algos)
    source = demo_source(cfg)
    demos = load_set(source, int(cfg.demos), subsample=int(cfg.demo_set.subsample), seed=cfg.demo_set.select_seed)
    info = source.expert.info()
    cls.validate(cfg, demos)
    k = int(cfg.train.seeds_per_process)
    if k > cls.max_seeds:
        accepted = "1" if cls.max_seeds == 1 else f"1..{cls.max_seeds}"
        raise ConfigError(f"train.seeds_per_process={k} is not supported by algo={cfg.algo.name}; accepted for algo={cfg.algo.name}: {accepted}")
    cfgs, dirs = [cfg], [Path(run_dir)]
    if k > 1:
        cfgs = []
        for seed in range(int(cfg.seed), int(cfg.seed) + k):
            c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
            c.seed = seed
            cfgs.append(c)
        dirs = [Path(run_dir).parent / f"seed{c.seed}" for c in cfgs]
    with contextlib.ExitStack() as held:
        runs = []
        for c, d in zip(cfgs, dirs):
            run = Run.open(c, d, demos, info, cls)
            held.callback(run.close)
            runs.append(run)
            if run.status == "complete":
                print(f"[train] {run.dir} is already complete; nothing to do")
        pending = [run for run in runs if run.status != "complete"]
        if pending:
            with cls.processes(cfg, demos):
                train_loop.train(cls(pending[0].cfg, demos, [int(r.cfg.seed) for r in pending]), pending)
        for run in runs:
            run.print_summary()
    return dirs


def gpu_algos() -> list[str]:
    """The shipped algorithms whose learner computes on a GPU (each learner imported: for an error message)."""
    from ail.algorithm import learner_class
    from ail.config import CONF_DIR, group_options

    return [
        a
        for a in group_options("algo")
        if "cuda" in learner_class(OmegaConf.create({"algo": OmegaConf.load(CONF_DIR / "algo" / f"{a}.yaml")})).devices
    ]


def task_eval(cfg: DictConfig) -> None:
    from ail.evaluation import evaluate, stats
    from ail.policy import load_policy
    from ail.seeding import derive_seed

    target = Path(cfg.policy_dir) if cfg.policy_dir else _output_dir()
    policy = load_policy(target)
    ret = evaluate(policy.predict, cfg.env.name, int(cfg.eval.final_episodes), seed=derive_seed("eval_task", int(cfg.seed)))
    s = stats(ret)
    print(f"[eval] {target}: return {s['return_mean']:.1f} ± {s['return_std']:.1f} over {len(ret)} episodes")
    remove_empty_dirs(_output_dir(), Path(cfg.paths.runs))  # evaluating writes nothing


TASKS: dict[str, Callable[[DictConfig], None]] = {
    "train": task_train,
    "expert": task_expert,
    "demos": task_demos,
    "eval": task_eval,
}


def run(cfg: DictConfig) -> None:
    """Run one job; bad input, a failed write and preemption end it with one line on stderr and a
    non-zero exit: 2 bad input, 3 a numerical failure, 4 a file that could not be written,
    128 + the signal after a checkpoint on SIGTERM/SIGUSR2/SIGINT (130 for Ctrl-C)."""
    multirun = HydraConfig.get().mode.name == "MULTIRUN"
    handlers = scheduler_handlers()  # submitit's, in a Slurm job: they requeue after our checkpoint
    if multirun:
        from ail.sweep_failures import clear_failure

        clear_failure(Path(HydraConfig.get().sweep.dir), _output_dir())
    try:
        check_config(cfg)
        TASKS[cfg.task](cfg)
    except ConfigError as exc:
        remove_empty_dirs(_output_dir(), Path(cfg.paths.runs))
        print(f"error: {exc}", file=sys.stderr, flush=True)
        if not multirun:
            sys.exit(2)
        _record_failure(str(exc))
    except (TrainingError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        if not multirun:
            sys.exit(3 if isinstance(exc, TrainingError) else 4)
        _record_failure(str(exc))
    except Preempted as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # on the way out: another Ctrl-C must not cut the line below
        what = "interrupted" if exc.signum == signal.SIGINT else "preempted"
        print(f"[{what}] {exc}; relaunch the same command to resume", file=sys.stderr, flush=True)
        hand_over(exc.signum, handlers)
        sys.exit(128 + exc.signum)
    except KeyboardInterrupt:
        # Outside the iterations (demonstrations, warm-up, final evaluation) or a second Ctrl-C: at
        # once. Every file is replaced atomically, so the last checkpoint, if any, is intact.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("[interrupted] stopped at once; the last checkpoint, if any, is kept: relaunch the same command to resume", file=sys.stderr, flush=True)
        sys.exit(128 + signal.SIGINT)
    except Exception as exc:  # noqa: BLE001 - a crashed job of a sweep must not hide the others
        if not multirun:
            raise
        traceback.print_exc()
        _record_failure(f"{type(exc).__name__}: {exc}")
