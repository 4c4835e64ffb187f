"""K seeds of SAM in one process (train.seeds_per_process): each seed's run directory is what it
would be alone, preemption resumes every seed exactly, and bad combinations are refused."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import assert_preemption_resumes_exactly, launch, read_metrics, without_wall_time
from test_sam import RESUME, TINY, sam_dir

# 300 env steps = 100 updates after learning_starts: long enough to train every part, short
# enough that float-level differences (stacked vs. single kernels) have not grown chaotic yet.
SHORT = [a for a in TINY if not a.startswith("train.env_steps")] + ["train.env_steps=300"]


def test_each_seed_of_a_stacked_process_matches_the_seed_run_alone(runs):
    proc = launch(SHORT + ["seed=4", "train.seeds_per_process=2", "experiment=group"], runs)
    assert proc.returncode == 0, proc.stderr
    for seed in (4, 5):
        d = sam_dir(runs, "group", seed=seed)
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        assert cfg["seed"] == seed and cfg["train"]["seeds_per_process"] == 2
        assert (d / "summary.json").is_file() and (d / "checkpoints" / "last.pt").is_file() and (d / "policy" / "policy.json").is_file()
    assert not sam_dir(runs, "group", seed=6).exists()
    alone = launch(SHORT + ["seed=5", "experiment=alone"], runs)
    assert alone.returncode == 0, alone.stderr
    got, ref = without_wall_time(read_metrics(sam_dir(runs, "group", seed=5))), without_wall_time(read_metrics(sam_dir(runs, "alone", seed=5)))
    assert [r["env_steps"] for r in got] == [r["env_steps"] for r in ref] == ["0", "300"]
    for g, r in zip(got, ref):
        assert g.keys() == r.keys()
        for k in r:
            if r[k] == "":  # losses before the first update
                assert g[k] == "", k
            else:
                assert float(g[k]) == pytest.approx(float(r[k]), rel=1e-4, abs=1e-6), k
    s_got = json.loads((sam_dir(runs, "group", seed=5) / "summary.json").read_text())
    s_ref = json.loads((sam_dir(runs, "alone", seed=5) / "summary.json").read_text())
    assert s_got["final_return_mean"] == pytest.approx(s_ref["final_return_mean"], rel=1e-4)
    assert s_got["updates"] == s_ref["updates"] == 100 and s_got["iterations"] == s_ref["iterations"]
    # The seed's directory is an ordinary run: launched alone, it is recognised as complete.
    again = launch(SHORT + ["seed=5", "experiment=group"], runs)
    assert again.returncode == 0 and "already complete" in again.stdout, again.stderr


@pytest.mark.slow
def test_a_preempted_stacked_process_resumes_every_seed_exactly(runs):
    # Stopped after the 300-step evaluation, resumed for 300 more: both seeds restored.
    args = [a for a in RESUME if not a.startswith("train.env_steps")] + ["train.env_steps=600", "train.seeds_per_process=2", "algo.compile=false"]
    assert_preemption_resumes_exactly(args, runs, lambda exp: sam_dir(runs, exp, seed=1), rows=2)
    assert without_wall_time(read_metrics(sam_dir(runs, "cut", seed=0))) == without_wall_time(read_metrics(sam_dir(runs, "ref", seed=0)))


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["train.seeds_per_process=0"], "train.seeds_per_process=0 is invalid; accepted: a positive integer"),
        (["algo=gail", "train.seeds_per_process=2"], "train.seeds_per_process=2 is not supported by algo=gail; accepted for algo=gail: 1"),
        (["train.seeds_per_process=2", "algo.workers=2"], "train.seeds_per_process=2 with algo.workers=2 is not supported"),
    ],
)
def test_bad_seed_stacking_is_one_line_before_any_run_dir(runs, overrides, expected):
    base = TINY
    if overrides[0].startswith("algo="):
        base = ["env=invertedpendulum", "train.env_steps=600", "runtime.progress=false"]
        base += ["algo.ddpg.learning_starts=200"] if overrides[0] == "algo=sam" else []
    proc = launch(base + overrides, runs)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr
    assert not runs.exists() or not any(runs.rglob("*.csv"))


@pytest.mark.parametrize("seed", [0, 1, 7, 104_729])
def test_sam_torch_streams_never_share_a_seed(seed):
    # The init and update generators are both torch Generators: one seed for both would make the
    # first parameter-noise draws replay the uniforms the initial weights were made of.
    from ail.seeding import derive_seed

    seeds = [derive_seed("sam_init", s, 0) for s in range(seed, seed + 4)]
    seeds += [derive_seed("sam_update", s, rank) for s in range(seed, seed + 4) for rank in range(4)]
    assert len(set(seeds)) == len(seeds)
