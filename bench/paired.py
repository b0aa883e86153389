"""The benchmark's paired measurement: plain-loop epochs inside a goodfit run."""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from bench.loop import LoopEpoch


class PairedLoopEpochs(L.Callback):
    """For the benchmark only: an epoch of the plain loop beside each goodfit epoch, in the same
    process, on the same tensors, with a copy of the network as it was at the start, in the
    run's precision (bf16-mixed: under a bfloat16 autocast, as a hand-written loop would). Both
    sides of a pair run under the same load, so their ratio holds still on a shared host, where
    runs in separate processes drift apart.

    `chunk_steps=0`: the loop's whole epoch runs before goodfit's (on a GPU: no sync inside
    goodfit's epoch). `chunk_steps=N`: the loop takes about N steps before every stretch of
    goodfit's epoch that holds as many, and validates when goodfit validates, so the two
    alternate every fraction of a second and even a host whose speed changes from second to
    second slows both alike (for the CPU). Time the loop spends inside goodfit's epoch is
    recorded, to be taken off goodfit's epoch time.

    Writes, after each epoch, the loop's [wall, CPU, wall inside goodfit's epoch, CPU inside]
    seconds to `out`. Costs goodfit nothing per step beyond one integer test in
    `on_train_batch_start`, a hook Lightning calls on every callback anyway.
    """

    def __init__(self, out: str, chunk_steps: int = 0) -> None:
        if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, int) or chunk_steps < 0:
            raise ValueError(f"PairedLoopEpochs: chunk_steps={chunk_steps!r}: must be an integer "
                             ">= 0 (0: the loop's whole epoch before goodfit's)")  # fmt: skip
        self.out = Path(out)
        self.chunk_steps = chunk_steps
        self.times: list[list[float]] = []
        self._state: tuple | None = None
        self._epoch: LoopEpoch | None = None
        self._every = 0  # goodfit batches between loop chunks
        self._spent = [0.0, 0.0, 0.0, 0.0]

    def _timed(self, work: Any, inside: bool) -> None:
        started, cpu_started = time.perf_counter(), time.process_time()
        work()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        self._spent[0] += wall
        self._spent[1] += cpu
        if inside:
            self._spent[2] += wall
            self._spent[3] += cpu

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        if self._state is None:
            net = copy.deepcopy(pl_module.net)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, foreach=True)
            data = (dm.train.images, dm.train.labels, dm.val.images, dm.val.labels)
            self._state = (net, opt, data, torch.Generator().manual_seed(0))
        self._spent = [0.0, 0.0, 0.0, 0.0]

        def start() -> None:
            self._epoch = LoopEpoch(*self._state[:3], dm.batch_size, self._state[3],
                                    str(trainer.precision))  # fmt: skip

        self._timed(start, inside=False)
        if not self.chunk_steps:
            self._timed(self._epoch.finish, inside=False)
            self._record()
            return
        batches = trainer.num_training_batches
        self._every = max(1, round(self.chunk_steps * batches / self._epoch.steps))

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._epoch is None or batch_idx % self._every:
            return
        batches = trainer.num_training_batches
        until = math.ceil(self._epoch.steps * min(batch_idx + self._every, batches) / batches)
        self._timed(lambda: self._epoch.run_steps(until), inside=True)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._finish()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish()  # a run without validation

    def _finish(self) -> None:
        if self._epoch is not None:
            self._timed(self._epoch.finish, inside=True)
            self._record()

    def _record(self) -> None:
        self._epoch = None
        self.times.append(list(self._spent))
        self.out.write_text(json.dumps(self.times))
