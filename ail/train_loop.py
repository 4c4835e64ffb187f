"""The one training loop every algorithm runs in: restore, evaluate, checkpoint, preempt, finish.

``train(learner, runs)`` drives a :class:`ail.algorithm.Learner` until ``learner.progress``
reaches ``learner.budget``:

1. **Restore or begin.** Each run directory's checkpoint is loaded (``metrics.csv`` is cut back to
   it); without one the learner's ``begin`` warm-up runs.
2. **Evaluate** at the start (progress after warm-up) and whenever ``progress`` crosses the next
   multiple of ``eval.every``, or reaches the budget: ``eval.episodes`` deterministic episodes,
   one ``metrics.csv`` row with the learner's training logs. The first progress at which the
   normalised score reaches each of :data:`THRESHOLDS` goes to ``summary.json``.
3. **Checkpoint** after every ``train.checkpoint_every``-th evaluation (the one at the start
   included), atomically: learner state and this loop's bookkeeping together.
4. **Preemption.** During the iterations SIGTERM/SIGUSR2 (Slurm) and SIGINT (Ctrl-C) raise a flag; at the end of the
   iteration every seed is checkpointed and :class:`ail.preemption.Preempted` ends the job (it
   resumes when relaunched). With ``algo.workers > 1`` any worker's flag stops all of them
   together. Outside the iterations (warm-up, the final evaluation) the signal ends the process at
   once, which the checkpoints and ``metrics.csv``'s cut-back make safe too.
5. **Numerical failure** (:class:`ail.errors.TrainingError`, e.g. NaN) stops with one line that
   names the progress, the checkpoint kept and the learner's ``failure_hint``.
6. **Finish**: save the policy, the final evaluation, ``summary.json`` last.

``runs`` has one entry per seed of the learner; on workers other than rank 0 (``algo.workers``)
they are ``None``: those workers iterate and checkpoint (collectively) but write nothing.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ail import distributed
from ail.algorithm import Learner
from ail.errors import ConfigError, TrainingError
from ail.preemption import Preempted, PreemptionFlag
from ail.run import Run

THRESHOLDS = (0.8, 0.9, 0.95)  # normalised scores whose first-reach progress summary.json records


def _fresh_book() -> dict[str, Any]:
    return {"next_eval": 0, "evals_done": 0, "first_reach": {}}


def train(learner: Learner, runs: Sequence[Optional[Run]]) -> None:
    """Train ``learner`` to its budget, writing seed ``i``'s files to ``runs[i]`` (see module docstring)."""
    cfg = learner.cfg
    rank0 = runs[0] is not None
    saved = [run.load_checkpoint() if run is not None else None for run in runs]
    if rank0 and len({None if s is None else s["progress"] for s in saved}) > 1:
        where = ", ".join(f"seed {s}: {'none' if p is None else p['progress']}" for s, p in zip(learner.seeds, saved))
        raise ConfigError(
            f"train.seeds_per_process={len(runs)} needs its seeds' checkpoints at the same {learner.unit} ({where}); "
            f"accepted: resume these seeds one per process (train.seeds_per_process=1)"
        )
    books = [s["loop"] if s is not None else _fresh_book() for s in saved]
    books, resumed = distributed.broadcast_object((books, saved[0] is not None))
    if resumed:
        for i in range(len(runs)):
            with learner.seed_context(i):
                learner.load_state_dict(i, saved[i]["learner"] if saved[i] is not None else None)
    else:
        learner.begin()
    every, ckpt_every, budget = int(cfg.eval.every), int(cfg.train.checkpoint_every), learner.budget
    key = learner.unit.replace(" ", "_")

    def save(i: int) -> None:
        with learner.seed_context(i):
            state = {"learner": learner.state_dict(i), "loop": books[i], "progress": learner.progress}
        if runs[i] is not None:
            runs[i].save_checkpoint(state, learner.env_steps, learner.updates)

    def evaluate(logs: Sequence[dict[str, float]]) -> Optional[dict[str, Any]]:
        lead = None
        for i, run in enumerate(runs):
            if run is not None:
                with learner.seed_context(i):
                    row = run.evaluate(learner.acting_policy(i), learner.env_steps, learner.updates, {**logs[i], **learner.evaluation_logs(i)})
                for t in THRESHOLDS:
                    if f"{key}_to_{t}" not in books[i]["first_reach"] and row["normalized_score"] >= t:
                        books[i]["first_reach"][f"{key}_to_{t}"] = learner.progress
                lead = lead or row
            books[i]["evals_done"] += 1
            books[i]["next_eval"] = (learner.progress // every + 1) * every
            if books[i]["evals_done"] % ckpt_every == 0:
                save(i)
        return lead

    if books[0]["evals_done"] == 0:
        evaluate([{} for _ in runs])
    columns = [
        TextColumn(f"[bold]{cfg.algo.label}[/] {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(learner.unit),
        TimeRemainingColumn(),
        TextColumn("{task.fields[last]}"),
    ]
    name = f"{cfg.env.name}-d{cfg.demos}-s" + ",".join(str(s) for s in learner.seeds)
    with PreemptionFlag() as flag, Progress(*columns, disable=not (rank0 and cfg.runtime.progress)) as bar:
        task = bar.add_task(name, total=budget, completed=min(learner.progress, budget), last="")
        while learner.progress < budget:
            try:
                logs = learner.iterate()
            except TrainingError as exc:
                where = " / ".join(str(r.ckpt_path) for r in runs if r is not None) or "the run's checkpoints/last.pt"
                raise TrainingError(
                    f"{exc} at {learner.unit} {learner.progress}; stopped. The last good checkpoint ({where}) is kept; "
                    f"{learner.failure_hint + ', then ' if learner.failure_hint else ''}relaunch to resume from it"
                ) from None
            bar.update(task, completed=min(learner.progress, budget))
            if learner.progress >= books[0]["next_eval"] or learner.progress >= budget:
                row = evaluate(logs)
                if row is not None:
                    bar.update(
                        task,
                        last=f"{bar.tasks[0].speed or 0:.0f} {learner.unit}/s | eval {row['return_mean']:.1f} (score {row['normalized_score']:.2f})",
                    )
            if distributed.mean_scalar(float(flag.requested)) > 0:
                for i, run in enumerate(runs):
                    save(i)
                    if run is not None and run.logger is not None:
                        run.logger.close()
                raise Preempted(flag.signum or 15, learner.env_steps, " ".join(str(r.ckpt_path) for r in runs if r is not None) or "on rank 0")
    for i, run in enumerate(runs):
        if run is None:
            continue
        extra: dict[str, Any] = {**learner.summary(i), **books[i]["first_reach"], "budget": budget}
        if learner.progress > budget:
            why = f" ({learner.iteration_note})" if learner.iteration_note else ""
            extra["budget_note"] = (
                f"ran {learner.progress} {learner.unit}, {learner.progress - budget} past the budget of {budget}: "
                f"{cfg.algo.name} stops only between iterations{why}"
            )
        with learner.seed_context(i):
            run.finish(lambda path, i=i: learner.save_policy(i, path), learner.acting_policy(i), learner.env_steps, learner.updates, extra=extra)
