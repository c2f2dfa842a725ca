"""Errors that ganzoo reports to the user as a single line naming the fix."""


class GanzooError(Exception):
    """Base class: the message is one line that says what went wrong and how to fix it.

    A DataLoader worker re-raises an exception in the main process as
    ``type(exc)("Caught ... Original Traceback ... <module>.<Class>: <message>")``; the constructor
    recovers the original line from that text, so the user still sees one line.
    """

    def __init__(self, message: str = "") -> None:
        if "\n" in message:
            prefix = f"{type(self).__module__}.{type(self).__qualname__}: "
            for line in reversed(message.splitlines()):
                if line.startswith(prefix):
                    message = line[len(prefix) :]
                    break
        super().__init__(message)


class DataError(GanzooError):
    """A dataset is missing, empty, corrupt or in the wrong format."""


class CheckpointError(GanzooError):
    """A checkpoint is missing, unreadable or belongs to another model."""


class ConfigError(GanzooError):
    """A configuration value is invalid."""


def ganzoo_cause(error: BaseException) -> GanzooError | None:
    """The GanzooError behind ``error``: itself, or the cause that Hydra's instantiate wrapped."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, GanzooError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
