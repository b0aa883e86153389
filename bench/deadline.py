"""The GPU check's time box inside a run: training ends at an epoch's end, before a deadline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L


class StopBeforeDeadline(L.Callback):
    """For the GPU check only: at each epoch's end (after validation), stop training when one
    more epoch like the last plus `reserve` seconds (testing, writing the record) would pass
    `at` (Unix time). The run then tests its best checkpoint and writes summary.json as usual,
    so a long experiment reports the epochs that fitted its share of the check's time. Writes
    {"planned": max_epochs, "stopped_after": epochs or null} to `out`."""

    def __init__(self, at: float, out: str, reserve: float = 10.0) -> None:
        self.at = float(at)
        self.reserve = float(reserve)
        self.out = Path(out)
        self._last_end = time.time()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = time.time()
        self._write(trainer, None)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # From one epoch's end to the next: whatever else runs each epoch (validation, the
        # benchmark's paired loop epoch) counts too.
        now = time.time()
        last_epoch, self._last_end = now - self._last_end, now
        done = trainer.current_epoch + 1
        if done < (trainer.max_epochs or 0) and now + last_epoch + self.reserve > self.at:
            trainer.should_stop = True
            self._write(trainer, done)

    def _write(self, trainer: L.Trainer, stopped_after: int | None) -> None:
        self.out.write_text(json.dumps({"planned": trainer.max_epochs,
                                        "stopped_after": stopped_after}))  # fmt: skip
