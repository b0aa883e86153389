"""What every `@hydra.main` task shares: user errors reported as one message."""

from __future__ import annotations

import functools
import logging
import re
import signal
import threading
from collections.abc import Callable
from typing import Any

from omegaconf.errors import (
    InterpolationKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
)

from goodfit.hydra_ext.hydra_config import in_multirun
from goodfit.runtime.errors import EXIT_USER_ERROR, ConfigError, UserError, first_line

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
        except (UserError, MissingMandatoryValue, *INTERPOLATION_ERRORS) as err:
            message = err if isinstance(err, UserError) else ConfigError(_config_value(err))
            log.error("%s", message)  # one line, in the console and in the run's train.log
            if in_multirun():
                raise message from None
            raise SystemExit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:  # Ctrl-C outside training (there StopOnSignal handles it)
            log.error("Stopped by Ctrl-C")
            raise SystemExit(EXIT_CTRL_C) from None

    return wrapper


# A `${…}` the config cannot resolve (`${data:in_feature}`, an unset `${oc.env:…}`): OmegaConf
# raises these when the part holding it is built, after the data is loaded.
INTERPOLATION_ERRORS = (InterpolationKeyError, InterpolationResolutionError)


def _config_value(err: MissingMandatoryValue | InterpolationResolutionError) -> str:
    """A config value that cannot be had, said by its key: a `???` left unset as what to type,
    an interpolation by the resolver's own reason (OmegaConf wraps it in a sentence of its own)."""
    if isinstance(err, MissingMandatoryValue):
        return (f"{err.full_key} has no value and is required: give it on the command line "
                f"({err.full_key}=…)")  # fmt: skip
    said = first_line(err)
    wrapped = _WRAPPED_REASON.match(said)
    if wrapped:  # OmegaConf's "KeyError raised while resolving interpolation: '<reason>'"
        said = wrapped.group(2)[1:-1] if wrapped.group(1) == "KeyError" else wrapped.group(2)
    return f"{err.full_key or 'the config'}: {said}"


_WRAPPED_REASON = re.compile(r"(\w+) raised while resolving interpolation: (.+)")
