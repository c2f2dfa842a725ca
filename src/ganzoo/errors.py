"""Errors that ganzoo reports to the user as a single line naming the fix."""


class GanzooError(Exception):
    """Base class: the message is one line that says what went wrong and how to fix it."""


class DataError(GanzooError):
    """A dataset is missing, empty, corrupt or in the wrong format."""


class CheckpointError(GanzooError):
    """A checkpoint is missing, unreadable or belongs to another model."""


class ConfigError(GanzooError):
    """A configuration value is invalid."""
