"""Stop a run whose training loss became NaN or infinite, with a message that says what to try."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from goodfit.runtime.errors import DivergedError, require_count


class StopOnDivergence(L.Callback):
    """Checks the training loss of every batch and stops the run when it is NaN or infinite.

    On an accelerator the check stays on the device (a running "all finite so far" flag); the
    host reads the flag every `check_every_n_steps` steps and at the end of each epoch, so the
    run stops at most that many steps after the loss diverged, without a host sync per step.
    On the CPU reading the loss costs nothing, so it is read after every step.
    """

    def __init__(self, check_every_n_steps: int = 20) -> None:
        self.check_every_n_steps = require_count(
            "StopOnDivergence: check_every_n_steps", check_every_n_steps
        )
        self._finite: torch.Tensor | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        if loss.device.type == "cpu":  # one read, no kernels
            value = loss.item()
            if not math.isfinite(value):
                self._finite = torch.tensor(False)
                self.check(trainer, pl_module, value)
            return
        finite = torch.isfinite(loss.detach()).all()
        if self._finite is None:
            self._finite = finite
        else:
            self._finite = self._finite & finite
        if trainer.global_step % self.check_every_n_steps == 0:
            self.check(trainer, pl_module, None)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer, pl_module, None)

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: float | None) -> None:
        """Raise DivergedError when any training loss so far was not finite."""
        if self._finite is None or bool(self._finite):
            return
        value = f" ({loss})" if loss is not None else ""
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        raise DivergedError(
            f"Training diverged: train/loss is not finite{value} at epoch "
            f"{trainer.current_epoch + 1}, step {trainer.global_step}. The run is stopped and "
            f"marked failed. Try a lower learning rate (optimizer.lr={lr}), gradient clipping "
            "(trainer.gradient_clip_val=1.0), or datamodule.normalize=standardize."
        )
