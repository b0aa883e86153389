"""The benchmark's paired measurement: plain-loop epochs inside a goodfit run."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import lightning as L
import torch

from bench.loop import loop_epoch


class PairedLoopEpochs(L.Callback):
    """For the benchmark only: before each goodfit epoch, one epoch of the plain loop in the
    same process, on the same tensors, with a copy of the network as it was at the start, in
    the run's precision (bf16-mixed: under a bfloat16 autocast, as a hand-written loop would).
    Both sides of a pair run moments apart under the same load, so their ratio holds still on
    a shared host, where runs in separate processes drift apart. Writes the loop's epoch times
    (wall and CPU seconds) to `out` after each epoch. Costs goodfit nothing per step: it only
    implements an epoch hook, and goodfit's dispatch calls only the hooks a callback has."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.times: list[list[float]] = []
        self._state: tuple | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        if self._state is None:
            net = copy.deepcopy(pl_module.net)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, foreach=True)
            data = (dm.train.images, dm.train.labels, dm.val.images, dm.val.labels)
            self._state = (net, opt, data, torch.Generator().manual_seed(0))
        net, opt, data, generator = self._state
        started, cpu_started = time.perf_counter(), time.process_time()
        loop_epoch(net, opt, data, dm.batch_size, generator, str(trainer.precision))
        self.times.append([time.perf_counter() - started, time.process_time() - cpu_started])
        self.out.write_text(json.dumps(self.times))
