"""Errors a user can fix. Each is reported as one clear message naming the key or file, without a
traceback (see `goodfit.hydra_ext.entry.report_user_errors`)."""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hydra.errors import CompactHydraException

from goodfit.runtime.imports import TargetNotFound, locate


class UserError(CompactHydraException):
    """A problem with what the user gave (a config value, a file, a folder): the message says
    which and what is allowed. Entry points exit with status 2 and the message alone."""

    # A CompactHydraException: the job of a multirun that raised it is reported by Hydra at the
    # sweep's end with its overrides and this message, without a traceback.


class ConfigError(UserError, ValueError):
    """A config value is not allowed. The message names the key, the value and what is allowed."""


class DataError(UserError, ValueError):
    """A data file or folder is missing, damaged or not what was expected; the message names it."""


class DataNotFoundError(DataError, FileNotFoundError):
    """No complete copy of the data set was found anywhere; the message lists every place."""


class RunFolderInUseError(UserError, RuntimeError):
    """The run folder already holds another run, or another process is running in it."""


class RunFolderError(UserError, OSError):
    """A run or sweep folder cannot be created where the config puts it (a file has its name,
    no permission, a read-only disk)."""


class DivergedError(UserError, RuntimeError):
    """The training loss is no longer a finite number."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, damaged, refused as unsafe, or does not fit its config."""


class StorageError(UserError, OSError):
    """A file could not be written: the disk is full, a quota or a file-size limit was reached.
    The previous version of the file is kept."""


class BackboneError(UserError, RuntimeError):
    """A pretrained backbone is missing or does not fit the network."""


def first_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message as one line for a user's message: its first line (no traceback
    or OmegaConf key trail), at most `limit` characters; its type's name when it says nothing."""
    lines = str(err).strip().splitlines()
    return lines[0][:limit] if lines else type(err).__name__


def require_count(what: str, value: Any, low: int = 1) -> int:
    """`value` when it is an integer >= `low`, else a ValueError naming `what` (an argument
    of a class built in code, which the config checks cannot see)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what}={value!r}: must be an integer >= {low}")
    return value


class UnknownArgumentError(TypeError):
    """A class whose **kwargs go elsewhere (so its signature cannot tell what it takes) refuses a
    keyword argument when it is built; `accepted` lists those it takes, for the hint."""

    def __init__(self, owner: str, name: str, accepted: Iterable[str]) -> None:
        super().__init__(f"{owner} got an unexpected keyword argument '{name}'")
        self.accepted = frozenset(accepted)


EXIT_USER_ERROR = 2


@contextmanager
def user_errors_of(group: str, node: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Inside: a config group's object is being built (Hydra's `instantiate`) from `node`. A user
    error it raises, a ValueError whose message names one of the group's keys
    (`model.dropout=…`), or an argument its class does not take (`+trainer.max_epoch=3`: a
    TypeError) comes out as a UserError or ConfigError rather than Hydra's wrapping of it."""
    try:
        yield
    except Exception as err:
        cause = err.__cause__ if err.__cause__ is not None else err
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, ValueError) and str(cause).startswith(f"{group}."):
            raise ConfigError(str(cause)) from None
        if isinstance(cause, TypeError) and node is not None:
            said = _unknown_arguments(group, node, cause) or _missing_arguments(group, node, cause)
            if said:
                raise ConfigError(said) from None
        raise


_UNEXPECTED_ARGUMENT = re.compile(r"got an unexpected keyword argument '(\w+)'")


def _unknown_arguments(group: str, node: Mapping[str, Any], error: TypeError) -> str | None:
    """What to say of a TypeError raised while building `node`'s class: the keys it does not
    take, each with the nearest one it does; None when the error is about something else."""
    target, message = str(node.get("_target_")), str(error)
    keys = [str(k) for k in node if not str(k).startswith("_")]
    parameters = parameters_of(target)
    if parameters is None and isinstance(error, UnknownArgumentError):
        parameters = set(error.accepted)
    if parameters is not None:
        unknown = [k for k in keys if k not in parameters]
    else:  # a class that cannot be inspected, or one that takes any keyword: its message
        found = _UNEXPECTED_ARGUMENT.search(message)
        unknown = [found.group(1)] if found else []
    if not unknown or "argument" not in message:
        return None
    return "\n".join(not_arguments(group, target, unknown, parameters or set()))


_MISSING_ARGUMENTS = re.compile(
    r"missing \d+ required (?:positional|keyword-only) arguments?: (.+)"
)


def _missing_arguments(group: str, node: Mapping[str, Any], error: TypeError) -> str | None:
    """What to say of a TypeError raised while building `node`'s class for arguments it
    requires and `node` does not give; None when the error is about something else (a call
    inside the class's own code)."""
    found, target = _MISSING_ARGUMENTS.search(str(error)), str(node.get("_target_"))
    parameters = parameters_of(target)
    names = re.findall(r"'(\w+)'", found.group(1)) if found else []
    if not names or parameters is None or any(n not in parameters or n in node for n in names):
        return None
    keys = " ".join(f"+{group}.{name}=…" for name in names)
    return (
        f"{group} ({target}) needs {', '.join(names)}, which the config does not give: set "
        f"it in the group's file or on the command line ({keys})"
    )


def not_arguments(where: str, target: str, names: Iterable[str],
                  parameters: set[str]) -> list[str]:  # fmt: skip
    """One line per key of `where` that `target` does not take, with the nearest one it does."""
    lines = []
    for name in names:
        close = difflib.get_close_matches(name, sorted(parameters), n=1, cutoff=0.6)
        hint = f"; did you mean {where}.{close[0]}?" if close else ""
        lines.append(f"{where}.{name} is not an argument of {target}{hint}")
    return lines


def parameters_of(target: str) -> set[str] | None:
    """The keyword arguments `target` takes: a function's, or a class's (its own __init__ and,
    while each passes **kwargs on, its bases'); None when that cannot be told."""
    try:
        obj = locate(target)
    except TargetNotFound:  # not importable here: Hydra's own error says so
        return None
    if not isinstance(obj, type):
        return _keywords(obj)[0] if callable(obj) else None
    names: set[str] = set()
    passed_on = False  # an __init__ took **kwargs: where they went cannot be told
    for cls in obj.__mro__:
        if cls is object:  # every __init__ on the way took **kwargs, or none was defined
            return None if passed_on else names
        if "__init__" in cls.__dict__:
            init = cls.__dict__["__init__"]
        elif "__new__" in cls.__dict__:  # its arguments go to __new__ (datetime.timedelta)
            init = cls.__new__
        else:
            continue
        found, takes_more = _keywords(init)
        if found is None:
            return None
        names |= found
        if not takes_more:
            return names
        passed_on = True
    return None


def _keywords(function: Any) -> tuple[set[str] | None, bool]:
    """The names a function takes by keyword, and whether it takes **kwargs too."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return None, False
    plain = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    names = {p.name for p in parameters if p.kind not in plain} - {"self", "cls"}
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
