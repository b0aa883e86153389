"""Optimizer steps taken by the module itself (Lightning's manual optimization), with the
features of Lightning's automatic optimization: gradient accumulation, gradient clipping and
learning-rate schedulers; and several optimizer steps per Lightning batch (`steps_per_batch`).

Why: Lightning's automatic optimization wraps every step in a closure, several hook calls and
strategy and precision wrappers, about 1,300 Python calls a step. For a small network at batch
32 on a CPU that was most of goodfit's cost over a plain PyTorch loop. The manual path keeps
`manual_backward` and `LightningOptimizer.step` (so precision plugins, DDP and the
`on_before_backward`/`on_after_backward`/`on_before_optimizer_step` hooks work as before) and
drops the rest. The same `trainer.gradient_clip_val`, `trainer.gradient_clip_algorithm` and
`trainer.accumulate_grad_batches` keys configure it; `manual_optimization=false` hands the step
back to Lightning. Tests check both paths give the same weights.

What remains per Lightning batch (fetching, device transfer, hooks, logger bookkeeping; README:
Performance, `python -m goodfit.bench --overrides …`) is paid once per
`steps_per_batch` optimizer steps when the training loader yields that many batches at once
(`TensorBatches(steps_per_batch=K)`); `Classifier.training_step` splits them again. Each step
still sees one batch of `batch_size`, so the weights are the same as with one step per batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig
from torch import Tensor
from torch.optim.lr_scheduler import ReduceLROnPlateau

from goodfit.config import ConfigError

# Trainer arguments that Lightning refuses with manual optimization; goodfit applies them itself.
STEP_TRAINER_KEYS = ("gradient_clip_val", "gradient_clip_algorithm", "accumulate_grad_batches")


@dataclass(frozen=True)
class StepSettings:
    """How the module steps its optimizer. `manual=False`: Lightning's automatic optimization
    (then the other fields are ignored here and go to the Trainer)."""

    manual: bool = True
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str | None = None  # "norm" (Lightning's default) or "value"
    accumulate_grad_batches: int = 1
    steps_per_batch: int = 1  # optimizer steps per Lightning batch (manual steps only)
    batch_size: int = 0  # the size of each step's batch, when steps_per_batch > 1

    def __post_init__(self) -> None:
        if self.steps_per_batch > 1 and not self.manual:
            raise ConfigError(
                f"steps_per_batch={self.steps_per_batch} needs manual_optimization=true "
                "(Lightning's automatic optimization takes one step per batch)"
            )
        if self.steps_per_batch > 1 and self.batch_size < 1:
            raise ValueError(f"steps_per_batch={self.steps_per_batch} needs the batch_size")

    @classmethod
    def from_config(cls, cfg: DictConfig) -> StepSettings:
        # absent only from the saved config of a run made before goodfit stepped itself
        if not cfg.get("manual_optimization", False):
            return cls(manual=False)  # one step per batch: steps_per_batch does not apply
        trainer = cfg.get("trainer") or {}
        return cls(
            manual=True,
            gradient_clip_val=trainer.get("gradient_clip_val"),
            gradient_clip_algorithm=trainer.get("gradient_clip_algorithm"),
            accumulate_grad_batches=trainer.get("accumulate_grad_batches") or 1,
            steps_per_batch=cfg.get("steps_per_batch") or 1,
            batch_size=cfg.datamodule.batch_size,
        )

    def trainer_kwargs(self) -> dict[str, Any]:
        """Overrides for the Trainer's arguments: with manual steps, the Trainer must not see
        clipping or accumulation (Lightning raises); the module applies them."""
        if not self.manual:
            return {}
        return {"gradient_clip_val": None, "gradient_clip_algorithm": None,
                "accumulate_grad_batches": 1}  # fmt: skip


def is_last_batch(module: L.LightningModule, batch_idx: int) -> bool:
    """Whether `batch_idx` is the last Lightning batch of the training epoch."""
    trainer = module.trainer
    return trainer.is_last_batch or batch_idx + 1 >= trainer.num_training_batches


def training_steps(
    module: L.LightningModule, settings: StepSettings, batch: tuple[Tensor, Tensor],
    batch_idx: int, loss_of: Callable[[tuple[Tensor, Tensor]], Tensor],
) -> Tensor:  # fmt: skip
    """Split a Lightning batch of `steps_per_batch` batches and take a step on each; return
    their mean loss (detached). Stops at `trainer.max_steps`, as Lightning would."""
    images, labels = batch
    size = settings.batch_size
    pieces = list(zip(images.split(size), labels.split(size), strict=True))
    first = batch_idx * settings.steps_per_batch
    last_batch = is_last_batch(module, batch_idx)
    max_steps = module.trainer.max_steps
    losses = []
    for i, piece in enumerate(pieces):
        loss = loss_of(piece)
        take_step(module, settings, loss, first + i, last_batch and i == len(pieces) - 1)
        losses.append(loss.detach())
        if max_steps != -1 and module.trainer.global_step >= max_steps:
            break
    return torch.stack(losses).mean()


def take_step(
    module: L.LightningModule, settings: StepSettings, loss: Tensor, step_idx: int, last: bool
) -> None:
    """Backward; every `accumulate_grad_batches` batches, and at the epoch's last batch
    (`last`), an optimizer step and the step-interval schedulers; at the last batch also the
    epoch-interval ones (not plateau schedulers: they wait for validation). This is where and
    in which order Lightning's automatic optimization does these things. Clipping happens in
    `on_before_optimizer_step` (see `clip_gradients`), after mixed precision unscaled them."""
    n = settings.accumulate_grad_batches
    module.manual_backward(loss / n if n > 1 else loss)
    if (step_idx + 1) % n and not last:
        return
    optimizer = module.optimizers()
    optimizer.step()
    optimizer.zero_grad()
    step_schedulers(module, "step", step_idx + 1, plateau=False)
    if last:
        step_schedulers(module, "epoch", module.current_epoch + 1, plateau=False)


def clip_gradients(module: L.LightningModule, settings: StepSettings, optimizer: Any) -> None:
    """Lightning's gradient clipping hook, called as its automatic optimization calls it."""
    if settings.gradient_clip_val:
        module.configure_gradient_clipping(
            optimizer,
            gradient_clip_val=settings.gradient_clip_val,
            gradient_clip_algorithm=settings.gradient_clip_algorithm,
        )


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


def check_schedulers(module: L.LightningModule) -> None:
    """Plateau schedulers step on a validation metric, once an epoch."""
    for config in module.trainer.lr_scheduler_configs:
        if isinstance(config.scheduler, ReduceLROnPlateau) and config.interval != "epoch":
            raise ConfigError(
                f"scheduler.interval={config.interval!r} is not allowed with ReduceLROnPlateau: "
                "it steps on a validation metric, once per epoch; set scheduler.interval=epoch"
            )


def stepping_batches(trainer: L.Trainer, settings: StepSettings) -> int | float:
    """Optimizer steps of the whole run (Lightning's `estimated_stepping_batches`, with the
    module's own gradient accumulation and steps per batch)."""
    total = trainer.estimated_stepping_batches
    n, k = settings.accumulate_grad_batches, settings.steps_per_batch
    if not settings.manual or (n == 1 and k == 1) or math.isinf(total):
        return total
    batches = trainer.num_training_batches  # Lightning batches, after limit_train_batches
    loader = trainer.train_dataloader
    if k > 1:
        whole_pass = getattr(loader, "batches", None)
        batches = whole_pass() if whole_pass and batches == len(loader) else batches * k
    steps = math.ceil(batches / n) * max(trainer.max_epochs or 1, 1)
    return min(steps, trainer.max_steps) if trainer.max_steps != -1 else steps
