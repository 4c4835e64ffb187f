"""ail: adversarial imitation learning platform (GAIL, SAM, MGAIL, Dyna-AIL, BC) on gymnasium tasks.

Python API: ``ail.train(algo, env, demos, seed, overrides) -> run dir``, ``ail.evaluate(policy, env)``,
``ail.load_policy(run_dir)``, ``ail.load_expert(env)``, ``ail.load_demos(env, n)``."""

from ail.api import Evaluation, evaluate, train
from ail.demos import load_demos
from ail.experts import load_expert
from ail.policy import load_policy
from ail.seeding import set_random_seed

__all__ = ["Evaluation", "evaluate", "load_demos", "load_expert", "load_policy", "set_random_seed", "train"]
__version__ = "0.1.0"
