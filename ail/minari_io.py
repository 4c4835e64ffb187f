"""Minari datasets (the Farama standard for offline data) as demonstrations, in and out.

In: ``demo_set.source=minari:<dataset id or directory>`` reads a dataset already on disk (by id
under ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``, or a dataset directory; nothing is
downloaded at run time), checks its observation and action spaces against the env, and converts
its episodes once into this platform's demo format (``<paths.demos>/<name>/minari/<slug>.npz``),
where every learner reads them as it reads an expert's roll-outs: ``demos=N`` takes the first N
episodes. Minari stores an episode's ``T+1`` observations and ``T`` actions; pair ``t`` is
``(obs[t], actions[t], obs[t+1])``, terminated/truncated from its flags. With no expert for the
normalised score, the dataset's mean episode return stands for the expert's and a random policy's is
measured once (50 episodes), both recorded beside the converted set.

Out: ``task=demos demo_set.export=minari`` writes the demo set rolled out from the expert as a
Minari dataset (``demo_set.export_id``, default ``ail/<name>/expert-v0``) with Minari's
``create_dataset_from_buffers``.

Minari itself is imported where it is used: only jobs that read or write a dataset need it, and its
import (its storage backends) would otherwise add to the start of every job.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import numpy as np

from ail.envs import describe_space, env_id, make_env, same_space
from ail.errors import ConfigError
from ail.evaluation import random_record
from ail.paths import atomic_write_text

PREFIX = "minari:"


def is_minari(source: str) -> bool:
    """Whether ``demo_set.source`` names a Minari dataset (``minari:<id or directory>``) rather than the expert."""
    return str(source).startswith(PREFIX)


def _accepted(source: str) -> str:
    return f"demo_set.source={source}"


def dataset_dir(source: str) -> Path:
    """The on-disk ``data`` directory of ``minari:<id or directory>``; absent is one ConfigError."""
    spec = source[len(PREFIX) :]
    if not spec:
        raise ConfigError(f"{_accepted(source)} names no dataset; accepted: minari:<dataset id> or minari:<dataset directory>")
    path = Path(spec).expanduser()
    if not path.is_dir():
        from minari.storage.local import get_dataset_path

        path = Path(get_dataset_path(spec))
    data = path / "data" if (path / "data").is_dir() else path
    if not (data / "metadata.json").is_file():
        raise ConfigError(
            f"{_accepted(source)}: no Minari dataset at {path} (nothing is downloaded at run time); "
            "accepted: minari:<id of a dataset on disk under $MINARI_DATASETS_PATH or ~/.minari/datasets> or minari:<its directory>"
        )
    return data


def digest(data_dir: Path) -> str:
    """A fingerprint of the dataset (its Minari metadata: episodes, steps, spaces, id)."""
    return hashlib.sha256((data_dir / "metadata.json").read_bytes()).hexdigest()


def read(source: str, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The dataset's episodes as a demo set (arrays as :func:`ail.demos.generate_demos` returns) and its description.

    Its declared spaces are compared with env ``name``'s before any episode is read: the conversion
    (the actions' dtype) follows the env, and a dataset of other spaces cannot be converted for it.
    """
    from minari import MinariDataset

    data_dir = dataset_dir(source)
    try:
        ds = MinariDataset(data_dir)
    except Exception as exc:  # noqa: BLE001 - a damaged dataset: one line
        raise ConfigError(f"{_accepted(source)}: cannot read {data_dir} ({type(exc).__name__}: {exc})") from None
    env = make_env(name)
    for what, theirs, mine in (("observation", ds.observation_space, env.observation_space), ("action", ds.action_space, env.action_space)):
        if not same_space(theirs, mine):
            raise ConfigError(
                f"{_accepted(source)} has {what} space {describe_space(theirs)}, but {env_id(name)} has {describe_space(mine)}; "
                f"accepted: a dataset recorded on {env_id(name)}"
            )
    if ds.total_episodes == 0:
        raise ConfigError(f"{_accepted(source)} holds no episodes; accepted: a dataset with at least one episode")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next_obs", "actions", "rewards", "terminated", "truncated")}
    returns, lengths = [], []
    for ep in ds.iterate_episodes():
        obs = np.asarray(ep.observations, dtype=np.float32)
        parts["obs"].append(obs[:-1])
        parts["next_obs"].append(obs[1:])
        parts["actions"].append(np.asarray(ep.actions))
        parts["rewards"].append(np.asarray(ep.rewards, dtype=np.float32))
        parts["terminated"].append(np.asarray(ep.terminations, dtype=bool))
        parts["truncated"].append(np.asarray(ep.truncations, dtype=bool))
        returns.append(float(np.sum(ep.rewards)))
        lengths.append(len(ep.rewards))
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["actions"] = out["actions"].astype(np.int64 if discrete else np.float32)
    out["ep_returns"] = np.asarray(returns, dtype=np.float64)
    out["ep_lengths"] = np.asarray(lengths, dtype=np.int64)
    return out, {"source": source, "dataset_dir": str(data_dir), "dataset_id": ds.spec.dataset_id, "metadata_sha256": digest(data_dir)}


def cache_path(source: str, root: Path, name: str) -> Path:
    """Where the dataset ``source`` converted for env ``name`` is kept under the demos root ``root``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source[len(PREFIX) :]).strip("_")
    return root / name / "minari" / f"{slug}.npz"


@dataclass(frozen=True)
class DatasetRecord:
    """The expert record of a Minari-sourced job with no expert: the dataset's mean episode return
    stands for the expert's, and a random policy's is measured once; both are recorded beside the set.

    :param name: the env's short name.
    :param path: the converted set (``<name>.npz``; its ``.json`` describes the dataset's returns).
    """

    name: str
    path: Path

    def info(self) -> dict[str, Any]:
        """The record (the keys an ``expert.json`` has for the normalised score), measured on first use."""
        record = self.path.with_name(self.path.stem + ".expert.json")
        if record.is_file():
            return json.loads(record.read_text())
        meta = json.loads(self.path.with_suffix(".json").read_text())
        info = {
            "algorithm": "minari dataset",
            "env": self.name,
            "env_id": meta["env_id"],
            "source": meta["source"],
            "return_mean": meta["return_mean"],
            "return_std": meta["return_std"],
            **random_record(self.name),
        }
        atomic_write_text(record, json.dumps(info, indent=2))
        return info


def export(data: dict[str, np.ndarray], meta: dict[str, Any], name: str, dataset_id: Optional[str], description: str) -> str:
    """Write a demo set as Minari dataset ``dataset_id``; returns the id.

    :param data: the set's arrays, as :func:`ail.demos.read_demo_file` returns them.
    :param meta: the set's metadata, likewise.
    :param name: the env's short name.
    :param dataset_id: the Minari id (None: ``ail/<name>/expert-v0``); an existing dataset is never replaced.
    :param description: the dataset's description in Minari's metadata.
    """
    import minari
    from minari.data_collector import EpisodeBuffer
    from minari.storage.local import get_dataset_path

    dataset_id = dataset_id or f"ail/{name}/expert-v0"
    if (Path(get_dataset_path(dataset_id)) / "data").exists():
        raise ConfigError(
            f"Minari dataset {dataset_id} already exists at {get_dataset_path(dataset_id)}; nothing was changed. "
            "accepted: another demo_set.export_id, or remove it first (minari delete)"
        )
    ends = np.cumsum(data["ep_lengths"])
    buffers = []
    for start, end in zip(np.concatenate([[0], ends[:-1]]), ends):
        obs = np.concatenate([data["obs"][start:end], data["next_obs"][end - 1 : end]])
        buffers.append(
            EpisodeBuffer(
                observations=list(obs),
                actions=list(data["actions"][start:end]),
                rewards=data["rewards"][start:end].tolist(),
                terminations=data["terminated"][start:end].tolist(),
                truncations=data["truncated"][start:end].tolist(),
            )
        )
    target = Path(get_dataset_path(dataset_id))
    try:
        algorithm = f"ail expert ({meta['expert'].get('algorithm')})"
        minari.create_dataset_from_buffers(dataset_id, buffers, env=env_id(name), algorithm_name=algorithm, description=description)
    except BaseException as exc:
        shutil.rmtree(target, ignore_errors=True)  # it did not exist before: no half-written dataset stays
        if isinstance(exc, ValueError):  # e.g. an id Minari does not accept
            raise ConfigError(f"demo_set.export_id={dataset_id} is invalid ({exc}); accepted: a Minari id such as ail/{name}/expert-v0") from None
        raise
    return dataset_id
