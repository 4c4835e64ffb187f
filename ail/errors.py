"""The exception types launch.py turns into one line on stderr and a non-zero exit."""


class ConfigError(ValueError):
    """Bad user input (config value, file, directory) detected before or instead of training."""


class TrainingError(RuntimeError):
    """Training went numerically wrong (e.g. NaN in the discriminator); the last good checkpoint is kept."""


class StorageError(RuntimeError):
    """A file could not be written (no space left, no permission): its temporary is removed and the
    version written before, if any, is kept."""
