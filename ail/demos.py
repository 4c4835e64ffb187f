"""Expert demonstrations: a versioned compressed format, the cache of sets (rolled out from an expert
or converted from a Minari dataset), and the loader, where the set is checked against the env.

Where a set and its expert come from is decided once, in :mod:`ail.demo_source`: :func:`ensure_set`
and :func:`load_set` take that decision (a :class:`ail.demo_source.DemoSource`);
:func:`ensure_demos` and :func:`load_demos` are the same for library calls by env name.

File format (version 1): ``<name>.npz`` (numpy, compressed, no pickles) holding per-step arrays
concatenated over trajectories, in episode order:

| key | shape | meaning |
|---|---|---|
| obs, next_obs | (T, obs_dim) float32 | raw observations s_t, s_{t+1} (the true final obs at episode end) |
| actions | (T, act_dim) float32, or (T,) int64 for discrete | action sent to the env |
| rewards | (T,) float32 | true env reward |
| terminated, truncated | (T,) bool | gymnasium's split; at most one step per episode is True |
| ep_returns, ep_lengths | (N,) float64 / int64 | per trajectory; sum(ep_lengths) == T |
| qpos, qvel | (T, nq), (T, nv) float64 | MuJoCo state at s_t (MuJoCo tasks only) |

A sidecar ``<name>.json`` holds the metadata (format version, env id, expert provenance,
generation settings, return statistics) and is also embedded in the npz as ``meta``.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

import gymnasium as gym
import numpy as np

from ail import minari_io
from ail.demo_source import DemoSource, DemoSpec, resolve
from ail.envs import env_id, is_mujoco, make_env
from ail.errors import ConfigError
from ail.paths import atomic_write_text

DEMO_FORMAT_VERSION = 1


@dataclass
class Demos:
    """(s, a, s') pairs picked from a demonstration set; per-step arrays share their first axis."""

    obs: np.ndarray
    actions: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    rewards: np.ndarray
    ep_returns: np.ndarray  # (n,) returns of the chosen trajectories
    traj_index: np.ndarray  # (pairs,) which chosen trajectory each pair comes from
    meta: dict[str, Any]
    qpos: Optional[np.ndarray] = None  # (pairs, nq) MuJoCo state at s (MuJoCo sets only): mgail's expert starts
    qvel: Optional[np.ndarray] = None  # (pairs, nv)

    def __len__(self) -> int:
        return len(self.obs)


def generate_demos(source: DemoSource, expert: Any, max_attempts_factor: int = 20) -> dict[str, np.ndarray]:
    """Roll ``expert.predict`` out until ``source.spec.trajectories`` episodes pass ``source.spec.min_return``.

    :param source: the set to generate.
    :param expert: its expert's policy (``source.expert.load()``).
    :param max_attempts_factor: episodes tried per wanted trajectory before giving up.
    """
    name, spec = source.name, source.spec
    env = make_env(name)
    mujoco = is_mujoco(name)
    steps: dict[str, list] = {k: [] for k in ("obs", "next_obs", "actions", "rewards", "terminated", "truncated", "qpos", "qvel")}
    returns, lengths = [], []
    attempts = 0
    while len(returns) < spec.trajectories:
        if attempts >= max_attempts_factor * spec.trajectories:
            raise ConfigError(
                f"only {len(returns)} of {attempts} expert episodes reached demo_set.min_return={spec.min_return}; lower it or improve the expert"
            )
        obs, _ = env.reset(seed=spec.seed * 100_003 + attempts)
        env.action_space.seed(spec.seed * 100_003 + attempts)
        attempts += 1
        ep: dict[str, list] = {k: [] for k in steps}
        done, ret = False, 0.0
        while not done:
            action = expert.predict(obs, deterministic=spec.deterministic)
            if mujoco:
                ep["qpos"].append(env.unwrapped.data.qpos.copy())
                ep["qvel"].append(env.unwrapped.data.qvel.copy())
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for k, v in (
                ("obs", obs),
                ("next_obs", next_obs),
                ("actions", action),
                ("rewards", reward),
                ("terminated", terminated),
                ("truncated", truncated),
            ):
                ep[k].append(v)
            ret += float(reward)
            obs, done = next_obs, terminated or truncated
        if spec.min_return is not None and ret < spec.min_return:
            continue
        for k in steps:
            steps[k].extend(ep[k])
        returns.append(ret)
        lengths.append(len(ep["obs"]))
    env.close()
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    data = {
        "obs": np.asarray(steps["obs"], dtype=np.float32),
        "next_obs": np.asarray(steps["next_obs"], dtype=np.float32),
        "actions": np.asarray(steps["actions"], dtype=np.int64 if discrete else np.float32),
        "rewards": np.asarray(steps["rewards"], dtype=np.float32),
        "terminated": np.asarray(steps["terminated"], dtype=bool),
        "truncated": np.asarray(steps["truncated"], dtype=bool),
        "ep_returns": np.asarray(returns, dtype=np.float64),
        "ep_lengths": np.asarray(lengths, dtype=np.int64),
    }
    if mujoco:
        data["qpos"] = np.asarray(steps["qpos"], dtype=np.float64)
        data["qvel"] = np.asarray(steps["qvel"], dtype=np.float64)
    data["_attempts"] = np.asarray(attempts)
    return data


def save_demos(path: Path, data: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write atomically: a crash never leaves a half-written file under the final name, and two
    processes generating the same set at once (parallel jobs or tests) each write their own temporary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, meta=np.asarray(json.dumps(meta)), **data)
    tmp.replace(path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2))


EXPERT_KEYS = ("algorithm", "training_steps", "return_mean", "return_std", "git_sha")


def _cached_expert(path: Path) -> Optional[dict[str, Any]]:
    """The expert record of a cached set (None when its metadata is unreadable: the set is kept)."""
    try:
        return json.loads(path.with_suffix(".json").read_text())["expert"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_set(source: DemoSource) -> Path:
    """Path of the set ``source`` names; rolled out from its expert, or converted from its dataset, and
    cached when missing (again when the expert or the dataset changed)."""
    if source.dataset is not None:
        return _ensure_minari(source)
    name, spec, path = source.name, source.spec, source.path
    if spec.trajectories <= 0:
        raise ConfigError(f"demo_set.trajectories={spec.trajectories} is invalid; accepted: a positive integer")
    try:
        info = source.expert.info()
    except ConfigError:
        if path.is_file():  # a cached set needs no expert; with none to compare, it is used as it is
            return path
        raise
    made_by = {k: info.get(k) for k in EXPERT_KEYS} | ({"sha256": info["sha256"]} if "sha256" in info else {})  # env.expert.path
    if path.is_file():
        cached = _cached_expert(path)
        if cached is None or cached == made_by:
            return path
        # A replaced expert (expert.replace=true) makes every set rolled out from the old one stale.
        print(f"[demos] {path} was rolled out by another expert ({cached}); regenerating it from the shipped one", flush=True)
    expert = source.expert.load(info)
    print(f"[demos] generating {spec.trajectories} {env_id(name)} trajectories from the expert -> {path}", flush=True)
    data = generate_demos(source, expert)
    attempts = int(data.pop("_attempts"))
    save_demos(path, data, _meta(name, data, episodes_rolled_out=attempts, spec=asdict(spec), expert=made_by))
    return path


def ensure_demos(
    name: str, spec: Optional[DemoSpec] = None, root: Optional[Union[str, Path]] = None, experts: Optional[Union[str, Path]] = None
) -> Path:
    """Path of the demo set for ``spec``; generated from the shipped expert (and cached) when missing.

    :param name: the env's short name.
    :param spec: the set (None: the env config's default).
    :param root: the demos directory (None: ``paths.demos``'s default).
    :param experts: the experts directory (None: ``paths.experts``'s default).
    """
    return ensure_set(resolve(name, spec, root, experts))


def _meta(name: str, data: dict[str, np.ndarray], **extra: Any) -> dict[str, Any]:
    """A demo set's description (its ``.json`` and the ``meta`` entry of its ``.npz``)."""
    returns = data["ep_returns"]
    return {
        "format_version": DEMO_FORMAT_VERSION,
        "env": name,
        "env_id": env_id(name),
        "n_trajectories": int(len(data["ep_lengths"])),
        "n_transitions": int(len(data["obs"])),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        **extra,
    }


def _ensure_minari(source: DemoSource) -> Path:
    """The Minari dataset of ``source`` converted to a demo set (once; again when the dataset changed)."""
    name, dataset, path = source.name, source.spec.source, source.path
    if path.is_file():
        try:
            if json.loads(path.with_suffix(".json").read_text()).get("metadata_sha256") == minari_io.digest(minari_io.dataset_dir(dataset)):
                return path
        except (OSError, ValueError):
            pass
    data, described = minari_io.read(dataset, name)
    meta = _meta(name, data, expert={"algorithm": "minari dataset", **described}, **described)
    print(f"[demos] {dataset}: {meta['n_trajectories']} episodes, {meta['n_transitions']} transitions -> {path}", flush=True)
    save_demos(path, data, meta)
    return path


def read_demo_file(path: Union[str, Path], name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load and validate a demo file for env ``name`` (env id, shapes, finiteness, lengths).

    This is where demonstrations meet the env: every set a run is given, whatever its source, is
    read here, and its observation and action arrays are checked against env ``name``'s spaces.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ConfigError(f"demos file {path} does not exist") from None
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as exc:
        raise ConfigError(f"demos file {path} is truncated or corrupt ({type(exc).__name__}: {exc}); delete it to regenerate") from None
    if "meta" not in data:
        raise ConfigError(f"demos file {path} has no metadata; not an ail demo file (format {DEMO_FORMAT_VERSION})")
    meta = json.loads(str(data.pop("meta")))
    if meta.get("format_version") != DEMO_FORMAT_VERSION:
        raise ConfigError(f"demos file {path} has format {meta.get('format_version')}; accepted: {DEMO_FORMAT_VERSION}")
    if meta.get("env_id") != env_id(name):
        raise ConfigError(f"demos file {path} is for {meta.get('env_id')}, but env={name} is {env_id(name)}")
    env = make_env(name)
    obs_shape, space = env.observation_space.shape, env.action_space
    env.close()
    required = ("obs", "next_obs", "actions", "rewards", "terminated", "truncated", "ep_returns", "ep_lengths")
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"demos file {path} lacks arrays {missing}")
    T = len(data["obs"])
    if data["obs"].shape[1:] != obs_shape or data["next_obs"].shape != data["obs"].shape:
        raise ConfigError(f"demos file {path}: obs shape {data['obs'].shape[1:]} does not match {env_id(name)}'s {obs_shape}")
    if isinstance(space, gym.spaces.Discrete):
        a = data["actions"]
        if a.shape != (T,) or not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= space.n:
            raise ConfigError(f"demos file {path}: actions of shape {a.shape} do not fit {env_id(name)}'s Discrete({space.n})")
    elif data["actions"].shape != (T,) + space.shape:
        raise ConfigError(f"demos file {path}: action shape {data['actions'].shape[1:]} does not match {env_id(name)}'s {space.shape}")
    for k in ("rewards", "terminated", "truncated"):
        if data[k].shape != (T,):
            raise ConfigError(f"demos file {path}: {k} has shape {data[k].shape}, expected ({T},)")
    if int(data["ep_lengths"].sum()) != T or (data["ep_lengths"] <= 0).any():
        raise ConfigError(f"demos file {path}: episode lengths sum to {int(data['ep_lengths'].sum())}, but it holds {T} steps")
    for k in ("obs", "next_obs", "actions", "rewards", "ep_returns"):
        if not np.all(np.isfinite(data[k])):
            raise ConfigError(f"demos file {path}: {k} contains NaN or inf")
    return data, meta


def load_set(source: DemoSource, n: int, subsample: int = 1, seed: Optional[int] = None) -> Demos:
    """Pick ``n`` trajectories of the set ``source`` names (made first when missing) and return their (s, a, s') pairs.

    :param source: the job's demonstration source.
    :param n: how many trajectories.
    :param subsample: keep every k-th pair of each trajectory from a random offset in ``[0, k)``
        (GAIL: k=20 on MuJoCo), seeded by ``seed`` (0 when None).
    :param seed: None takes the first ``n`` trajectories of the set (as SAM and GAIL do); an int
        draws ``n`` at random with that seed.
    """
    _check_counts(n, subsample)
    return _pick(ensure_set(source), source.name, n, subsample, seed)


def load_demos(
    env: str,
    n: int,
    subsample: int = 1,
    seed: Optional[int] = None,
    spec: Optional[DemoSpec] = None,
    path: Optional[Union[str, Path]] = None,
    root: Optional[Union[str, Path]] = None,
    experts: Optional[Union[str, Path]] = None,
) -> Demos:
    """Pick ``n`` expert trajectories of env ``env`` and return their (s, a, s') pairs.

    ``seed=None`` takes the first ``n`` trajectories of the set (as SAM and GAIL do); an int
    draws ``n`` at random with that seed. ``subsample=k`` keeps every k-th pair of each
    trajectory from a random offset in ``[0, k)`` (GAIL: k=20 on MuJoCo), seeded by ``seed``
    (0 when None). The set is generated from the shipped expert when missing.

    :param path: a demo file to read instead of the set ``spec`` names.
    :param root: the demos directory (None: ``paths.demos``'s default).
    :param experts: the experts directory (None: ``paths.experts``'s default).
    """
    if path is None:
        return load_set(resolve(env, spec, root, experts), n, subsample, seed)
    _check_counts(n, subsample)
    return _pick(Path(path), env, n, subsample, seed)


def _check_counts(n: int, subsample: int) -> None:
    if not isinstance(n, (int, np.integer)) or n <= 0:
        raise ConfigError(f"demos={n} is invalid; accepted: a positive integer")
    if not isinstance(subsample, (int, np.integer)) or subsample <= 0:
        raise ConfigError(f"subsample={subsample} is invalid; accepted: a positive integer")


def _pick(path: Path, env: str, n: int, subsample: int, seed: Optional[int]) -> Demos:
    """:func:`load_set`'s pairs from the demo file ``path`` of env ``env``."""
    data, meta = read_demo_file(path, env)
    total = len(data["ep_lengths"])
    if n > total:
        raise ConfigError(f"demos={n} but {path} holds {total} trajectories; accepted: 1..{total}")
    rng = np.random.default_rng(0 if seed is None else seed)
    chosen = np.arange(n) if seed is None else np.sort(rng.choice(total, size=n, replace=False))
    starts = np.concatenate([[0], np.cumsum(data["ep_lengths"])[:-1]])
    idx, owner = [], []
    for j, t in enumerate(chosen):
        length = int(data["ep_lengths"][t])
        offset = int(rng.integers(subsample)) if subsample > 1 else 0
        steps = np.arange(min(offset, length - 1), length, subsample)
        idx.append(starts[t] + steps)
        owner.append(np.full(len(steps), j))
    sel = np.concatenate(idx)
    return Demos(
        obs=data["obs"][sel],
        actions=data["actions"][sel],
        next_obs=data["next_obs"][sel],
        terminated=data["terminated"][sel],
        truncated=data["truncated"][sel],
        rewards=data["rewards"][sel],
        ep_returns=data["ep_returns"][chosen],
        traj_index=np.concatenate(owner),
        meta={**meta, "path": str(path), "chosen": chosen.tolist(), "subsample": int(subsample)},
        qpos=data["qpos"][sel] if "qpos" in data else None,
        qvel=data["qvel"][sel] if "qvel" in data else None,
    )
