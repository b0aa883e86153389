"""Callback dispatch that skips the hooks a callback does not implement (`perf.fast_dispatch`).

Lightning calls every hook on every callback, overridden or not, each inside a profiler context
named with an f-string of the callback's `state_key` (for ModelCheckpoint a `repr` of a dict).
With 8 callbacks and about 10 hooks per training step that is ~80 dispatches a step, most of them
to the empty methods of the `Callback` base class. This dispatcher calls only the callbacks that
implement the hook — on their class *or on the instance* (as LambdaCallback does) — in the same
order, with the same `_current_fx_name` bookkeeping. With a real profiler
(`trainer.profiler=simple`, …) Lightning's own dispatcher runs, so profiles stay complete.

Lightning has no public setting for its dispatcher, so `fast_callback_dispatch()` replaces
`lightning.pytorch.trainer.call._call_callback_hooks` for one run only, checks that the
replacement took, and restores Lightning's own when the run ends, error or not. Its cache of
which callback implements which hook lives and dies with that run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.trainer import call

from goodfit.runtime.errors import ConfigError

_MONITORING = (EarlyStopping, Checkpoint)  # Lightning's own hard-coded list


def implements(callback: Callback, hook_name: str) -> bool:
    """Whether the callback has its own `hook_name`: set on the instance, or overriding the
    base class's empty method."""
    if hook_name in vars(callback):
        return True
    base = getattr(Callback, hook_name, None)
    return base is None or getattr(type(callback), hook_name, None) is not base


class Dispatcher:
    """Lightning's `_call_callback_hooks`, calling only the callbacks that implement the hook."""

    def __init__(self, lightning_dispatch: Any) -> None:
        self.lightning_dispatch = lightning_dispatch
        self.cache: dict[tuple, list[Callback]] = {}

    def active(self, callbacks: list[Callback], hook_name: str,
               monitoring: bool | None) -> list[Callback]:  # fmt: skip
        key = (hook_name, monitoring, *map(id, callbacks))
        found = self.cache.get(key)
        if found is None:
            found = [
                cb for cb in callbacks
                if implements(cb, hook_name)
                and (monitoring is None or isinstance(cb, _MONITORING) == monitoring)
            ]  # fmt: skip
            self.cache[key] = found
        return found

    def __call__(self, trainer: Any, hook_name: str, *args: Any,
                 monitoring_callbacks: bool | None = None, **kwargs: Any) -> None:  # fmt: skip
        if not isinstance(trainer.profiler, PassThroughProfiler):
            return self.lightning_dispatch(
                trainer, hook_name, *args, monitoring_callbacks=monitoring_callbacks, **kwargs
            )
        callbacks = self.active(trainer.callbacks, hook_name, monitoring_callbacks)
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


@contextmanager
def fast_callback_dispatch() -> Iterator[Dispatcher]:
    """Use the Dispatcher while the block runs; Lightning's own dispatcher before and after."""
    original = call._call_callback_hooks
    if isinstance(original, Dispatcher):
        raise ConfigError(
            "perf.fast_dispatch: a goodfit run is already dispatching in this process"
        )
    dispatcher = Dispatcher(original)
    call._call_callback_hooks = dispatcher
    if call._call_callback_hooks is not dispatcher:
        raise ConfigError(
            "perf.fast_dispatch: Lightning's callback dispatcher could not be replaced"
        )
    try:
        yield dispatcher
    finally:
        call._call_callback_hooks = original
        dispatcher.cache.clear()
