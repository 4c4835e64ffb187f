"""One module per algorithm; each exposes ``train(run: ail.run.Run) -> None``."""
