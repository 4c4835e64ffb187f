"""The one exception type for bad input: launch.py prints it as a single line and exits non-zero."""


class ConfigError(ValueError):
    """Bad user input (config value, file, directory) detected before or instead of training."""
