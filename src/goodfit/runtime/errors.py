"""Errors a user can fix. Each is reported as one clear message naming the key or file, without a
traceback (see `goodfit.hydra_ext.entry.report_user_errors`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """A problem with what the user gave (a config value, a file, a folder): the message says
    which and what is allowed. Entry points exit with status 2 and the message alone."""


class ConfigError(UserError, ValueError):
    """A config value is not allowed. The message names the key, the value and what is allowed."""


class DataError(UserError, ValueError):
    """A data file or folder is missing, damaged or not what was expected; the message names it."""


class DataNotFoundError(DataError, FileNotFoundError):
    """No complete copy of the data set was found anywhere; the message lists every place."""


class RunFolderInUseError(UserError, RuntimeError):
    """The run folder already holds another run, or another process is running in it."""


class DivergedError(UserError, RuntimeError):
    """The training loss is no longer a finite number."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, damaged, refused as unsafe, or does not fit its config."""


class StorageError(UserError, OSError):
    """A file could not be written: the disk is full, a quota or a file-size limit was reached.
    The previous version of the file is kept."""


class BackboneError(UserError, RuntimeError):
    """A pretrained backbone is missing or does not fit the network."""


EXIT_USER_ERROR = 2


@contextmanager
def user_errors_of(group: str) -> Iterator[None]:
    """Inside: a config group's object is being built (Hydra's `instantiate`). A user error it
    raises, or a ValueError whose message names one of the group's keys (`model.dropout=…`),
    comes out as that ConfigError or UserError rather than Hydra's wrapping of it."""
    try:
        yield
    except Exception as err:
        cause = err.__cause__ if err.__cause__ is not None else err
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, ValueError) and str(cause).startswith(f"{group}."):
            raise ConfigError(str(cause)) from None
        raise
