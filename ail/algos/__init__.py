"""One module per algorithm, each with an :class:`ail.algorithm.Learner` subclass named by ``conf/algo/<name>.yaml: learner``."""
