"""Exceptions that the CLI turns into a one-line reason and a non-zero exit."""


class RecsysError(Exception):
    """Base class for errors a user can act on (bad config, bad input, missing files)."""


class ConfigError(RecsysError):
    """The configuration is invalid; the message names the field and the value."""


class DataError(RecsysError):
    """Input data cannot be read at all (no files match, unknown layout, unreadable file)."""


class NoSpaceLeft(RecsysError):
    """A file system the step writes to is full (ENOSPC); the message names the path."""

    @classmethod
    def on(cls, path: str) -> "NoSpaceLeft":
        return cls(f"no space left on {path}")
