"""Kill-anywhere: BC and GAIL runs SIGKILLed or SIGTERMed at random instants (before the first checkpoint,
while one is written, during the final evaluation, after summary.json) and relaunched each time end
exactly as an uninterrupted run. SAM and MGAIL: test_kill_anywhere_offpolicy.py."""

from __future__ import annotations

from conftest import TINY_BC, assert_kills_anywhere_resume_exactly
from test_gail import TINY as TINY_GAIL


def test_bc_killed_anywhere_resumes_exactly(runs):
    args = [a for a in TINY_BC if not a.startswith("algo.updates")] + ["algo.updates=500", "algo.eval_every=100"]
    assert_kills_anywhere_resume_exactly(args, runs, lambda e: runs / e / "bc-cartpole-d4" / "seed0", kills=5, seed=1)


def test_gail_killed_anywhere_resumes_exactly(runs):
    args = [a for a in TINY_GAIL if not a.startswith("train.env_steps")] + ["train.env_steps=6144"]
    assert_kills_anywhere_resume_exactly(args, runs, lambda e: runs / e / "gail-ppo-cartpole-d4" / "seed0", kills=5, seed=2)
