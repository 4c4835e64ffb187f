"""Kill-anywhere for SAM and MGAIL (see test_kill_anywhere.py): runs killed at random instants and
relaunched each time end exactly as an uninterrupted run."""

from __future__ import annotations

from conftest import assert_kills_anywhere_resume_exactly
from test_mgail import TINY_MGAIL
from test_sam import TINY as TINY_SAM


def test_sam_killed_anywhere_resumes_exactly(runs):
    args = TINY_SAM
    assert_kills_anywhere_resume_exactly(args, runs, lambda e: runs / e / "sam-invertedpendulum-d4" / "seed0", kills=5, seed=3)


def test_mgail_killed_anywhere_resumes_exactly(runs):
    assert_kills_anywhere_resume_exactly(TINY_MGAIL, runs, lambda e: runs / e / "mgail-cartpole-d4" / "seed0", kills=5, seed=4)
