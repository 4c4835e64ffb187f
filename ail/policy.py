"""One saved-policy contract for experts and learners: ``predict(raw_obs) -> env action``.

A saved policy directory holds an SB3 file (``model.zip`` — a whole algorithm — or
``policy.zip`` — a bare SB3 policy), optional observation statistics, and ``policy.json``
saying how to rebuild the input the network was trained on (normalisation, absorbing flag).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from stable_baselines3.common.policies import BasePolicy

from ail.errors import ConfigError

POLICY_FORMAT_VERSION = 1


class ObsNormalizer:
    """``clip((obs - mean) / sqrt(var + eps), -clip, clip)``, the transform of SB3's VecNormalize."""

    def __init__(self, mean: np.ndarray, var: np.ndarray, clip: float = 10.0, eps: float = 1e-8):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.var = np.asarray(var, dtype=np.float64)
        self.clip = float(clip)
        self.eps = float(eps)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        out = (np.asarray(obs, dtype=np.float64) - self.mean) / np.sqrt(self.var + self.eps)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "clip": self.clip, "eps": self.eps}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ObsNormalizer":
        return cls(np.array(d["mean"]), np.array(d["var"]), d["clip"], d["eps"])

    @classmethod
    def from_vecnormalize(cls, path: Path) -> "ObsNormalizer":
        """The observation statistics of an SB3 ``vecnormalize.pkl``, read without running pickled code."""
        from ail.sb3_files import read_vecnormalize

        vn = read_vecnormalize(Path(path))
        return cls(vn.obs_rms.mean, vn.obs_rms.var, vn.clip_obs, vn.epsilon)


class LoadedPolicy:
    """A trained policy that acts on the environment's raw observations.

    ``predict(obs)`` takes one observation of the env's shape (or a batch with a leading
    axis) and returns an action of the env's action space (or a batch of them).
    """

    def __init__(
        self,
        policy: BasePolicy,
        normalizer: Optional[ObsNormalizer] = None,
        absorbing: bool = False,
        meta: Optional[dict[str, Any]] = None,
    ):
        self.policy = policy.eval()
        self.normalizer = normalizer
        self.absorbing = absorbing
        self.meta = meta or {}

    def preprocess(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if self.normalizer is not None:
            obs = self.normalizer(obs)
        if self.absorbing:
            pad = np.zeros(obs.shape[:-1] + (1,), dtype=np.float32)
            obs = np.concatenate([obs, pad], axis=-1)
        return obs

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        with torch.no_grad():
            action, _ = self.policy.predict(self.preprocess(obs), deterministic=deterministic)
        return action


def _import(qualname: str) -> type:
    module, _, name = qualname.rpartition(".")
    return getattr(importlib.import_module(module), name)


def save_policy(
    directory: Union[str, Path],
    policy: BasePolicy,
    normalizer: Optional[ObsNormalizer] = None,
    absorbing: bool = False,
    meta: Optional[dict[str, Any]] = None,
) -> Path:
    """Write ``policy.zip`` + ``policy.json`` into ``directory`` (created); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    policy.save(str(directory / "policy.zip"))
    spec = {
        "format_version": POLICY_FORMAT_VERSION,
        "file": "policy.zip",
        "kind": "policy",
        "class": f"{type(policy).__module__}.{type(policy).__qualname__}",
        "normalizer": normalizer.to_dict() if normalizer is not None else None,
        "absorbing": absorbing,
        "meta": meta or {},
    }
    (directory / "policy.json").write_text(json.dumps(spec, indent=2))
    return directory


def load_policy_dir(directory: Union[str, Path]) -> LoadedPolicy:
    """Load what :func:`save_policy` (or the expert trainer) wrote."""
    directory = Path(directory)
    spec_path = directory / "policy.json"
    if not spec_path.is_file():
        raise ConfigError(f"no policy.json in {directory}: not a saved policy directory")
    spec = json.loads(spec_path.read_text())
    if spec.get("format_version") != POLICY_FORMAT_VERSION:
        raise ConfigError(f"{spec_path}: policy format {spec.get('format_version')} unsupported (accepted: {POLICY_FORMAT_VERSION})")
    cls = _import(spec["class"])
    path = directory / spec["file"]
    try:
        if spec["kind"] == "model":
            policy = cls.load(str(path), device="cpu").policy
        else:
            policy = cls.load(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user-facing error
        raise ConfigError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
    normalizer = None
    if spec.get("normalizer"):
        normalizer = ObsNormalizer.from_dict(spec["normalizer"])
    elif spec.get("vecnormalize"):
        normalizer = ObsNormalizer.from_vecnormalize(directory / spec["vecnormalize"])
    return LoadedPolicy(policy, normalizer, bool(spec.get("absorbing", False)), spec.get("meta", {}))


def load_policy(run_dir: Union[str, Path]) -> LoadedPolicy:
    """The final policy of a training run: ``ail.load_policy("runs/default/bc-hopper-d4/seed0")``."""
    run_dir = Path(run_dir)
    for candidate in (run_dir / "policy", run_dir):
        if (candidate / "policy.json").is_file():
            return load_policy_dir(candidate)
    raise ConfigError(f"no saved policy in {run_dir} (expected {run_dir / 'policy' / 'policy.json'}); has the run finished?")
