"""MGAIL and Dyna-AIL: ``learner`` (the state and single steps both share), ``mgail`` and ``dyna``
(their schedules), and their math: ``unroll`` (differentiable real and imagined unrolls),
``forward_model``, ``diff_policy``, ``natural_gradient``."""
