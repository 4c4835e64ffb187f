"""Any gymnasium id (env=gym env.id=...) and any SB3 expert file (env.expert.path=...): the same run as
the shipped task when given the same expert, one-line errors for bad input, and untrusted files
loaded without running their pickled code."""

from __future__ import annotations

import base64
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, launch, read_metrics, without_wall_time

BC = ["algo=bc", "algo.updates=300", "algo.eval_every=100", "eval.episodes=2", "eval.final_episodes=3", "runtime.progress=false"]
# GAIL on CartPole as conf/env/cartpole.yaml + conf/algo_env/gail_cartpole.yaml set it, asked for by name.
AS_CARTPOLE = ["algo_env=gail_cartpole", "env.subsample=10", "env.dataset_size=10", "env.demo_min_return=195"]
GAIL = [
    "algo=gail",
    "algo.ppo.n_steps=256",
    "train.env_steps=4096",
    "eval.every=2048",
    "eval.episodes=2",
    "eval.final_episodes=2",
    "runtime.progress=false",
]


def summary(d: Path) -> dict:
    return json.loads((d / "summary.json").read_text())


@pytest.mark.slow
def test_hopper_by_id_with_the_shipped_expert_file_is_the_hopper_run(runs, tmp_path):
    # The first 4 of a 4-trajectory set are the first 4 of the 50-trajectory one (same expert, same starts).
    gym = launch(
        BC
        + [
            "env=gym",
            "env.id=Hopper-v5",
            f"env.expert.path={REPO / 'experts/hopper/model.zip'}",
            "demo_set.trajectories=4",
            f"paths.demos={tmp_path}",
        ],
        runs,
    )
    assert gym.returncode == 0, gym.stderr
    ref = launch(BC + ["env=hopper", "experiment=ref"], runs)
    assert ref.returncode == 0, ref.stderr
    a, b = runs / "default" / "bc-hopper-v5-d4" / "seed0", runs / "ref" / "bc-hopper-d4" / "seed0"
    assert without_wall_time(read_metrics(a)) == without_wall_time(read_metrics(b))
    assert summary(a)["normalized_score"] == summary(b)["normalized_score"]
    assert (summary(a)["expert_return"], summary(a)["random_return"]) == (summary(b)["expert_return"], summary(b)["random_return"])


@pytest.mark.slow
def test_gail_on_a_users_registered_env_with_a_foreign_expert_file_scores_as_the_shipped_task(runs, tmp_path):
    # A user's package registers an id; the expert file comes without expert.json, so its return and a
    # random policy's are measured once and recorded; workers in other processes import the package too.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "my_tasks.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('MyCartPole-v0', entry_point='gymnasium.envs.classic_control.cartpole:CartPoleEnv', max_episode_steps=500)\n"
    )
    expert = tmp_path / "zoo" / "model.zip"
    expert.parent.mkdir()
    shutil.copy(REPO / "experts" / "cartpole" / "model.zip", expert)
    env = {"PYTHONPATH": str(pkg)}
    args = GAIL + [
        "env=gym",
        "env.id=MyCartPole-v0",
        "env.import=my_tasks",
        f"env.expert.path={expert}",
        f"paths.demos={tmp_path / 'demos'}",
        "algo.vec_env=subproc",
        "algo.n_envs=2",  # each worker process imports torch: two show the package imported there as well as eight
    ]
    first = launch(args + AS_CARTPOLE, runs, env=env)
    assert first.returncode == 0, first.stderr
    assert "[expert] measuring" in first.stdout
    record = json.loads(next((tmp_path / "demos" / "mycartpole-v0").glob("expert-*.json")).read_text())
    shipped = json.loads((REPO / "experts" / "cartpole" / "expert.json").read_text())
    assert (record["return_mean"], record["random_return_mean"]) == (shipped["return_mean"], shipped["random_return_mean"])
    ref = launch(GAIL + ["env=cartpole", "experiment=ref", "algo.vec_env=subproc", "algo.n_envs=2"], runs)
    assert ref.returncode == 0, ref.stderr
    mine, theirs = runs / "default" / "gail-ppo-mycartpole-v0-d4" / "seed0", runs / "ref" / "gail-ppo-cartpole-d4" / "seed0"
    assert without_wall_time(read_metrics(mine)) == without_wall_time(read_metrics(theirs))
    again = launch(args + AS_CARTPOLE + ["experiment=again", "train.env_steps=512", "eval.every=512"], runs, env=env)
    assert again.returncode == 0 and "[expert] measuring" not in again.stdout, again.stderr


def _bad_zip(tmp_path: Path, key: str) -> Path:
    """The cartpole expert with pickled entry ``key`` replaced by one that would create a marker file."""

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    import pickle

    src = REPO / "experts" / "cartpole" / "model.zip"
    out = tmp_path / key / "model.zip"
    out.parent.mkdir()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "data":
                d = json.loads(data)
                d[key] = {":type:": "<class 'dict'>", ":serialized:": base64.b64encode(pickle.dumps(Payload())).decode()}
                data = json.dumps(d).encode()
            zout.writestr(item, data)
    return out


def test_a_file_whose_pickled_entries_would_run_code_is_refused_or_ignored(tmp_path):
    import gymnasium as gym

    from ail.errors import ConfigError
    from ail.sb3_files import load_model_file

    env = gym.make("CartPole-v1")
    with pytest.raises(ConfigError, match="its pickled 'policy_kwargs' needs posix.system"):
        load_model_file(_bad_zip(tmp_path, "policy_kwargs"), None, env, "CartPole-v1")
    policy, algo = load_model_file(_bad_zip(tmp_path, "lr_schedule"), None, env, "CartPole-v1")  # not needed to act: ignored
    assert algo == "ppo" and policy.predict(env.reset(seed=0)[0])[0] in (0, 1)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["env=gym"], "error: env=gym needs env.id=<id>; accepted: a registered gymnasium id, e.g. env.id=Pendulum-v1"),
        (
            ["env=gym", "env.id=Hoper-v5"],
            "error: env.id=Hoper-v5 is not a registered gymnasium id (env.import=<module> imports a package that registers it) (close: Hopper-v5",
        ),
        (["env=gym", "env.id=Foo-v0", "env.import=no_such_module"], "error: env.import=no_such_module failed: ModuleNotFoundError"),
        (
            ["env=gym", "env.id=Pendulum-v1", "env.expert.path=experts/hopper/model.zip"],
            "is for observation space Box(11,), but Pendulum-v1 has Box(3,); accepted: an expert trained on Pendulum-v1",
        ),
        (["env=gym", "env.id=CartPole-v1", "env.expert.path=experts/hopper/expert.json"], "is not an SB3 model file"),
        (["env=gym", "env.id=CartPole-v1", "env.expert.path=experts/nothing/model.zip"], "is not a file; accepted: an SB3 model.zip"),
        (["env=gym", "env.id=CartPole-v1", "env.expert.path=experts/cartpole/model.zip", "env.expert.algo=sac"], "cannot load"),
        (["env=gym", "env.id=Pendulum-v1"], "error: no complete expert in"),
    ],
)
def test_bad_env_and_expert_input_is_one_line_before_any_run_dir(runs, overrides, expected):
    proc = launch(["algo=bc", "runtime.progress=false", *overrides], runs)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(expected) or expected in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert not runs.exists() or not any(runs.rglob("*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "algo, budget",
    [
        ("sam", ["train.env_steps=600", "eval.every=300", "algo.ddpg.learning_starts=200", "algo.batch_size=32", "algo.compile=false"]),
        ("mgail", ["train.env_steps=5200", "eval.every=5200"]),
        ("dyna", ["train.env_steps=5200", "eval.every=5200"]),
    ],
)
def test_the_continuous_action_learners_run_on_a_gym_id(runs, tmp_path, algo, budget):
    # BC and GAIL: the tests above. A shipped MuJoCo task by id, so expert-state starts (qpos) are recorded too.
    expert = REPO / "experts" / "invertedpendulum" / "model.zip"
    args = [
        f"algo={algo}",
        "env=gym",
        "env.id=InvertedPendulum-v5",
        f"env.expert.path={expert}",
        f"paths.demos={tmp_path}",
        "demo_set.trajectories=4",
        *budget,
    ]
    proc = launch(args + ["eval.episodes=2", "eval.final_episodes=2", "runtime.progress=false"], runs)
    assert proc.returncode == 0, proc.stderr
    (run,) = (runs / "default").glob("*-invertedpendulum-v5-d4/seed0")
    assert summary(run)["status"] == "complete" and summary(run)["expert_return"] == 1000.0


@pytest.mark.slow
def test_spawned_sam_workers_set_up_a_gym_id_as_the_jobs_process_does(runs, tmp_path):
    # Each worker is a fresh process: it must register env=gym's name from the config it is handed,
    # or it fails on its first env while rank 0 waits for it in a collective.
    args = [
        "algo=sam",
        "algo.workers=2",
        "env=gym",
        "env.id=InvertedPendulum-v5",
        f"env.expert.path={REPO / 'experts' / 'invertedpendulum' / 'model.zip'}",
        f"paths.demos={tmp_path}",
        "demo_set.trajectories=4",
        "train.env_steps=800",
        "eval.every=800",
        "algo.ddpg.learning_starts=200",
        "algo.batch_size=32",
        "algo.compile=false",
        "eval.episodes=2",
        "eval.final_episodes=2",
        "runtime.progress=false",
    ]
    proc = launch(args, runs, timeout=240)
    assert proc.returncode == 0, proc.stderr
    run = runs / "default" / "sam-invertedpendulum-v5-d4" / "seed0"
    assert summary(run)["status"] == "complete" and summary(run)["workers"] == 2 and summary(run)["expert_return"] == 1000.0
