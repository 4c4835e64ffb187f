"""ail: adversarial imitation learning platform (GAIL, SAM, MGAIL, Dyna-AIL, BC) on gymnasium tasks."""

from ail.demos import load_demos
from ail.experts import load_expert
from ail.policy import load_policy
from ail.seeding import set_random_seed

__all__ = ["load_demos", "load_expert", "load_policy", "set_random_seed"]
__version__ = "0.1.0"
