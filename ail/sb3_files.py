"""SB3 model files from elsewhere (rl-zoo3, a model hub, a colleague), loaded without running their code.

An SB3 ``model.zip`` holds tensors (``policy.pth``, read by SB3 with ``torch.load(weights_only=True)``)
and a JSON ``data`` file whose non-JSON entries are cloudpickled: the spaces, the policy class, its
keyword arguments, schedules (often lambdas, pickled by value: code), buffers. Unpickling those
runs whatever the file's author put there. Here every pickled entry is read by
:class:`SafeUnpickler`, which builds only numpy arrays, gymnasium spaces, SB3 policy classes, torch
activation classes, SB3's running statistics and schedule objects and a few builtin containers;
anything else is refused. Entries the policy needs (spaces, policy class and keyword arguments)
must pass; the others (schedules, buffers) are replaced through SB3's public ``custom_objects``
when refused, as inference does not use them. ``vecnormalize.pkl`` is read the same way.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import torch
from stable_baselines3.common.policies import BasePolicy

from ail.envs import describe_space
from ail.errors import ConfigError

# The algorithm classes a file may be loaded as (env.expert.algo), and the data keys that tell them apart.
ALGOS = {
    "ppo": "stable_baselines3.PPO",
    "a2c": "stable_baselines3.A2C",
    "sac": "stable_baselines3.SAC",
    "td3": "stable_baselines3.TD3",
    "ddpg": "stable_baselines3.DDPG",
    "dqn": "stable_baselines3.DQN",
    "trpo": "sb3_contrib.TRPO",
}
SIGNATURES = [  # (algo, keys only its files hold), most specific first
    ("trpo", {"cg_max_steps", "target_kl"}),
    ("ppo", {"clip_range", "n_epochs"}),
    ("a2c", {"normalize_advantage", "vf_coef"}),
    ("dqn", {"exploration_rate", "target_update_interval"}),
    ("sac", {"ent_coef", "target_entropy"}),
    ("td3", {"policy_delay", "target_noise_clip"}),
]
NEEDED = ("observation_space", "action_space", "policy_class", "policy_kwargs")
SCHEDULES = ("lr_schedule", "learning_rate", "clip_range", "clip_range_vf", "exploration_schedule")
_NUMPY = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.random._pcg64", "PCG64"),
    ("numpy.random._pcg64", "PCG64DXSM"),
    ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._philox", "Philox"),
    ("numpy.random._sfc64", "SFC64"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),  # Cython's state setter of the class above
}
_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "slice", "complex", "float", "int", "bool", "str", "bytes", "bytearray", "range"}


@functools.cache
def _allowed_kinds() -> tuple[type, ...]:
    """Classes only (building one runs its constructor, not the file's code), of these kinds only."""
    from stable_baselines3.common.buffers import BaseBuffer
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
    from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, LinearSchedule
    from stable_baselines3.common.vec_env import VecNormalize

    torch_and_gym = (gym.Space, torch.nn.Module, torch.optim.Optimizer)
    schedules = (ConstantSchedule, FloatSchedule, LinearSchedule)
    return torch_and_gym + (BaseBuffer, RunningMeanStd, VecNormalize, TrainFreq, TrainFrequencyUnit) + schedules


class Refused(Exception):
    """A pickle asked for a global outside :class:`SafeUnpickler`'s list."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickles data (arrays, spaces, policy classes, activations, running statistics), never code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        if module == "builtins" and name in _BUILTINS:
            return super().find_class(module, name)
        if module == "collections" and name in ("deque", "OrderedDict"):
            return super().find_class(module, name)
        if module.startswith(("gymnasium.spaces", "stable_baselines3.", "sb3_contrib.", "torch.nn.modules.", "torch.optim.")):
            obj = getattr(importlib.import_module(module), name, None)
            if isinstance(obj, type) and issubclass(obj, _allowed_kinds()):
                return obj
        raise Refused(f"{module}.{name}")


def safe_loads(data: bytes) -> Any:
    return SafeUnpickler(io.BytesIO(data)).load()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_data(path: Path) -> dict[str, Any]:
    """The ``data`` JSON of an SB3 model file; a file that is not one is one ConfigError."""
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("data"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ConfigError(
            f"env.expert.path={path} is not an SB3 model file ({type(exc).__name__}: {exc}); accepted: a model.zip saved by SB3's model.save"
        ) from None


def infer_algo(data: dict[str, Any], path: Path) -> str:
    for algo, keys in SIGNATURES:
        if keys <= data.keys():
            return algo
    raise ConfigError(f"cannot tell the algorithm of {path} from its contents; accepted: env.expert.algo={'|'.join(ALGOS)}")


def decoded_entries(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Every pickled entry of ``data``, decoded safely, as SB3's ``custom_objects``."""
    from stable_baselines3.common.utils import FloatSchedule

    custom: dict[str, Any] = {}
    for key, item in data.items():
        if not (isinstance(item, dict) and ":serialized:" in item):
            continue
        try:
            custom[key] = safe_loads(base64.b64decode(item[":serialized:"].encode()))
        except Refused as exc:
            if key in NEEDED:
                raise ConfigError(
                    f"{path}: its pickled '{key}' needs {exc}, which is not loaded from a file from elsewhere; "
                    "accepted: SB3 files whose spaces, policy class and policy_kwargs are plain data, SB3 classes and torch activations"
                ) from None
            custom[key] = FloatSchedule(0.0) if key in SCHEDULES else None  # unused for acting
        except Exception as exc:  # noqa: BLE001 - a corrupt entry
            raise ConfigError(f"{path}: its entry '{key}' cannot be read ({type(exc).__name__}: {exc})") from None
    return custom


def check_spaces(file_obs: gym.Space, file_act: gym.Space, env: gym.Env, path: Path, gym_id: str) -> None:
    for what, mine, theirs in (("observation", file_obs, env.observation_space), ("action", file_act, env.action_space)):
        same = (
            type(mine) is type(theirs)
            and getattr(mine, "shape", None) == getattr(theirs, "shape", None)
            and getattr(mine, "n", None) == getattr(theirs, "n", None)
        )
        if not same:
            raise ConfigError(
                f"env.expert.path={path} is for {what} space {describe_space(mine)}, but {gym_id} has {describe_space(theirs)}; "
                f"accepted: an expert trained on {gym_id}"
            )


def load_model_file(path: Path, algo: Optional[str], env: gym.Env, gym_id: str) -> tuple[BasePolicy, str]:
    """The policy of SB3 file ``path`` (its algorithm ``algo``, or read from the file), checked against ``env``'s spaces."""
    data = read_data(path)
    algo = algo or infer_algo(data, path)
    if algo not in ALGOS:
        raise ConfigError(f"env.expert.algo={algo} is invalid; accepted: {', '.join(ALGOS)}")
    custom = decoded_entries(data, path)
    check_spaces(custom["observation_space"], custom["action_space"], env, path, gym_id)
    module, _, cls_name = ALGOS[algo].rpartition(".")
    cls = getattr(importlib.import_module(module), cls_name)
    try:
        model = cls.load(str(path), device="cpu", custom_objects=custom)
    except Exception as exc:  # noqa: BLE001 - a file of another algorithm or a damaged one: one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"cannot load {path} as {algo}: {type(exc).__name__}: {first}; accepted: env.expert.algo=<its algorithm>") from None
    return model.policy, algo


def read_vecnormalize(path: Path) -> Any:
    """A ``vecnormalize.pkl`` (SB3's VecNormalize, pickled without its env), read with :class:`SafeUnpickler`."""
    try:
        return safe_loads(path.read_bytes())
    except Refused as exc:
        raise ConfigError(
            f"{path}: it needs {exc}, which is not loaded from a file; accepted: a vecnormalize.pkl saved by SB3's VecNormalize.save"
        ) from None
    except Exception as exc:  # noqa: BLE001 - truncated or not a pickle
        raise ConfigError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}); accepted: a vecnormalize.pkl saved by SB3's VecNormalize.save"
        ) from None
