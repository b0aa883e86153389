"""goodfit's own optimizer steps (Lightning's manual optimization), for `perf=fast`.

Why: Lightning's automatic optimization wraps every step in a closure, several hook calls and
strategy and precision wrappers, about 1,300 Python calls a step. For a small network at batch
32 on a CPU that is most of the cost over a plain PyTorch loop. These steps keep
`manual_backward` and `LightningOptimizer.step` (so precision plugins, DDP and the
`on_before_backward`/`on_after_backward`/`on_before_optimizer_step` hooks work as before) and
keep what automatic optimization does: `trainer.gradient_clip_val`/`gradient_clip_algorithm`
(applied in `on_before_optimizer_step`, after mixed precision unscaled the gradients),
`trainer.accumulate_grad_batches` (with a step at the epoch's last batch), and schedulers stepped
where Lightning steps them. Tests check that both give the same weights.

With `steps_per_batch` K > 1 the training loader hands over K batches at once and
`training_step` takes a step on each, so Lightning's per-batch work is paid once per K steps.
Each step still sees one batch of `batch_size`: the weights are the same as with K = 1, but
per-batch callback hooks, the progress bar and integer `val_check_interval` or
`limit_train_batches` count groups of K (announced at start; see `goodfit.perf`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.optim.lr_scheduler import ReduceLROnPlateau

from goodfit.runtime.errors import ConfigError


@dataclass(frozen=True)
class FastSteps:
    """Installed as `module.fast_steps`; the module calls it from its hooks."""

    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str | None = None  # "norm" (Lightning's default) or "value"
    accumulate_grad_batches: int = 1
    steps_per_batch: int = 1  # optimizer steps per Lightning batch
    batch_size: int = 1  # the size of each step's batch
    monitor: str = "val/loss"  # what a plateau scheduler watches

    def __post_init__(self) -> None:
        if self.steps_per_batch < 1 or self.batch_size < 1 or self.accumulate_grad_batches < 1:
            raise ConfigError(
                f"perf.steps_per_batch={self.steps_per_batch}, datamodule.batch_size="
                f"{self.batch_size}, trainer.accumulate_grad_batches="
                f"{self.accumulate_grad_batches}: each must be an integer >= 1"
            )

    @staticmethod
    def trainer_kwargs() -> dict[str, Any]:
        """The Trainer must not see clipping or accumulation with manual optimization
        (Lightning raises); these steps apply them."""
        return {"gradient_clip_val": None, "gradient_clip_algorithm": None,
                "accumulate_grad_batches": 1}  # fmt: skip

    # ------------------------------------------------------------ called by the module

    def training_step(self, module: L.LightningModule, batch: tuple[Tensor, Tensor],
                      batch_idx: int) -> Tensor:  # fmt: skip
        """Split a Lightning batch into batches of `batch_size` and take a step on each;
        return their mean loss (detached). Stops at `trainer.max_steps`, as Lightning would."""
        images, labels = batch
        pieces = list(zip(images.split(self.batch_size), labels.split(self.batch_size),
                          strict=True))  # fmt: skip
        first = batch_idx * self.steps_per_batch
        last_batch = is_last_batch(module, batch_idx)
        max_steps = module.trainer.max_steps
        losses = []
        for i, piece in enumerate(pieces):
            loss = module.training_loss(piece)
            self.take_step(module, loss, first + i, last_batch and i == len(pieces) - 1)
            losses.append(loss.detach())
            if max_steps != -1 and module.trainer.global_step >= max_steps:
                break
        return torch.stack(losses).mean()

    def take_step(self, module: L.LightningModule, loss: Tensor, step_idx: int,
                  last: bool) -> None:  # fmt: skip
        """Backward; every `accumulate_grad_batches` batches, and at the epoch's last batch
        (`last`), an optimizer step and the step-interval schedulers; at the last batch also the
        epoch-interval ones (plateau schedulers wait for validation). This is where and in which
        order Lightning's automatic optimization does these things."""
        n = self.accumulate_grad_batches
        module.manual_backward(loss / n if n > 1 else loss)
        if (step_idx + 1) % n and not last:
            return
        optimizer = module.optimizers()
        optimizer.step()
        optimizer.zero_grad()
        step_schedulers(module, "step", step_idx + 1, plateau=False)
        if last:
            step_schedulers(module, "epoch", module.current_epoch + 1, plateau=False)

    def clip_gradients(self, module: L.LightningModule, optimizer: Any) -> None:
        """Lightning's gradient clipping hook, called as its automatic optimization calls it."""
        if self.gradient_clip_val:
            module.configure_gradient_clipping(
                optimizer,
                gradient_clip_val=self.gradient_clip_val,
                gradient_clip_algorithm=self.gradient_clip_algorithm,
            )

    def check_schedulers(self, module: L.LightningModule) -> None:
        """Plateau schedulers step on a validation metric, once an epoch."""
        for config in module.trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, ReduceLROnPlateau) and config.interval != "epoch":
                raise ConfigError(
                    f"scheduler.interval={config.interval!r} is not allowed with "
                    "ReduceLROnPlateau: it steps on a validation metric, once per epoch; set "
                    "scheduler.interval=epoch"
                )

    def epoch_end(self, module: L.LightningModule) -> None:
        """Plateau schedulers step after validation, at the end of the training epoch."""
        step_schedulers(module, "epoch", module.current_epoch + 1, plateau=True,
                        monitor=self.monitor)  # fmt: skip

    def total_steps(self, trainer: L.Trainer) -> int | float:
        """Optimizer steps of the whole run (Lightning's `estimated_stepping_batches`, with
        these steps' accumulation and steps per batch)."""
        total = trainer.estimated_stepping_batches
        n, k = self.accumulate_grad_batches, self.steps_per_batch
        if (n == 1 and k == 1) or math.isinf(total):
            return total
        batches = trainer.num_training_batches  # Lightning batches, after limit_train_batches
        loader = trainer.train_dataloader
        if k > 1:
            whole_pass = getattr(loader, "batches", None)
            batches = whole_pass() if whole_pass and batches == len(loader) else batches * k
        steps = math.ceil(batches / n) * max(trainer.max_epochs or 1, 1)
        return min(steps, trainer.max_steps) if trainer.max_steps != -1 else steps


def install(module: L.LightningModule, steps: FastSteps) -> None:
    """Hand the module (a goodfit Classifier) these steps: Lightning's manual optimization."""
    module.fast_steps = steps
    module.automatic_optimization = False


def uninstall(module: L.LightningModule, steps: FastSteps) -> None:
    """Give the module back to Lightning's automatic optimization."""
    if getattr(module, "fast_steps", None) is steps:
        module.fast_steps = None
        module.automatic_optimization = True


def is_last_batch(module: L.LightningModule, batch_idx: int) -> bool:
    """Whether `batch_idx` is the last Lightning batch of the training epoch."""
    trainer = module.trainer
    return trainer.is_last_batch or batch_idx + 1 >= trainer.num_training_batches


def step_schedulers(
    module: L.LightningModule, interval: str, count: int, plateau: bool, monitor: str = ""
) -> None:
    """Step the schedulers of this `interval` whose `frequency` divides `count`; plateau
    schedulers get the value of the `monitor` metric."""
    for config in module.trainer.lr_scheduler_configs:
        is_plateau = isinstance(config.scheduler, ReduceLROnPlateau)
        if is_plateau != plateau or config.interval != interval or count % config.frequency:
            continue
        metric = monitored_value(module, monitor) if is_plateau else None
        module.lr_scheduler_step(config.scheduler, metric)


def monitored_value(module: L.LightningModule, monitor: str) -> Tensor:
    metrics = module.trainer.callback_metrics
    if monitor not in metrics:
        raise ConfigError(
            f"scheduler.monitor={monitor!r} is not a logged metric; the plateau scheduler needs "
            f"one of: {', '.join(sorted(metrics)) or 'none logged yet'}"
        )
    return metrics[monitor]
