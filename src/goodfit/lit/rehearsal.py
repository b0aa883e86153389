"""Rehearsals of the optimizer and the learning-rate schedule on a stand-in parameter, before
training starts.

torch checks an optimizer's values (betas, momentum, weight decay, its arguments) only when it
is built, which Lightning does once fit has started; building it on a stand-in first names the
`optimizer` group before any work. Several of torch's schedulers accept values they cannot run
with and fail only when stepped: `CosineAnnealingLR(T_max=0)` and `StepLR(step_size=0)` divide
by zero at their first step, after the first epoch's work; `OneCycleLR` with too few
`total_steps` fails when the run outlives it, near the end; a negative `eta_min` gives negative
learning rates that no one reports. Stepping a copy of the schedule on the stand-in, as many
times as the run will, turns each into an error naming the key before any training. No library
checks a schedule this way (torch checks only the constructor's arguments), hence this module.

The stand-in is a 2×2 matrix: some optimizers take only matrices (torch's Muon).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from goodfit.runtime.errors import ConfigError, first_line

# A schedule is rehearsed for at most this many steps (50,000 cosine steps: ~0.1 s on 2 cores).
# Longer runs (or max_epochs=-1) are rehearsed for their first REHEARSAL_LIMIT steps.
REHEARSAL_LIMIT = 50_000


OptimizerFactory = Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]


def rehearse_optimizer(
    optimizer_factory: OptimizerFactory, key: str = "optimizer", target: str | None = None
) -> Any:
    """Build the optimizer on a stand-in parameter; a ConfigError naming `key` when torch
    refuses its values (ValueError), its arguments (TypeError) or a list too short for it
    (IndexError: `betas=[0.9]`). `target`: the class as the config names it (default: where
    the class is defined)."""
    try:
        return optimizer_factory([torch.nn.Parameter(torch.zeros(2, 2))])
    except (ValueError, TypeError, IndexError) as err:
        name = target or _target_name(optimizer_factory)
        raise ConfigError(f"{key} ({name}) refuses its values: {first_line(err)}") from None


def _target_name(factory: Callable[..., Any]) -> str:
    func = getattr(factory, "func", factory)
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _step(scheduler: Any) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(0.0)  # a metric that never improves: every reduction happens
    else:
        scheduler.step()


def _bad_learning_rate(optimizer: torch.optim.Optimizer) -> float | None:
    for group in optimizer.param_groups:
        lr = float(group["lr"])
        if not (math.isfinite(lr) and lr >= 0):
            return lr
    return None


def rehearse_schedule(
    factory: Callable[..., Any],
    optimizer_factory: OptimizerFactory,
    steps: float,
    key: str = "scheduler.factory",
    **kwargs: Any,
) -> None:
    """Build the schedule `factory(optimizer, **kwargs)` on a stand-in optimizer made by
    `optimizer_factory` and step it `steps` times (the run's scheduler steps; at most
    REHEARSAL_LIMIT). Raise ConfigError naming `key` when it fails or gives a learning rate
    that is negative or not finite. The run's own optimizer and schedule are not touched."""
    optimizer = rehearse_optimizer(optimizer_factory)
    target = _target_name(factory)
    total = int(min(steps, REHEARSAL_LIMIT)) if math.isfinite(steps) else REHEARSAL_LIMIT
    done = 0
    try:
        with warnings.catch_warnings():
            # Stepping a schedule without optimizer steps is the point here, not a mistake.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step")
            scheduler = factory(optimizer, **kwargs)
            for done in range(1, total + 1):
                _step(scheduler)
                lr = _bad_learning_rate(optimizer)
                if lr is not None:
                    raise ConfigError(
                        f"{key} ({target}) gives a learning rate of {lr} at its step {done} of "
                        f"{total}: learning rates must be finite and >= 0; check its values"
                    )
    except ConfigError:
        raise
    except Exception as err:  # any failure of a user's schedule is reported the same way
        when = f"at its step {done} of {total}" if done else "when built"
        raise ConfigError(
            f"{key} ({target}) fails {when} in a rehearsal of this run's schedule, before "
            f"training: {type(err).__name__}: {err}; check its values"
        ) from err
