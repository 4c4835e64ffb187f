"""The one place the learners reach into Stable-Baselines3's private training state.

Our learners drive SB3 algorithms round by round (collect, then our own update, then SB3's)
instead of through ``learn()``, and checkpoint them mid-training with their envs; SB3's public
API has neither (``save()`` drops the rollout position: the last observation, episode starts,
episode-info buffer, update count). Everything here is what ``learn()`` itself does or keeps
between rounds, named once so an SB3 upgrade that renames it breaks one file. (SAM uses none of
it: it collects and updates on its own, with SB3's public classes only.)
"""

from __future__ import annotations

from typing import Any, Optional

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv


class SB3Progress:
    """A model's training position: set up as ``learn(total)`` would, collected round by round, saved and restored.

    :param model: an SB3 on-policy (PPO, TRPO) or off-policy (TD3, DDPG) algorithm.
    :param total: the ``total_timesteps`` its schedules (learning-rate, clip range) anneal over.
    :param callback: called as ``learn()`` would call it during collection.
    """

    def __init__(self, model: BaseAlgorithm, total: int, callback: Optional[BaseCallback] = None):
        self.model, self.total = model, int(total)
        _, self.callback = model._setup_learn(self.total, callback=callback, reset_num_timesteps=True, progress_bar=False)
        self.off_policy = isinstance(model, OffPolicyAlgorithm)

    @property
    def n_updates(self) -> int:
        return int(self.model._n_updates)

    def collect(self, env: VecEnv) -> None:
        """One round of collection: ``n_steps`` per env (on-policy) or ``train_freq`` (off-policy, with its action noise)."""
        m: Any = self.model
        if self.off_policy:
            m.collect_rollouts(env, self.callback, m.train_freq, m.replay_buffer, m.action_noise, m.learning_starts)
        else:
            m._update_current_progress_remaining(m.num_timesteps, self.total)
            m.collect_rollouts(env, self.callback, m.rollout_buffer, n_rollout_steps=m.n_steps)

    def train_logs(self) -> dict[str, float]:
        """The last ``train()`` call's ``train/*`` values, as ``g_<name>`` columns."""
        return {f"g_{k.split('/')[-1]}": float(v) for k, v in self.model.logger.name_to_value.items() if k.startswith("train/")}

    def state_dict(self) -> dict[str, Any]:
        m: Any = self.model
        state = {
            "parameters": m.get_parameters(),
            "num_timesteps": m.num_timesteps,
            "n_updates": m._n_updates,
            "last_obs": m._last_obs,
            "last_episode_starts": m._last_episode_starts,
            "ep_info_buffer": list(m.ep_info_buffer),
        }
        if self.off_policy:
            # Before learning_starts SB3 acts with action_space.sample(): its generator is part of the run.
            state.update(
                episode_num=m._episode_num, last_original_obs=m._last_original_obs, action_space_rng=m.action_space.np_random.bit_generator.state
            )
        return state

    def load_state_dict(self, s: dict[str, Any]) -> None:
        m: Any = self.model
        m.set_parameters(s["parameters"], exact_match=True, device=m.device)
        m.num_timesteps, m._n_updates = s["num_timesteps"], s["n_updates"]
        m._last_obs, m._last_episode_starts = s["last_obs"], s["last_episode_starts"]
        m.ep_info_buffer.clear()
        m.ep_info_buffer.extend(s["ep_info_buffer"])
        if self.off_policy:
            m._episode_num, m._last_original_obs = s["episode_num"], s["last_original_obs"]
            if "action_space_rng" in s:  # checkpoints from before it was kept resume as they did
                m.action_space.np_random.bit_generator.state = s["action_space_rng"]
