"""Mean loss and accuracy of one stage (train, val or test), cheap per step."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, SumMetric


class StageMetrics(nn.Module):
    """Mean loss and accuracy of one stage.

    Per step: three in-place additions on the device (loss sum, correct count, sample count), no
    host sync. Per epoch: the totals go once into torchmetrics MeanMetrics, which sync them across
    processes. (A torchmetrics update per step costs more than these additions.)
    `images_counted`: the images the last computed figures rest on, all processes together
    (part of a split when `trainer.limit_val_batches` or `limit_test_batches` cut it).
    """

    def __init__(self) -> None:
        super().__init__()
        self.loss = MeanMetric(nan_strategy="disable")
        self.acc = MeanMetric(nan_strategy="disable")
        self.images = SumMetric(nan_strategy="disable")
        self.images_counted = 0
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
        """The epoch's mean loss and accuracy over every process; empty when no process
        counted a batch (a mean of nothing would be NaN)."""
        loss_sum, correct, count = self.totals.unbind()
        if count > 0:
            self.loss.update(loss_sum / count, weight=count)
            self.acc.update(correct / count, weight=count)
        self.images.update(count)
        self.images_counted = int(self.images.compute())  # all processes: all take this branch
        values = {}
        if self.images_counted > 0:
            values = {"loss": self.loss.compute().float(), "acc": self.acc.compute().float()}
        for metric in (self.loss, self.acc, self.images):
            metric.reset()
        self.totals.zero_()
        return values
