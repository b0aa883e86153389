"""Errors a user can fix: reported as one clear message, without a traceback."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from goodfit.config import ConfigError
from goodfit.data.idx import IDXError
from goodfit.data.locate import DataNotFoundError

log = logging.getLogger("goodfit")


class RunFolderInUseError(RuntimeError):
    """The run folder already holds another run's record."""


class DivergedError(RuntimeError):
    """The training loss is no longer a finite number."""


class CheckpointLoadError(RuntimeError):
    """No checkpoint in the folder could be loaded."""


class BackboneError(RuntimeError):
    """A pretrained backbone is missing or does not fit the network."""


USER_ERRORS = (
    ConfigError,
    DataNotFoundError,
    IDXError,
    RunFolderInUseError,
    DivergedError,
    CheckpointLoadError,
    BackboneError,
)
EXIT_USER_ERROR = 2


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def report_user_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """A single run exits with status 2 and the message alone; inside a multirun the error is
    re-raised, so Hydra marks that job failed and the other jobs still run."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except USER_ERRORS as err:
            if _in_multirun():
                raise
            log.error("%s", err)
            raise SystemExit(EXIT_USER_ERROR) from None

    return wrapper
