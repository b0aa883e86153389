"""The learning rate as a training curve: `train/lr`, once per epoch, the epoch on the x-axis."""

from __future__ import annotations

from typing import Any

import lightning as L


class EpochLearningRate(L.Callback):
    """Logs the learning rate each epoch trained with, as `train/lr` (`train/lr/<group>` for each
    parameter group when an optimizer has several; `train/lr/<n>/…` for the n-th optimizer
    after the first).

    It sits beside the loss and accuracy curves, on the same epoch axis: Lightning's
    LearningRateMonitor names it `lr-<Optimizer>`, which TensorBoard lists before the
    learning curves, and counts its x-axis in batches.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = learning_rates(trainer.optimizers)
        if values:
            # The same on every process: max keeps them exact, sync_dist Lightning's check quiet.
            pl_module.log_dict(values, on_epoch=True, on_step=False, sync_dist=True,
                               reduce_fx="max")  # fmt: skip


def learning_rates(optimizers: list[Any]) -> dict[str, float]:
    values = {}
    for k, optimizer in enumerate(optimizers):
        optimizer = getattr(optimizer, "optimizer", optimizer)  # wrapped by a strategy
        prefix = "train/lr" if k == 0 else f"train/lr/{k + 1}"
        groups = optimizer.param_groups
        for g, group in enumerate(groups):
            name = prefix if len(groups) == 1 else f"{prefix}/{group.get('name', f'pg{g + 1}')}"
            values[name] = float(group["lr"])
    return values
