"""The algorithm contract: what an algorithm provides, and how ``launch.py`` finds it.

To add an algorithm ``foo``:

1. Write ``ail/algos/foo.py`` with a subclass of :class:`Learner` (below). Its constructor builds
   every piece from the config and seeds its random streams (:mod:`ail.seeding`); ``iterate``
   runs one iteration of the algorithm (collect, update: read it top to bottom); the rest hands
   the train loop what it needs to evaluate, checkpoint and finish.
2. Write ``conf/algo/foo.yaml`` with ``name: foo``, ``label: foo`` (run directories) and
   ``learner: ail.algos.foo.FooLearner``, plus the algorithm's own keys (an adversarial one pulls
   in the shared discriminator: ``defaults: [/discriminator@discriminator: base, _self_]``).
   The YAML's ``settings: ail.algos.foo.FooConfig`` names step 3's model.
3. Declare those keys' types, ranges and choices in a model beside the learner (a subclass of
   :class:`ail.schema.AlgoConfig` built from the types in :mod:`ail.schema`): bad values are then
   refused, one line each, before anything runs, and the learner reads the validated model as
   ``self.algo`` (typed values: nothing to cast). Each setting is declared twice only: its value
   and comment in the YAML, its type and range in the model.
4. Declare what the platform needs to know as class attributes of the learner (below: ``unit``,
   ``interacts_with_env``, ``devices``, ``max_seeds``, ``failure_hint``, ``upgrade_config``);
   platform code reads these, never the algorithm's name.
5. Add a test that ``launch.py algo=foo`` learns a small task (see ``tests/``;
   ``tests/test_toy_algorithm.py`` adds an algorithm by exactly these steps).

What an algorithm does **not** write: the training loop, evaluation cadence, progress bar,
checkpoint files, preemption handling, first-reach thresholds, ``metrics.csv`` or
``summary.json``. :func:`ail.train_loop.train` does all of that the same way for every algorithm,
so every run directory follows one contract (:mod:`ail.run`) and resumes exactly.

The life of a launch: ``validate(cfg, demos)`` runs once, before any file is written (it raises
:class:`ail.errors.ConfigError` with one line naming the bad value and what is accepted); then the
run directory is opened and locked; then ``Learner(cfg, demos, seeds)`` is built, restored from
the checkpoint with ``load_state_dict`` or started with ``begin``, and iterated until its budget.
"""

from __future__ import annotations

import contextlib
import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Generic, Iterator, Sequence, TypeVar

from omegaconf import DictConfig

from ail.demos import Demos
from ail.errors import ConfigError
from ail.policy import LoadedPolicy
from ail.schema import AlgoConfig, algo_settings

Settings = TypeVar("Settings", bound=AlgoConfig)


class Learner(ABC, Generic[Settings]):
    """One algorithm's state and its iteration, for one seed or (``max_seeds > 1``) several at once.

    :param cfg: the run's composed config (``cfg.algo`` is this algorithm's group).
    :param demos: the expert demonstrations, already validated against the env.
    :param seeds: the seeds trained in this process: ``[cfg.seed]``, or K of them when
        ``train.seeds_per_process=K`` and ``max_seeds >= K``. Seed ``i`` of the methods below is
        ``seeds[i]``.

    ``self.algo`` is ``cfg.algo`` as the algorithm's schema model validated it (typed values).
    """

    #: what ``progress`` counts, shown on the progress bar ("env steps" or "updates")
    unit: ClassVar[str] = "env steps"
    #: whether it acts in the environment while it learns (``False``: offline, e.g. BC; its runs
    #: then have no env-step budget or curve in the reports)
    interacts_with_env: ClassVar[bool] = True
    #: the ``runtime.device`` kinds it computes on ("cpu", "cuda")
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    #: the largest ``train.seeds_per_process`` the learner can train in one process
    max_seeds: ClassVar[int] = 1
    #: appended to a numerical failure's message: what to change before resuming
    failure_hint: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def validate(cls, cfg: DictConfig, demos: Demos) -> None:
        """Every check that needs no training (config values the schema cannot express, spaces,
        demonstrations); raise :class:`ail.errors.ConfigError`. Runs once per launch, before any file."""

    def __init__(self, cfg: DictConfig, demos: Demos, seeds: Sequence[int]):
        self.cfg, self.demos, self.seeds = cfg, demos, list(seeds)
        self.algo: Settings = algo_settings(cfg)  # type: ignore[assignment]  # the model cfg.algo.settings names

    @classmethod
    def upgrade_config(cls, algo: dict[str, Any]) -> dict[str, Any]:
        """An older run's stored ``algo`` config as today's keys would have it (a key added since,
        with the value that reproduces what that run computed), so a resume compares like with like."""
        return algo

    @classmethod
    def traits(cls) -> dict[str, Any]:
        """What the results code needs to know of the algorithm, recorded in ``meta.json`` and ``summary.json``."""
        return {"unit": cls.unit, "interacts_with_env": cls.interacts_with_env}

    @property
    @abstractmethod
    def env_steps(self) -> int:
        """Environment interactions so far (all workers together)."""

    @property
    @abstractmethod
    def updates(self) -> int:
        """Gradient updates so far (the algorithm's own count, logged with every evaluation)."""

    @property
    def progress(self) -> int:
        """The count the budget and the evaluation cadence refer to (``unit``)."""
        return self.env_steps

    @property
    def budget(self) -> int:
        """Train until ``progress`` reaches this (``train.env_steps`` unless the learner counts otherwise)."""
        return int(self.cfg.train.env_steps)

    def begin(self) -> None:
        """A fresh run's warm-up before its first evaluation (e.g. filling a replay); not called on resume."""

    #: why ``progress`` may end past the budget (the loop stops only between iterations), for summary.json
    iteration_note: str = ""

    @abstractmethod
    def iterate(self) -> list[dict[str, float]]:
        """One iteration of the algorithm for every seed; returns each seed's training logs (metrics.csv columns)."""

    def evaluation_logs(self, i: int = 0) -> dict[str, float]:
        """Diagnostics measured only when seed ``i`` is evaluated (added to its metrics row)."""
        return {}

    @abstractmethod
    def acting_policy(self, i: int = 0) -> LoadedPolicy:
        """Seed ``i``'s policy as it acts on raw observations (what is evaluated and saved)."""

    @abstractmethod
    def save_policy(self, i: int, path: Path) -> None:
        """Write seed ``i``'s policy to ``path`` with :func:`ail.policy.save_policy`."""

    @abstractmethod
    def state_dict(self, i: int = 0) -> Any:
        """Everything seed ``i`` needs to continue exactly (networks, optimisers, replay, envs, RNGs).

        With ``algo.workers > 1`` every worker calls it; rank 0's return value is saved."""

    @abstractmethod
    def load_state_dict(self, i: int, state: Any) -> None:
        """Restore what :meth:`state_dict` returned (``None`` on workers other than rank 0)."""

    def summary(self, i: int = 0) -> dict[str, Any]:
        """Extra entries of seed ``i``'s ``summary.json``."""
        return {}

    @classmethod
    @contextlib.contextmanager
    def processes(cls, cfg: DictConfig, demos: Demos) -> Iterator[None]:
        """Around building and training the learner: start (and finally join) helper processes,
        e.g. SAM's ``algo.workers``, each of which builds its own learner and runs the loop with no run directory."""
        yield

    @contextlib.contextmanager
    def seed_context(self, i: int) -> Iterator[None]:
        """Run seed ``i``'s evaluation and checkpointing in its own global random streams (K seeds per process)."""
        yield


def learner_class(cfg: DictConfig) -> type[Learner]:
    """The registry: ``cfg.algo.learner`` names the class (``module.Class``) of the algorithm's :class:`Learner`."""
    target = str(cfg.algo.learner)
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise  # the learner's module exists but one of its own imports fails: show that
        raise ConfigError(f"algo={cfg.algo.name} has a config but no learner in this version ({target} is missing)") from None
    except (AttributeError, ValueError):
        raise ConfigError(f"algo={cfg.algo.name} has a config but no learner in this version ({target} is missing)") from None
    if not (isinstance(cls, type) and issubclass(cls, Learner)):
        raise ConfigError(f"algo.learner={target} is not an ail.algorithm.Learner subclass")
    return cls
