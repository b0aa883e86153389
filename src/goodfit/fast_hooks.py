"""Callback dispatch that skips the hooks a callback does not implement.

Lightning calls every hook on every callback, overridden or not, each inside a profiler context
named with an f-string of the callback's `state_key` (for ModelCheckpoint a `repr` of a dict).
With 8 callbacks and about 10 hooks per training step that is ~80 dispatches a step, most of
them to the empty methods of the `Callback` base class: at batch size 32 on a CPU it was the
largest part of goodfit's cost over a plain loop. This dispatcher calls only the callbacks that
override the hook, in the same order, with the same `_current_fx_name` bookkeeping. When a real
profiler is set (`trainer.profiler=simple`, …) Lightning's own dispatcher runs unchanged, so
profiles stay complete.
"""

from __future__ import annotations

import contextlib
from typing import Any

from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.trainer import call

_lightning_dispatch = call._call_callback_hooks
_MONITORING = (EarlyStopping, Checkpoint)  # Lightning's own hard-coded list


def implements(callback: Callback, hook_name: str) -> bool:
    """Whether the callback's class overrides `hook_name` (the base class's hooks are empty)."""
    base = getattr(Callback, hook_name, None)
    return base is None or getattr(type(callback), hook_name, None) is not base


def _active(callbacks: list[Callback], hook_name: str, monitoring: bool | None) -> list:
    key = (hook_name, monitoring, *map(id, callbacks))
    found = _CACHE.get(key)
    if found is None:
        found = [
            cb for cb in callbacks
            if implements(cb, hook_name)
            and (monitoring is None or isinstance(cb, _MONITORING) == monitoring)
        ]  # fmt: skip
        _CACHE[key] = found
    return found


_CACHE: dict[tuple, list] = {}


def dispatch_callback_hooks(
    trainer: Any,
    hook_name: str,
    *args: Any,
    monitoring_callbacks: bool | None = None,
    **kwargs: Any,
) -> None:
    if not isinstance(trainer.profiler, PassThroughProfiler):
        return _lightning_dispatch(
            trainer, hook_name, *args, monitoring_callbacks=monitoring_callbacks, **kwargs
        )
    callbacks = _active(trainer.callbacks, hook_name, monitoring_callbacks)
    if not callbacks:
        return None
    pl_module = trainer.lightning_module
    if pl_module:
        previous = pl_module._current_fx_name
        pl_module._current_fx_name = hook_name
    for callback in callbacks:
        getattr(callback, hook_name)(trainer, pl_module, *args, **kwargs)
    if pl_module:
        pl_module._current_fx_name = previous
    return None


def use_fast_callback_dispatch() -> None:
    call._call_callback_hooks = dispatch_callback_hooks


_NO_PROFILING = contextlib.nullcontext()  # stateless, so one instance serves every call


class NoProfiler(PassThroughProfiler):
    """The Trainer's profiler when none is asked for. Lightning wraps about 34 calls a training
    step in `profiler.profile(name)`; PassThroughProfiler makes a generator-based context
    manager for each, this returns one shared no-op context. (Passed as `Trainer(profiler=…)`,
    a public argument; `trainer.profiler=simple` and the others replace it as usual.)"""

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:  # type: ignore[override]
        return _NO_PROFILING
