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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from ail.errors import ConfigError

FILES: dict[str, "ExpertFile"] = {}  # env name -> its expert file, for this process's job


@dataclass(frozen=True)
class ExpertFile:
    """:param path: the SB3 model file. :param algo: its algorithm (None: read from the file).
    :param record_dir: where the once-measured returns are kept (``<paths.demos>/<env name>``)."""

    path: Path
    algo: Optional[str]
    record_dir: Path


def use_expert_file(cfg: DictConfig) -> None:
    """Register the job's ``env.expert.path`` (if any) for its env; a missing file or one for other
    spaces is one ConfigError, before any run directory."""
    from ail.paths import demos_root

    name = str(cfg.env.name)
    path = OmegaConf.select(cfg, "env.expert.path", default=None)
    if path is None:
        FILES.pop(name, None)
        return
    path = Path(str(path)).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"env.expert.path={path} is not a file; accepted: an SB3 model.zip (vecnormalize.pkl beside it is used)")
    algo = OmegaConf.select(cfg, "env.expert.algo", default=None)
    FILES[name] = ExpertFile(path, None if algo is None else str(algo), demos_root(cfg.paths.demos) / name)
    load(name)  # the file's spaces and algorithm, checked now


def load(name: str) -> Any:
    """The registered expert of env ``name`` as a :class:`ail.policy.LoadedPolicy`."""
    from ail.envs import env_id, make_env
    from ail.policy import LoadedPolicy, ObsNormalizer
    from ail.sb3_files import load_model_file, sha256

    ref = FILES[name]
    env = make_env(name)
    policy, algo = load_model_file(ref.path, ref.algo, env, env_id(name))
    env.close()
    stats = ref.path.parent / "vecnormalize.pkl"
    normalizer = ObsNormalizer.from_vecnormalize(stats) if stats.is_file() else None
    return LoadedPolicy(policy, normalizer, meta={"file": str(ref.path), "sha256": sha256(ref.path), "algorithm": algo})


def info(name: str) -> dict[str, Any]:
    """The registered expert's record: expert.json beside the file (same env id), else measured once."""
    from ail.envs import env_id
    from ail.sb3_files import sha256

    ref = FILES[name]
    beside = ref.path.parent / "expert.json"
    if beside.is_file():
        try:
            meta = json.loads(beside.read_text())
        except ValueError:
            meta = {}
        if meta.get("env_id") == env_id(name):
            return meta
    digest = sha256(ref.path)
    record = ref.record_dir / f"expert-{digest[:12]}.json"
    if record.is_file():
        return json.loads(record.read_text())
    return _measure(name, digest, record)


def _measure(name: str, digest: str, record: Path) -> dict[str, Any]:
    from ail.envs import env_id
    from ail.evaluation import evaluate, random_policy_returns, stats
    from ail.experts import FINAL_EVAL_EPISODES, FINAL_EVAL_SEED
    from ail.paths import atomic_write_text

    expert = load(name)
    print(f"[expert] measuring {FILES[name].path} and a random policy on {env_id(name)} ({FINAL_EVAL_EPISODES} episodes each), once", flush=True)
    ret = evaluate(expert.predict, name, FINAL_EVAL_EPISODES, seed=FINAL_EVAL_SEED)
    rand = random_policy_returns(name, FINAL_EVAL_EPISODES, seed=FINAL_EVAL_SEED)
    meta = {
        "algorithm": expert.meta["algorithm"],
        "env": name,
        "env_id": env_id(name),
        "file": str(FILES[name].path),
        "sha256": digest,
        "eval_episodes": FINAL_EVAL_EPISODES,
        "deterministic": True,
        **{k: round(v, 3) for k, v in stats(ret).items()},
        "random_return_mean": round(float(rand.mean()), 3),
        "random_return_std": round(float(rand.std()), 3),
    }
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps(meta, indent=2))
    return meta
