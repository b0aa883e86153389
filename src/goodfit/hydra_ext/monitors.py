"""The metrics a run's callbacks and plateau scheduler watch (`monitor`), checked before any
work: Lightning finds a metric the run does not log only when the first epoch ends, and never
finds one watched the wrong way round."""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Any

from omegaconf import DictConfig
from torch.optim.lr_scheduler import ReduceLROnPlateau

from goodfit.runtime.errors import ConfigError
from goodfit.runtime.imports import class_or_none

# A metric named so (the last part of its name) is better when lower (a loss) or higher (an
# accuracy), whatever logged it.
_BETTER = {"loss": "min", "acc": "max"}


def check_monitors(cfg: DictConfig) -> None:
    """Each watched metric must be one the run logs every epoch (checked for modules that list
    theirs in `epoch_metrics`, as goodfit's Classifier does), and a loss or an accuracy must be
    watched with the `mode` that makes it better."""
    watched = _watched(cfg)
    _check_logged(cfg, [(key, metric) for key, metric, _, _ in watched])
    for key, metric, mode_key, mode in watched:
        better = better_mode(str(metric))
        if better is not None and mode is not None and str(mode) != better:
            raise ConfigError(
                f"{mode_key}={mode} with {key}={metric}: a "
                f"{'lower' if str(mode) == 'min' else 'higher'} {metric} would count as better; "
                f"give {mode_key}={better}"
            )


def better_mode(metric: str) -> str | None:
    """ "min" for a loss (`val/loss`, `train/loss_epoch`), "max" for an accuracy, None when the
    name does not say."""
    return _BETTER.get(re.sub(r"_epoch$", "", metric.rsplit("/", 1)[-1]))


def _watched(cfg: DictConfig) -> list[tuple[str, Any, str, Any]]:
    """(monitor key, metric, mode key, mode) of every callback with a `monitor` and of a plateau
    scheduler; the mode is the class's default when the config gives none (min for Lightning's
    EarlyStopping and ModelCheckpoint), None when the class takes no mode."""
    watched = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node and node.get("monitor") is not None:
            mode = node.get("mode", _default_mode(node.get("_target_")))
            watched.append((f"callbacks.{name}.monitor", node.monitor,
                            f"callbacks.{name}.mode", mode))  # fmt: skip
    scheduler = cfg.get("scheduler") or {}
    factory_node = scheduler.get("factory") or {}
    factory = class_or_none(factory_node.get("_target_"))
    if factory is not None and issubclass(factory, ReduceLROnPlateau):
        mode = factory_node.get("mode", _default_mode(factory_node.get("_target_")))
        watched.append(("scheduler.monitor", scheduler.get("monitor"),
                        "scheduler.factory.mode", mode))  # fmt: skip
    return watched


def _default_mode(target: Any) -> Any:
    """The default of `mode` in the __init__ of the class `target` names, or None."""
    cls = class_or_none(target)
    try:
        parameter = inspect.signature(cls).parameters.get("mode") if cls else None
    except (TypeError, ValueError):  # no signature to read
        return None
    return (
        None
        if parameter is None or parameter.default is inspect.Parameter.empty
        else (parameter.default)
    )


def _check_logged(cfg: DictConfig, watched: list[tuple[str, Any]]) -> None:
    """Refuse a watched metric the module does not list in `epoch_metrics` (nor a callback)."""
    module = class_or_none((cfg.get("module") or {}).get("_target_"))
    if module is None or not hasattr(module, "epoch_metrics"):
        return
    logged = set(module.epoch_metrics)
    if (cfg.get("callbacks") or {}).get("lr_monitor") is not None and cfg.get("logger"):
        logged.add("train/lr")  # the lr_monitor callback's
    for node in (cfg.get("callbacks") or {}).values():  # callbacks that log (train_eval)
        logged.update(getattr(class_or_none((node or {}).get("_target_")), "epoch_metrics", ()))
    for key, metric in watched:
        if metric is not None and str(metric) not in logged:
            close = difflib.get_close_matches(str(metric), sorted(logged), n=1, cutoff=0.5)
            hint = f"; did you mean {key}={close[0]}?" if close else ""
            raise ConfigError(f"{key}={metric}: the run does not log it; it logs "
                              f"{', '.join(sorted(logged))} every epoch{hint}")  # fmt: skip
