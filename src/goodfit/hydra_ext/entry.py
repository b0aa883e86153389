"""What every `@hydra.main` task shares: user errors reported as one message."""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from omegaconf.errors import MissingMandatoryValue

from goodfit.hydra_ext.hydra_config import in_multirun
from goodfit.runtime.errors import EXIT_USER_ERROR, ConfigError, UserError

log = logging.getLogger("goodfit")
EXIT_CTRL_C = 130  # what a shell reports for a process stopped by SIGINT: 128 + 2


def report_user_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """A single run exits with status 2 and the message alone; inside a multirun the error is
    re-raised, so Hydra marks that job failed and the other jobs still run."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C is a KeyboardInterrupt again (train.py stopped at once while starting)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return task(*args, **kwargs)
        except (UserError, MissingMandatoryValue) as err:
            message = err if isinstance(err, UserError) else ConfigError(_missing_value(err))
            log.error("%s", message)  # one line, in the console and in the run's train.log
            if in_multirun():
                raise message from None
            raise SystemExit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:  # Ctrl-C outside training (there StopOnSignal handles it)
            log.error("Stopped by Ctrl-C")
            raise SystemExit(EXIT_CTRL_C) from None

    return wrapper


def _missing_value(err: MissingMandatoryValue) -> str:
    """A `???` of the config left unset, said as what to type."""
    return (f"{err.full_key} has no value and is required: give it on the command line "
            f"({err.full_key}=…)")  # fmt: skip
