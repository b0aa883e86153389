"""Hydra's sweep syntax → Optuna distributions: `choice(a, b)` (categorical), `interval(lo, hi)`
(float, or int when both ends are ints; `tag(log, …)` for a log scale), `range(start, stop,
step)` (stepped int or float, `stop` excluded as in Hydra). A plain value is a fixed override."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from goodfit.runtime.errors import ConfigError


def _distribution(override: Any) -> Any:
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    key = override.get_key_element()
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(Transformer.encode)))
    if override.is_range_sweep():
        values = list(override.sweep_iterator(Transformer.identity))
        if not values:
            raise ConfigError(f"{key}={value}: an empty range")
        if all(isinstance(v, int) for v in values):
            return IntDistribution(values[0], values[-1], step=int(value.step))
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
    if override.is_interval_sweep():
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(f"{key}: {value} is not a search space Optuna can sample")


def parse_search_space(
    params: Mapping[str, Any] | None, arguments: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """The distributions to sample (from `hydra.sweeper.params`, then sweeps on the command
    line) and the fixed overrides every trial gets (plain values on the command line win over a
    search-space entry of the same key)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [f"{key}={value}" for key, value in (params or {}).items()]
    parser = OverridesParser.create()
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in parser.parse_overrides([*lines, *arguments]):
        key = override.get_key_element()
        if override.is_sweep_override():
            space[key] = _distribution(override)
            fixed.pop(key, None)
        else:
            fixed[key] = override.input_line
            space.pop(key, None)
    return space, list(fixed.values())


def suggest(trial: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    """Draw the trial's values through Optuna's public suggest API."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    values = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[name] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step,
                                             log=dist.log)  # fmt: skip
        else:
            values[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step,
                                               log=dist.log)  # fmt: skip
    return values


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """`key=value` overrides in Hydra's syntax (strings escaped as Hydra needs)."""
    from hydra.core.override_parser.types import Transformer

    return [f"{key}={Transformer.str(value)}" for key, value in values.items()]


def keys_not_in(config: Any, space: Mapping[str, Any]) -> list[str]:
    """Search keys the run's config has neither as a key nor as a config group (a key of one
    model searched with another: `model.dropout` with a model without dropout), each said with
    the group choice it is missing from; `+key` adds a key and is never one."""
    from omegaconf import OmegaConf

    choices = OmegaConf.select(config, "hydra.runtime.choices", default=None) or {}
    missing = object()
    problems = []
    for key in space:
        if key.startswith("+") or key in choices:
            continue
        found = OmegaConf.select(config, key, default=missing, throw_on_resolution_failure=False)
        if found is missing:
            group = key.split(".", 1)[0]
            of = f" ({group}={choices[group]} has none)" if group in choices else ""
            problems.append(f"{key}: not a key of this run's config{of}")
    return problems
