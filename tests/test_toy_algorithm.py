"""Adding an algorithm by exactly the steps of ``ail/algorithm.py``'s docstring (and the README's
"Adding an algorithm"): one module (the learner and its settings' model) and one YAML. Nothing
else of the platform is edited: the copy of the repository the toy runs in differs from this one
by those two files only."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, launch

pytestmark = pytest.mark.slow

# Step 1 and 3: the learner and the model of its settings, in one module. A linear softmax policy
# trained by gradient steps on the expert pairs' cross-entropy: an offline learner, so it declares
# that it takes no env steps (step 4) and counts gradient updates.
TOY_MODULE = '''
"""Toy: a linear softmax policy fitted to the expert's discrete actions (an offline learner)."""

from pathlib import Path
from typing import Any, Sequence

import torch
from stable_baselines3.common.policies import ActorCriticPolicy

from ail.algorithm import Learner
from ail.envs import make_env
from ail.policy import LoadedPolicy, save_policy
from ail.schema import AlgoConfig, PosInt, PosNum


class ToyConfig(AlgoConfig):
    updates: PosInt
    eval_every: PosInt
    lr: PosNum


class Toy(Learner[ToyConfig]):
    unit = "updates"
    interacts_with_env = False

    @classmethod
    def validate(cls, cfg, demos) -> None:
        pass

    def __init__(self, cfg, demos, seeds: Sequence[int]):
        super().__init__(cfg, demos, seeds)
        torch.manual_seed(int(cfg.seed))
        env = make_env(cfg.env.name)
        self.policy = ActorCriticPolicy(env.observation_space, env.action_space, lambda _: self.algo.lr, net_arch=dict(pi=[], vf=[]))
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=self.algo.lr)
        self.obs, self.act = torch.as_tensor(demos.obs, dtype=torch.float32), torch.as_tensor(demos.actions)
        self._updates = 0

    env_steps = property(lambda self: 0)
    updates = property(lambda self: self._updates)
    progress = property(lambda self: self._updates)
    budget = property(lambda self: self.algo.updates)

    def iterate(self) -> list[dict[str, float]]:
        _, log_prob, _ = self.policy.evaluate_actions(self.obs, self.act)
        loss = -log_prob.mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self._updates += 1
        return [{"loss": float(loss)}]

    def acting_policy(self, i: int = 0) -> LoadedPolicy:
        return LoadedPolicy(self.policy)

    def save_policy(self, i: int, path: Path) -> None:
        save_policy(path, self.policy)

    def state_dict(self, i: int = 0) -> Any:
        return {"policy": self.policy.state_dict(), "opt": self.opt.state_dict(), "updates": self._updates}

    def load_state_dict(self, i: int, state: Any) -> None:
        self.policy.load_state_dict(state["policy"])
        self.opt.load_state_dict(state["opt"])
        self._updates = state["updates"]
'''

# Step 2: its YAML names the learner and the model.
TOY_YAML = """\
name: toy
label: toy
learner: ail.algos.toy.Toy
settings: ail.algos.toy.ToyConfig
updates: 1000     # gradient steps
eval_every: 500   # eval.every's default for this algorithm (conf/config.yaml)
lr: 0.05
"""


@pytest.fixture(scope="module")
def repo_with_toy(tmp_path_factory) -> Path:
    """This repository's code and configs, plus the toy's two files."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPO / "ail", root / "ail", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copy(REPO / "launch.py", root / "launch.py")
    (root / "ail" / "algos" / "toy.py").write_text(textwrap.dedent(TOY_MODULE))
    (root / "conf" / "algo" / "toy.yaml").write_text(TOY_YAML)
    return root


def _launch_toy(root: Path, args: list[str], runs: Path):
    shared = [f"paths.experts={REPO / 'experts'}", f"paths.demos={REPO / 'demos'}", "runtime.progress=false"]
    return launch(["algo=toy", "env=cartpole", *args, *shared], runs, launcher=root / "launch.py")


def test_a_toy_algorithm_added_by_the_documented_steps_trains_end_to_end(repo_with_toy, tmp_path):
    proc = _launch_toy(repo_with_toy, ["eval.episodes=5", "eval.final_episodes=20"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "default" / "toy-cartpole-d4" / "seed0"
    summary = json.loads((run_dir / "summary.json").read_text())
    # The platform learned what it needs from the learner's declared traits, not from its name.
    assert summary["unit"] == "updates" and summary["interacts_with_env"] is False
    assert summary["env_steps"] == 0 and summary["updates"] == 1000
    assert json.loads((run_dir / "meta.json").read_text())["learner"] == {"unit": "updates", "interacts_with_env": False}
    assert summary["normalized_score"] > 0.5, summary  # a linear policy imitates CartPole's expert


def test_the_toy_settings_are_checked_by_its_own_model(repo_with_toy, tmp_path):
    proc = _launch_toy(repo_with_toy, ["algo.lr=-1"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: algo.lr=-1 is invalid; accepted: a positive number"
    assert not any(tmp_path.rglob("config.yaml"))
