"""A user's own pieces, as a researcher would write them against plain Lightning: the tests plug
them into train.py by config alone (`module=…`, `+callbacks.x._target_=tests.plugins.…`)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn


class UserModule(L.LightningModule):
    """A LightningModule as Lightning's docs teach it: training_step returns the loss, automatic
    optimization does the rest. Logs the metrics goodfit's records read."""

    def __init__(self, net: nn.Module, optimizer: Any, scheduler: Any = None,
                 class_names: Any = ()) -> None:  # fmt: skip
        super().__init__()
        self.net, self.optimizer_factory = net, optimizer

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self.net(images), labels)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch: Any, stage: str) -> None:
        images, labels = batch
        logits = self.net(images)
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels))
        self.log(f"{stage}/acc", (logits.argmax(1) == labels).float().mean())

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())


class StepRecorder(L.Callback):
    """Sets its hooks on the instance, as LambdaCallback does, and writes what it saw to `out`:
    the global step at every on_train_batch_end, and the optimizer steps taken."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.batch_end_steps: list[int] = []
        self.optimizer_steps = 0
        self.on_train_batch_end = self._batch_end  # instance attributes, not class methods
        self.on_before_optimizer_step = self._optimizer_step
        self.on_train_end = self._write

    def _batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.batch_end_steps.append(trainer.global_step)

    def _optimizer_step(self, *args: Any) -> None:
        self.optimizer_steps += 1

    def _write(self, *args: Any) -> None:
        self.out.write_text(json.dumps({"batch_end_steps": self.batch_end_steps,
                                        "optimizer_steps": self.optimizer_steps}))  # fmt: skip


class SignalAtLastValidation(L.Callback):
    """Sends SIGTERM to its own process at the end of the last epoch's validation: after the
    last training batch, where no later batch or epoch could notice it. Not in a resumed run."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        last_epoch = trainer.current_epoch == trainer.max_epochs - 1
        first = trainer.global_rank == 0  # as `kill <pid>` reaches one process of several
        if first and last_epoch and not trainer.sanity_checking and trainer.ckpt_path is None:
            os.kill(os.getpid(), signal.SIGTERM)
