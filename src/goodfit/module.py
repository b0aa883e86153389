"""The LightningModule: a network, an optimizer factory, an optional scheduler, metrics."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from goodfit import optimization
from goodfit.evaluation import TestEvaluation, TestResults
from goodfit.optimization import StepSettings
from goodfit.timing import process_start_time

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class StageMetrics(nn.Module):
    """Mean loss and accuracy of one stage.

    Per step: three in-place additions on the device (loss sum, correct count, sample count), no
    host sync. Per epoch: the totals go once into torchmetrics MeanMetrics, which sync them across
    processes. (A torchmetrics update per step costs more than these additions.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.loss = MeanMetric(nan_strategy="disable")
        self.acc = MeanMetric(nan_strategy="disable")
        # The running totals of the epoch. Saved in checkpoints, so a run resumed mid-epoch
        # ends the epoch with the same figures.
        self.register_buffer("totals", torch.zeros(3, dtype=torch.float64))
        self._sums: tuple[Tensor, ...] = ()  # views of `totals`, added to in place

    def update(self, loss: Tensor, logits: Tensor, target: Tensor) -> None:
        totals = self.totals
        if not self._sums or self._sums[0]._base is not totals:  # moved or replaced
            self._sums = totals.unbind()
        loss_sum, correct, count = self._sums
        n = target.shape[0]
        loss_sum.add_(loss.detach(), alpha=n)
        correct.add_(logits.detach().argmax(1).eq_(target).sum())
        count.add_(n)

    def compute_and_reset(self) -> dict[str, Tensor]:
        loss_sum, correct, count = self.totals.unbind()
        if count > 0:
            self.loss.update(loss_sum / count, weight=count)
            self.acc.update(correct / count, weight=count)
        values = {"loss": self.loss.compute().float(), "acc": self.acc.compute().float()}
        self.loss.reset()
        self.acc.reset()
        self.totals.zero_()
        return values


# Attributes Lightning sets on the module around every hook call; plain strings and flags, so
# nn.Module.__setattr__'s checks for parameters, buffers and submodules are not needed.
_BOOKKEEPING = frozenset({"_current_fx_name", "_current_dataloader_idx"})


class Classifier(L.LightningModule):
    """Trains any image classifier `net` with cross-entropy.

    Logs `train/loss`, `train/acc`, `val/loss`, `val/acc` once per epoch and `test/loss`,
    `test/acc`, with the epoch as TensorBoard's step, and keeps the per-epoch `history`
    (saved in checkpoints, so a resumed run keeps it). After testing, `test_results` holds the
    confusion matrix, per-class figures and misclassified examples. It steps its optimizer
    itself unless `steps.manual` is false (see `goodfit.optimization`).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/loss",
        num_classes: int = 10,
        steps: StepSettings | None = None,
    ) -> None:
        super().__init__()
        self.steps = steps or StepSettings()
        self.automatic_optimization = not self.steps.manual
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.train_metrics = StageMetrics()
        self.val_metrics = StageMetrics()
        self.test_metrics = StageMetrics()
        self.test_evaluation = TestEvaluation(num_classes)
        self.test_results: TestResults | None = None
        self.history: list[dict[str, float | int | None]] = []
        self.startup_seconds: float | None = None
        self._val: dict[str, float] = {}
        self._epoch_started = (0.0, 0.0)  # wall clock and process CPU time

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _BOOKKEEPING:
            object.__setattr__(self, name, value)  # ~44 times a step, see _BOOKKEEPING
        else:
            super().__setattr__(name, value)

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
        if self.steps.steps_per_batch > 1:
            return optimization.training_steps(self, self.steps, batch, batch_idx, self._loss)
        loss = self._loss(batch)
        if self.steps.manual:
            last = optimization.is_last_batch(self, batch_idx)
            optimization.take_step(self, self.steps, loss, batch_idx, last)
        return loss

    def _loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        return self._step(batch, "train")[0]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.steps.manual:
            optimization.clip_gradients(self, self.steps, optimizer)

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

    def on_train_start(self) -> None:
        if self.steps.manual:
            optimization.check_schedulers(self)
        if self.startup_seconds is None:
            self.startup_seconds = time.time() - process_start_time()

    def on_train_epoch_start(self) -> None:
        self._epoch_started = (time.perf_counter(), time.process_time())

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
                "seconds": round(time.perf_counter() - self._epoch_started[0], 4),
                # CPU time of the whole process (all threads): unlike wall time, not
                # inflated when a shared host lends the cores to someone else.
                "cpu_seconds": round(time.process_time() - self._epoch_started[1], 4),
            }
        )
        self._val = {}
        if self.steps.manual:
            epoch = self.current_epoch + 1
            optimization.step_schedulers(self, "epoch", epoch, plateau=True,
                                         monitor=self.scheduler_monitor)  # fmt: skip

    def on_test_epoch_end(self) -> None:
        self._log_stage("test")
        self.test_results = self.test_evaluation.compute_and_reset()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["goodfit_history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("goodfit_history", []))

    def configure_optimizers(self) -> Any:
        # Frozen parameters (transfer learning) stay out; Lightning's finetuning callbacks add
        # them as their own parameter group when they unfreeze them.
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        # OneCycleLR-style schedulers with total_steps=null get the run's real step count.
        if (
            isinstance(self.scheduler_factory, functools.partial)
            and "total_steps" in self.scheduler_factory.keywords
            and self.scheduler_factory.keywords["total_steps"] is None
        ):
            kwargs["total_steps"] = int(optimization.stepping_batches(self.trainer, self.steps))
        scheduler = self.scheduler_factory(optimizer, **kwargs)
        config = {"scheduler": scheduler, "interval": self.scheduler_interval}
        if not self.steps.manual:  # with manual steps, on_train_epoch_end passes the monitor
            config["monitor"] = self.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}


# Lightning inspects training_step's signature on every step (to decide whether to pass
# batch_idx); a precomputed __signature__ is inspect's fast path.
for _step in (Classifier.training_step, Classifier.validation_step, Classifier.test_step):
    _step.__signature__ = inspect.signature(_step)
