"""The one place the learners reach into Stable-Baselines3's private training state, and read
SB3 hyperparameters in rl-baselines3-zoo's notation (:func:`parse_schedule`).

Our learners drive SB3 algorithms round by round (collect, then our own update, then SB3's)
instead of through ``learn()``, and checkpoint them mid-training with their envs; SB3's public
API has neither (``save()`` drops the rollout position: the last observation, episode starts,
episode-info buffer, update count). Everything here is what ``learn()`` itself does or keeps
between rounds, named once so an SB3 upgrade that renames it breaks one file. Only GAIL's
on-policy generators (PPO, TRPO) are driven this way. (SAM uses none of it: it collects and
updates on its own, with SB3's public classes only.)
"""

from __future__ import annotations

from typing import Any, Optional

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv


def parse_schedule(value: Any) -> Any:
    """``"lin_3e-4"`` -> a linear decay to 0 over training (rl-baselines3-zoo's notation); any other value as it is."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda progress_remaining: progress_remaining * start
    return value


class SB3Progress:
    """A model's training position: set up as ``learn(total)`` would, collected round by round, saved and restored.

    :param model: an SB3 on-policy algorithm (PPO, sb3-contrib's TRPO).
    :param total: the ``total_timesteps`` its schedules (learning-rate, clip range) anneal over.
    :param callback: called as ``learn()`` would call it during collection.
    """

    def __init__(self, model: OnPolicyAlgorithm, total: int, callback: Optional[BaseCallback] = None):
        self.model, self.total = model, int(total)
        _, self.callback = model._setup_learn(self.total, callback=callback, reset_num_timesteps=True, progress_bar=False)

    @property
    def n_updates(self) -> int:
        return int(self.model._n_updates)

    def collect(self, env: VecEnv) -> None:
        """One round of collection: ``n_steps`` per env."""
        m: Any = self.model
        m._update_current_progress_remaining(m.num_timesteps, self.total)
        m.collect_rollouts(env, self.callback, m.rollout_buffer, n_rollout_steps=m.n_steps)

    def train_logs(self) -> dict[str, float]:
        """The last ``train()`` call's ``train/*`` values, as ``g_<name>`` columns."""
        return {f"g_{k.split('/')[-1]}": float(v) for k, v in self.model.logger.name_to_value.items() if k.startswith("train/")}

    def state_dict(self) -> dict[str, Any]:
        m: Any = self.model
        return {
            "parameters": m.get_parameters(),
            "num_timesteps": m.num_timesteps,
            "n_updates": m._n_updates,
            "last_obs": m._last_obs,
            "last_episode_starts": m._last_episode_starts,
            "ep_info_buffer": list(m.ep_info_buffer),
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        m: Any = self.model
        m.set_parameters(s["parameters"], exact_match=True, device=m.device)
        m.num_timesteps, m._n_updates = s["num_timesteps"], s["n_updates"]
        m._last_obs, m._last_episode_starts = s["last_obs"], s["last_episode_starts"]
        m.ep_info_buffer.clear()
        m.ep_info_buffer.extend(s["ep_info_buffer"])
