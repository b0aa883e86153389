"""The LightningModule: a network, an optimizer factory, an optional scheduler, metrics."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from goodfit.evaluation import TestEvaluation, TestResults

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class StageMetrics(nn.Module):
    """Mean loss and accuracy of one stage, accumulated on the device: no host sync per step."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.loss = MeanMetric(nan_strategy="disable")
        self.acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)

    def update(self, loss: Tensor, logits: Tensor, target: Tensor) -> None:
        self.loss.update(loss.detach(), weight=target.numel())
        self.acc.update(logits.detach(), target)

    def compute_and_reset(self) -> dict[str, Tensor]:
        values = {"loss": self.loss.compute(), "acc": self.acc.compute()}
        self.loss.reset()
        self.acc.reset()
        return values


class Classifier(L.LightningModule):
    """Trains any image classifier `net` with cross-entropy.

    Logs `train/loss`, `train/acc`, `val/loss`, `val/acc` once per epoch and `test/loss`,
    `test/acc`, with the epoch as TensorBoard's step, and keeps the per-epoch `history`
    (saved in checkpoints, so a resumed run keeps it). After testing, `test_results` holds the
    confusion matrix, per-class figures and misclassified examples.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/loss",
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.train_metrics = StageMetrics(num_classes)
        self.val_metrics = StageMetrics(num_classes)
        self.test_metrics = StageMetrics(num_classes)
        self.test_evaluation = TestEvaluation(num_classes)
        self.test_results: TestResults | None = None
        self.history: list[dict[str, float | int | None]] = []
        self._val: dict[str, float] = {}

    def stage_metrics(self, stage: str) -> StageMetrics:
        return getattr(self, f"{stage}_metrics")

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        images, labels = batch
        logits = self.net(images)
        loss = F.cross_entropy(logits, labels)
        self.stage_metrics(stage).update(loss, logits, labels)
        return loss, logits

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        _, logits = self._step(batch, "test")
        self.test_evaluation.update(batch[0], logits, batch[1])

    def _log_stage(self, stage: str) -> dict[str, float]:
        values = self.stage_metrics(stage).compute_and_reset()
        # "step" makes the epoch (counted from 1) the x-axis of every curve in TensorBoard.
        logged = {f"{stage}/{name}": value for name, value in values.items()}
        self.log_dict(logged, prog_bar=stage != "test")
        self.log("step", float(self.current_epoch + (stage != "test")))
        return {name: float(value) for name, value in values.items()}

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.val_metrics.compute_and_reset()
            return
        self._val = self._log_stage("val")

    def on_train_epoch_end(self) -> None:
        train = self._log_stage("train")
        self.history.append(
            {
                "epoch": self.current_epoch + 1,
                "train_loss": train["loss"],
                "train_acc": train["acc"],
                "val_loss": self._val.get("loss"),
                "val_acc": self._val.get("acc"),
            }
        )
        self._val = {}

    def on_test_epoch_end(self) -> None:
        self._log_stage("test")
        self.test_results = self.test_evaluation.compute_and_reset()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["goodfit_history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("goodfit_history", []))

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        # OneCycleLR-style schedulers with total_steps=null get the run's real step count.
        if (
            isinstance(self.scheduler_factory, functools.partial)
            and "total_steps" in self.scheduler_factory.keywords
            and self.scheduler_factory.keywords["total_steps"] is None
        ):
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, **kwargs)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.scheduler_interval,
                "monitor": self.scheduler_monitor,
            },
        }
