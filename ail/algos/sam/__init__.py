"""SAM (Blondé & Kalousis 2019): ``learner`` (the :class:`ail.algorithm.Learner`: K seeds in one
process, collection, batches, workers, checkpoints), ``update`` (one SAM update of every seed, Pop-Art
included, written once), ``compile`` (how that one function is run compiled, with its fallbacks),
``stacked`` (K seeds' networks and Adam as stacked tensors), ``nets`` (a seed exported as an SB3 TD3
policy), and the pieces only SAM uses: ``replay`` (n-step windows, one column per seed), ``exploration``."""
