"""The per-epoch record of a run (summary.json's `history`), read from what the LightningModule
logs, so that any module logging `train/loss`, `val/loss` and `val/acc` per epoch gets the
learning curves and the fit verdict, not only goodfit's Classifier."""

from __future__ import annotations

import time
from typing import Any

import lightning as L

from goodfit.callbacks.train_eval import TrainSetEvaluation
from goodfit.runtime.timing import process_start_time

# summary.json's names for the metrics a module logs (each also read with Lightning's `_epoch`
# suffix, which `self.log(..., on_step=True, on_epoch=True)` gives the epoch's value).
FIGURES = {"train_loss": "train/loss", "train_acc": "train/acc",
           "val_loss": "val/loss", "val_acc": "val/acc"}  # fmt: skip
# Kept only when logged: the training figures measured as validation's (callbacks.train_eval).
OPTIONAL_FIGURES = {"train_eval_loss": "train_eval/loss", "train_eval_acc": "train_eval/acc"}
# Figures measured by validation (or beside it): none in an epoch that did not validate.
MEASURED_BY_VALIDATION = ("val_", "train_eval_")


class EpochHistory(L.Callback):
    """One row per training epoch: its number, the four figures of FIGURES and those of
    OPTIONAL_FIGURES when the run measures them (or they were logged), those measured by
    validation only when it ran in that epoch (else None), its wall and process CPU seconds,
    and for an epoch stopped before its last batch, the batches it ran of how many.
    The rows are kept in checkpoints, so a resumed run goes on with its earlier epochs.

    Lightning calls this callback's `on_train_epoch_end` before the module's own, where a module
    may log its epoch figures (Classifier does). So an ended epoch's row is completed later,
    from the metrics Lightning keeps: when the next epoch starts, when a checkpoint is written,
    and when training ends."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.startup_seconds: float | None = None
        self._trainer: L.Trainer | None = None
        self._started = (0.0, 0.0)  # wall clock and process CPU time at the epoch's start
        self._pending: dict[str, Any] | None = None  # an ended epoch, its figures not read yet
        self._validated = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._trainer = trainer
        if self.startup_seconds is None:
            self.startup_seconds = time.time() - process_start_time()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._complete()
        self._validated = False
        self._started = (time.perf_counter(), time.process_time())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validated = self._validated or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = {
            "epoch": trainer.current_epoch + 1,
            "seconds": round(time.perf_counter() - self._started[0], 4),
            # CPU time of the whole process (all threads): unlike wall time, not inflated when
            # a shared host lends the cores to someone else.
            "cpu_seconds": round(time.process_time() - self._started[1], 4),
            "validated": self._validated,
        }
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        total = trainer.num_training_batches
        if isinstance(total, int) and done < total:  # stopped within it (trainer.max_time)
            self._pending["batches"] = {"batches_run": done, "batches_in_epoch": total}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._complete()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:  # fmt: skip
        self._complete()

    def _complete(self) -> None:
        """Add the ended epoch's row, its figures read from Lightning's callback metrics."""
        if self._pending is None or self._trainer is None:
            return
        pending, self._pending = self._pending, None
        metrics = self._trainer.callback_metrics
        row: dict[str, Any] = {"epoch": pending["epoch"]}
        measuring = any(isinstance(c, TrainSetEvaluation) for c in self._trainer.callbacks)
        for name, key in {**FIGURES, **OPTIONAL_FIGURES}.items():
            skipped = name.startswith(MEASURED_BY_VALIDATION) and not pending["validated"]
            value = None if skipped else metrics.get(key, metrics.get(f"{key}_epoch"))
            if value is not None or name in FIGURES or measuring:
                row[name] = None if value is None else float(value)
        row.update(pending.get("batches", {}))
        row.update(seconds=pending["seconds"], cpu_seconds=pending["cpu_seconds"])
        self.history.append(row)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:  # fmt: skip
        # Checkpoints written before this callback kept the rows in the module's state; newer
        # ones hold this callback's state, which Lightning loads after this hook.
        self.history = list(checkpoint.get("goodfit_history", self.history))

    def state_dict(self) -> dict[str, Any]:
        self._complete()  # a checkpoint at an epoch's end holds that epoch
        return {"history": self.history, "startup_seconds": self.startup_seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
        self.startup_seconds = state_dict.get("startup_seconds")


def recorder_of(trainer: L.Trainer) -> EpochHistory | None:
    """The run's EpochHistory callback; None when `callbacks.epoch_history` is switched off."""
    return next((c for c in trainer.callbacks if isinstance(c, EpochHistory)), None)


def history_of(trainer: L.Trainer) -> list[dict[str, Any]]:
    """The run's per-epoch rows (none without the callback)."""
    recorder = recorder_of(trainer)
    return list(recorder.history) if recorder is not None else []


def startup_seconds_of(trainer: L.Trainer) -> float | None:
    """Seconds from the process's start to the first training step, when recorded."""
    recorder = recorder_of(trainer)
    return recorder.startup_seconds if recorder is not None else None
