"""A rich progress bar that touches its display every N batches instead of every batch."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from goodfit.runtime.errors import require_count


class ThrottledRichProgressBar(RichProgressBar):
    """Lightning's RichProgressBar updates its task and collects the progress-bar metrics
    after every batch; at batch size 32 on a CPU that is a measurable share of a step. This
    one does it every `update_every` batches and on an epoch's last batch."""

    def __init__(self, update_every: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.update_every = require_count("ThrottledRichProgressBar: update_every", update_every)

    def _due(self, batch_idx: int, total: int | float) -> bool:
        done = batch_idx + 1
        return done % self.update_every == 0 or done >= total

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        if not self.is_disabled and self._due(batch_idx, self.total_train_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        # a disabled bar (any process but the first) never learns its dataloader's size
        if not self.is_disabled and self._due(batch_idx, self.total_val_batches_current_dataloader):
            super().on_validation_batch_end(
                trainer, pl_module, outputs, batch, batch_idx, dataloader_idx
            )

    def _show_finished_epoch(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning calls the callbacks' `on_train_epoch_end` before the module's, where the
        Classifier (and any module that logs there) logs the epoch's training figures: the
        finished epoch's bar would keep showing the epoch before's. Shown once logged."""
        if not self.is_disabled and self.train_progress_bar_id is not None:
            RichProgressBar.on_train_epoch_end(self, trainer, pl_module)  # metrics and redraw

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._show_finished_epoch(trainer, pl_module)  # before the bar is reset or kept
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._show_finished_epoch(trainer, pl_module)  # the last bar, which stays on screen
        super().on_train_end(trainer, pl_module)
