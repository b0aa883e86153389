"""Opt-in speed work (`perf=fast`): goodfit's own optimizer steps, several steps per Lightning
batch, a faster callback dispatch. Imported only when a run asks for one of them.

Everything here is set up for one run and undone when it ends (`FastPath.active()`), so a later
Trainer in the same process — the next job of a multirun, a test — sees Lightning unchanged.
What still changes meaning is announced at start; callbacks that count optimizer steps per
Lightning batch are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from goodfit.perf import manual_steps
from goodfit.perf.manual_steps import FastSteps
from goodfit.runtime.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PerfSettings:
    """The `perf` config group."""

    manual_optimization: bool = False
    steps_per_batch: int = 1
    fast_dispatch: bool = False

    @classmethod
    def from_config(cls, perf: Mapping[str, Any] | None) -> PerfSettings:
        values = dict(perf or {})
        known = {"manual_optimization", "steps_per_batch", "fast_dispatch", "noop_profiler"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"perf.{unknown[0]} is not a perf setting ({', '.join(sorted(known))})"
            )
        values.pop("noop_profiler", None)
        settings = cls(**values)
        if settings.steps_per_batch > 1 and not settings.manual_optimization:
            raise ConfigError(
                f"perf.steps_per_batch={settings.steps_per_batch} needs "
                "perf.manual_optimization=true (Lightning's automatic optimization takes one "
                "step per batch)"
            )
        return settings

    @property
    def changes_anything(self) -> bool:
        return self.manual_optimization or self.fast_dispatch


def _check_module(module: Any) -> None:
    from goodfit.lit.classifier import Classifier

    if not isinstance(module, Classifier):
        raise ConfigError(
            f"perf.manual_optimization=true takes goodfit's own steps inside Classifier; the "
            f"module {type(module).__name__} is not one. Use perf=default for your own module."
        )
    if type(module).training_step is not Classifier.training_step:
        raise ConfigError(
            f"perf.manual_optimization=true: {type(module).__name__} overrides training_step, "
            "which goodfit's own steps replace. Use perf=default (Lightning's automatic "
            "optimization) for a module with its own training_step."
        )


def _refuse_step_counting(callbacks: list[Any], steps_per_batch: int) -> None:
    """Callbacks that count optimizer steps at each Lightning batch would see K at a time."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    for callback in callbacks:
        every = getattr(callback, "_every_n_train_steps", 0) or 0
        if isinstance(callback, ModelCheckpoint) and every > 0:
            raise ConfigError(
                f"ModelCheckpoint(every_n_train_steps={every}) counts optimizer steps at each "
                f"Lightning batch, which perf.steps_per_batch={steps_per_batch} groups "
                f"{steps_per_batch} at a time (it would save at other steps). Use perf=default, "
                "or perf.steps_per_batch=1."
            )


class FastPath:
    """The speed work of one run: checked before the Trainer is built, active while it runs."""

    def __init__(self, settings: PerfSettings, trainer_cfg: Mapping[str, Any]) -> None:
        self.settings = settings
        self.steps: FastSteps | None = None
        if settings.manual_optimization:
            self.steps = FastSteps(
                gradient_clip_val=trainer_cfg.get("gradient_clip_val"),
                gradient_clip_algorithm=trainer_cfg.get("gradient_clip_algorithm"),
                accumulate_grad_batches=trainer_cfg.get("accumulate_grad_batches") or 1,
                steps_per_batch=settings.steps_per_batch,
            )

    def trainer_kwargs(self) -> dict[str, Any]:
        return FastSteps.trainer_kwargs() if self.steps is not None else {}

    def install(self, module: Any, datamodule: Any, callbacks: list[Any],
                batch_size: int, monitor: str) -> None:  # fmt: skip
        """Check the run's parts and hand the module its steps; announce what changes."""
        k = self.settings.steps_per_batch
        if self.steps is not None:
            _check_module(module)
            if k > 1 and not hasattr(datamodule, "steps_per_batch"):
                raise ConfigError(
                    f"perf.steps_per_batch={k} needs a datamodule that hands over several "
                    f"batches at once (goodfit's in-memory ones); {type(datamodule).__name__} "
                    "does not. Use perf.steps_per_batch=1."
                )
            _refuse_step_counting(callbacks, k)
            self.steps = FastSteps(**{**self.steps.__dict__, "batch_size": batch_size,
                                      "monitor": monitor})  # fmt: skip
            manual_steps.install(module, self.steps)
            if k > 1:
                datamodule.steps_per_batch = k
        self._announce()

    def _announce(self) -> None:
        s, lines = self.settings, []
        if s.manual_optimization:
            lines.append("goodfit takes the optimizer steps itself (manual optimization)")
        if s.steps_per_batch > 1:
            k = s.steps_per_batch
            lines.append(
                f"{k} optimizer steps per Lightning batch: per-batch callback hooks, the progress "
                f"bar, and integer val_check_interval / limit_train_batches count groups of {k}"
            )
        if s.fast_dispatch:
            lines.append("callback hooks are dispatched only to callbacks that implement them")
        log.warning("perf: opt-in speed work for this run (perf=default for plain Lightning):"
                    + "".join(f"\n  - {line}" for line in lines))  # fmt: skip

    @contextmanager
    def active(self, module: Any, datamodule: Any) -> Iterator[None]:
        """Run the block with the speed work on; undo all of it afterwards, error or not."""
        with ExitStack() as stack:
            if self.settings.fast_dispatch:
                from goodfit.perf.dispatch import fast_callback_dispatch

                stack.enter_context(fast_callback_dispatch())
            try:
                yield
            finally:
                if self.steps is not None:
                    manual_steps.uninstall(module, self.steps)
                if hasattr(datamodule, "steps_per_batch"):
                    datamodule.steps_per_batch = 1
