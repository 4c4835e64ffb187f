"""Experts from any SB3 file: ``env.expert.path=<model.zip>`` (``env.expert.algo``, else read from the file).

The file is used offline as it is, for the demonstrations and for the normalised score, and is
never trusted: :mod:`ail.sb3_files` loads it without running pickled code, checks its spaces
against the env, and reads ``vecnormalize.pkl`` beside it when present.

The normalised score needs the expert's return and a random policy's. An ``expert.json`` beside the
file for the same env id (a directory this platform wrote, e.g. ``experts/hopper/``) gives both, so
``env=gym env.id=Hopper-v5 env.expert.path=experts/hopper/model.zip`` scores as ``env=hopper``.
Otherwise both are measured once, as the shipped experts' were (50 deterministic episodes from
reset seed 100,000, and a uniformly random policy on the same starts), and recorded in
``<paths.demos>/<env name>/expert-<sha256[:12]>.json``, where every later job reads them.

A job refers to its file through its demonstration source (:func:`ail.demo_source.demo_source`), not
through any state of the process: a spawned worker, or a second job in the same process, sees only
what its own config names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ail.envs import env_id, make_env
from ail.errors import ConfigError
from ail.evaluation import FINAL_EVAL_EPISODES, FINAL_EVAL_SEED, evaluate, random_record, stats
from ail.paths import atomic_write_text
from ail.policy import LoadedPolicy, ObsNormalizer
from ail.sb3_files import load_model_file, sha256


@dataclass(frozen=True)
class ExpertFile:
    """A user's SB3 model file as a job's expert.

    :param name: the env's short name.
    :param path: the SB3 model file.
    :param algo: its algorithm (None: read from the file).
    :param record_dir: where the once-measured returns are kept (``<paths.demos>/<env name>``).
    """

    name: str
    path: Path
    algo: Optional[str]
    record_dir: Path

    @classmethod
    def open(cls, name: str, path: str, algo: Optional[str], record_dir: Path) -> "ExpertFile":
        """The job's ``env.expert.path``, checked: a missing file, or one for other spaces or of
        another algorithm, is one ConfigError.

        :param name: the env's short name.
        :param path: ``env.expert.path`` (``~`` and relative paths allowed).
        :param algo: ``env.expert.algo`` (None: read from the file).
        :param record_dir: where the once-measured returns are kept.
        """
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_file():
            raise ConfigError(f"env.expert.path={resolved} is not a file; accepted: an SB3 model.zip (vecnormalize.pkl beside it is used)")
        ref = cls(name, resolved, algo, record_dir)
        ref._policy()  # the file's spaces and algorithm, checked now
        return ref

    def _policy(self) -> LoadedPolicy:
        env = make_env(self.name)
        policy, algo = load_model_file(self.path, self.algo, env, env_id(self.name))
        env.close()
        stats_file = self.path.parent / "vecnormalize.pkl"
        normalizer = ObsNormalizer.from_vecnormalize(stats_file) if stats_file.is_file() else None
        return LoadedPolicy(policy, normalizer, meta={"file": str(self.path), "sha256": sha256(self.path), "algorithm": algo})

    def load(self, info: Optional[dict[str, Any]] = None) -> LoadedPolicy:
        """The expert as a policy (``.predict(raw_obs) -> action``), its record in ``meta``.

        :param info: its already read :meth:`info`, to skip reading it again.
        """
        policy = self._policy()
        policy.meta.update(self.info() if info is None else info)
        return policy

    def info(self) -> dict[str, Any]:
        """The expert's record: expert.json beside the file (same env id), else measured once."""
        beside = self.path.parent / "expert.json"
        if beside.is_file():
            try:
                meta = json.loads(beside.read_text())
            except ValueError:
                meta = {}
            if meta.get("env_id") == env_id(self.name):
                return meta
        digest = sha256(self.path)
        record = self.record_dir / f"expert-{digest[:12]}.json"
        if record.is_file():
            return json.loads(record.read_text())
        return self._measure(digest, record)

    def _measure(self, digest: str, record: Path) -> dict[str, Any]:
        expert = self._policy()
        print(f"[expert] measuring {self.path} and a random policy on {env_id(self.name)} ({FINAL_EVAL_EPISODES} episodes each), once", flush=True)
        ret = evaluate(expert.predict, self.name, FINAL_EVAL_EPISODES, seed=FINAL_EVAL_SEED)
        meta = {
            "algorithm": expert.meta["algorithm"],
            "env": self.name,
            "env_id": env_id(self.name),
            "file": str(self.path),
            "sha256": digest,
            "eval_episodes": FINAL_EVAL_EPISODES,
            "deterministic": True,
            **{k: round(v, 3) for k, v in stats(ret).items()},
            **random_record(self.name),
        }
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps(meta, indent=2))
        return meta
