"""SAM (Blondé & Kalousis 2019): ``learner`` (the :class:`ail.algorithm.Learner`, workers, K seeds),
``agent`` (the update on SB3's TD3 machinery), ``compiled`` (its torch.compile'd and stacked form),
``nets``, and the pieces only SAM uses: ``replay`` (n-step windows), ``popart``, ``exploration``."""
