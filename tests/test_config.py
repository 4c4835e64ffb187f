"""Composition of the four axes (all 55 algo x env pairs, single and multirun) and early validation."""

from __future__ import annotations

import pytest
import torch
from conftest import launch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from ail.config import CONF_DIR, check_overrides, group_options, register_resolvers
from ail.envs import ENV_IDS, SHIPPED
from ail.errors import ConfigError

pytestmark = pytest.mark.xdist_group("test_config")  # its module-scoped fixture is built once

ALGOS = ["bc", "gail", "sam", "mgail", "dyna"]


@pytest.fixture(scope="module")
def hydra_ctx():
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def test_groups_are_complete():
    assert group_options("algo") == sorted(ALGOS)
    assert group_options("env") == sorted([*SHIPPED, "gym"])


@pytest.mark.parametrize("algo", ALGOS)
def test_all_pairs_compose(hydra_ctx, algo):
    for env in SHIPPED:
        cfg = compose("config", overrides=[f"algo={algo}", f"env={env}", "demos=7", "seed=3"], return_hydra_config=True)
        assert cfg.algo.name == algo and cfg.env.name == env and cfg.env.id == ENV_IDS[env]
        run_dir = OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"]
        assert run_dir.endswith(f"runs/default/{cfg.algo.label}-{env}-d7/seed3") and cfg.algo.label.startswith(algo)


def test_multirun_dirs_resolve(hydra_ctx):
    # hydra#1859: sweep dirs built from keys are only resolved under -m; resolve them here.
    cfg = compose("config", overrides=["algo=gail", "env=walker", "demos=4", "seed=2"], return_hydra_config=True)
    sweep = OmegaConf.to_container(cfg.hydra.sweep, resolve=True)
    assert sweep["dir"].endswith("runs/default")
    assert sweep["subdir"] == "gail-ppo-walker-d4/seed2"  # the label names the generator


def test_tuned_pair_file_is_picked_up(hydra_ctx):
    pairs = sorted(p.stem for p in (CONF_DIR / "algo_env").glob("*.yaml"))
    assert pairs, "at least one tuned algo_env file"
    algo, env = pairs[0].split("_", 1)
    plain = compose("config", overrides=[f"algo={algo}", "env=cartpole" if env != "cartpole" else "env=acrobot"])
    tuned = compose("config", overrides=[f"algo={algo}", f"env={env}"])
    assert OmegaConf.to_container(tuned.algo) != OmegaConf.to_container(plain.algo)


def test_tuned_pair_overrides_top_level_keys_and_the_command_line_wins(hydra_ctx):
    # A pair file may set budgets (train.*, eval.*), not only algo.*; the command line overrides both.
    tuned = compose("config", overrides=["algo=gail", "env=hopper"])
    assert tuned.train.env_steps == 1_000_000 and tuned.eval.every == 10_000
    assert tuned.demo_set.subsample == 20  # GAIL's subsampling comes from env.subsample
    cli = compose("config", overrides=["algo=gail", "env=hopper", "train.env_steps=5", "algo.demo_subsample=1"])
    assert cli.train.env_steps == 5 and cli.demo_set.subsample == 1
    assert compose("config", overrides=["algo=bc", "env=hopper"]).demo_set.subsample == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["algo=nope"], "unknown algo 'nope'; accepted: bc, dyna, gail, mgail, sam"),
        (["env=pong"], "unknown env 'pong'"),
        (["logger=mlflow"], "unknown logger 'mlflow'"),
        (["-m", "algo=bc,nope"], "unknown algo 'nope'"),
        (["demos=0"], "demos=0 is invalid"),
        (["demos=-3"], "demos=-3 is invalid"),
        (["train.env_steps=0"], "train.env_steps=0 is invalid"),
        (["eval.episodes=-1"], "eval.episodes=-1 is invalid"),
        (["task=fly"], "unknown task 'fly'"),
        (["algo=sam", "algo.ddpg.network.hidden=[64,0]"], "algo.ddpg.network.hidden=[64, 0] is invalid"),
        (["-m", "algo=sam", "algo.ddpg.network.hidden=[32,32],[64,0]"], "algo.ddpg.network.hidden=[64, 0] is invalid"),
    ],
)
def test_bad_overrides_rejected_early(argv, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        check_overrides(argv)


def test_a_list_value_is_one_value_not_a_sweep_of_its_items():
    # Each item of [256,256] was once checked as the whole value ("hidden=256 is invalid").
    check_overrides(["algo=sam", "algo.ddpg.network.hidden=[256,256]", "algo.discriminator.label_smoothing=[0.7,1.2]"])
    check_overrides(["-m", "algo=sam,gail", "algo.discriminator.hidden=[32],[64,64]"])


@pytest.mark.parametrize(
    "arg, expect",
    [
        ("algo=nope", "unknown algo 'nope'"),
        ("env=pong", "unknown env 'pong'"),
        ("logger=x", "unknown logger 'x'"),
        ("eval.every=0", "eval.every=0 is invalid"),
        ("runtime.device=tpu", "runtime.device=tpu is invalid; accepted: cpu, cuda, cuda:N"),
        ("runtime.device=cuda", "runtime.device=cuda is not supported with algo=bc, which computes on the CPU"),
        ("task=expert runtime.device=cuda:0", "not supported with task=expert"),
        pytest.param(
            "algo=sam runtime.device=cuda",
            "sees 0 CUDA device(s); accepted here: cpu",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible"),
        ),
    ],
)
def test_launch_bad_input_is_one_line(runs, arg, expect):
    proc = launch(arg.split(), runs)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0]
    # Checks of the composed config run after Hydra made the run directory: they leave nothing in it.
    assert not runs.exists() or not any(runs.iterdir())


def test_cfg_job_prints_composed_config(runs):
    proc = launch(["--cfg", "job", "algo=sam", "env=humanoid", "demos=80"], runs)
    assert proc.returncode == 0, proc.stderr
    cfg = OmegaConf.create(proc.stdout)
    assert cfg.algo.name == "sam" and cfg.env.id == "Humanoid-v5" and cfg.demos == 80


def test_expert_training_settings_do_not_block_resuming_an_imitation_run():
    from ail.run import _comparable, _first_difference

    stored = {"seed": 0, "env": {"name": "walker", "subsample": 20, "expert": {"target_return": 4500}}, "runtime": {"threads": 1}}
    retuned = {"seed": 0, "env": {"name": "walker", "subsample": 20, "expert": {"target_return": 4100}}, "runtime": {"threads": 2}}
    assert _first_difference(_comparable(stored), _comparable(retuned)) is None
    changed = {"seed": 0, "env": {"name": "walker", "subsample": 10, "expert": {"target_return": 4500}}, "runtime": {"threads": 1}}
    assert _first_difference(_comparable(stored), _comparable(changed)) == ("env.subsample", 20, 10)


def test_help_opens_with_what_the_tool_does_its_tasks_and_axes(tmp_path):
    proc = launch(["--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    head = proc.stdout.split("== Configuration groups ==")[0]
    assert head.startswith("launch.py: adversarial imitation learning")
    for task in ("train", "expert", "demos", "eval"):
        assert f"\n  {task} " in head, task
    for axis in ("algo", "env", "demos", "seed"):
        assert f"\n  {axis} " in head.split("== The four axes")[1], axis
    assert "README.md" in head
