"""Where a job's demonstrations and its expert's record come from, decided once.

A demonstration set is rolled out from an expert (``demo_set.source=expert``) or converted from a
Minari dataset (``demo_set.source=minari:<id or directory>``). The expert is the one installed in
``<paths.experts>/<env>/`` (:class:`ail.experts.ShippedExpert`), a user's SB3 file
(``env.expert.path``: :class:`ail.expert_files.ExpertFile`) or, for a dataset where neither is
given, none: the dataset's mean return stands for the expert's in the normalised score
(:class:`ail.minari_io.DatasetRecord`).

:func:`demo_source` turns a job's config into a :class:`DemoSource` holding both answers; the cache,
the generator and the loader (:mod:`ail.demos`) and ``task=train``/``task=demos`` (:mod:`ail.app`)
take everything from it. :func:`resolve` is the same decision for library calls by env name
(``ail.load_demos``), which have no config and use the installed expert.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from omegaconf import DictConfig, OmegaConf

from ail.config import env_config
from ail.envs import env_id
from ail.expert_files import ExpertFile
from ail.experts import ShippedExpert
from ail.minari_io import DatasetRecord, cache_path, is_minari
from ail.paths import demos_root

ExpertRef = Union[ShippedExpert, ExpertFile, DatasetRecord]


@dataclass(frozen=True)
class DemoSpec:
    """How a demonstration set is generated from the expert (each spec is its own cached file)."""

    trajectories: int
    deterministic: bool = True
    seed: int = 0
    min_return: Optional[float] = None
    source: str = "expert"  # or minari:<dataset id or directory>: the dataset's episodes instead (ail.minari_io)

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> "DemoSpec":
        """The job's ``demo_set``."""
        d = cfg.demo_set
        return cls(int(d.trajectories), bool(d.deterministic), int(d.seed), None if d.min_return is None else float(d.min_return), str(d.source))

    @classmethod
    def default(cls, name: str) -> "DemoSpec":
        """The set conf/env/<name>.yaml asks for (``dataset_size`` trajectories, ``demo_min_return``)."""
        ecfg = env_config(name)
        return cls(int(ecfg.dataset_size), True, 0, None if ecfg.demo_min_return is None else float(ecfg.demo_min_return))

    def filename(self, name: str) -> str:
        """The cached file's name for env ``name``, rolled out from the expert."""
        mode = "det" if self.deterministic else "stoch"
        tail = "" if self.min_return is None else f"_min{self.min_return:g}"
        return f"{env_id(name)}_n{self.trajectories}_{mode}_s{self.seed}{tail}.npz"


@dataclass(frozen=True)
class DemoSource:
    """A job's demonstration set and its expert.

    :param name: the env's short name.
    :param spec: which set.
    :param path: the set's cached file (it may not exist yet).
    :param expert: where the expert's record comes from, and, for a set rolled out from it, its policy.
    """

    name: str
    spec: DemoSpec
    path: Path
    expert: ExpertRef

    @property
    def dataset(self) -> Optional[str]:
        """``minari:<id or directory>`` when the set is converted from a Minari dataset, else None."""
        return self.spec.source if is_minari(self.spec.source) else None


def demo_source(cfg: DictConfig) -> DemoSource:
    """The demonstration source and expert of a job, from its config; a missing expert file or one
    for other spaces is one ConfigError, before any run directory.

    :param cfg: the job's composed config (``env``, ``demo_set``, ``paths``).
    """
    path = OmegaConf.select(cfg, "env.expert.path", default=None)
    algo = OmegaConf.select(cfg, "env.expert.algo", default=None)
    return resolve(
        str(cfg.env.name),
        DemoSpec.from_cfg(cfg),
        cfg.paths.demos,
        cfg.paths.experts,
        expert_path=None if path is None else str(path),
        expert_algo=None if algo is None else str(algo),
    )


def resolve(
    name: str,
    spec: Optional[DemoSpec] = None,
    root: Optional[Union[str, Path]] = None,
    experts: Optional[Union[str, Path]] = None,
    expert_path: Optional[str] = None,
    expert_algo: Optional[str] = None,
) -> DemoSource:
    """The demonstration source of env ``name``.

    :param name: the env's short name.
    :param spec: the set (None: the env config's default, :meth:`DemoSpec.default`).
    :param root: the demos directory (None: ``paths.demos``'s default).
    :param experts: the experts directory (None: ``paths.experts``'s default).
    :param expert_path: a user's SB3 file as the expert (``env.expert.path``), checked here.
    :param expert_algo: that file's algorithm (``env.expert.algo``; None: read from the file).
    """
    spec = spec or DemoSpec.default(name)
    base = demos_root(str(root) if root else None)
    path = cache_path(spec.source, base, name) if is_minari(spec.source) else base / name / spec.filename(name)
    shipped = ShippedExpert.at(name, experts)
    expert: ExpertRef
    if expert_path is not None:
        expert = ExpertFile.open(name, expert_path, expert_algo, base / name)
    elif is_minari(spec.source) and not shipped.complete():
        expert = DatasetRecord(name, path)
    else:
        expert = shipped
    return DemoSource(name, spec, path, expert)
