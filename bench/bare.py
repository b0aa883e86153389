"""The benchmark's second reference: Lightning itself, with nothing of goodfit's around the
network. A minimal LightningModule (the plain loop's work: forward, cross-entropy, SGD, loss and
accuracy summed on the device, a validation pass) and a Trainer without logger, checkpoints,
progress bar or model summary, fed the same in-memory batches as goodfit. Its ratio to the plain
loop is what Lightning's automatic optimization costs before any template adds anything; the
default path, plain Lightning too, is measured against it.

Run as `python -m bench.bare` (bench.compare starts it in a process of its own).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from bench.loop import ROOT
from bench.paired import PairedLoopEpochs


class BareLightning(L.LightningModule):
    """experiment=good's network trained as Lightning's docs teach, and nothing more."""

    def __init__(self) -> None:
        from goodfit.models import MLP

        super().__init__()
        self.net = MLP()
        self.epochs: list[tuple[float, float]] = []  # (wall, CPU) seconds per epoch

    def on_train_epoch_start(self) -> None:
        self._started = (time.perf_counter(), time.process_time())
        self._sums = torch.zeros(3, device=self.device)  # loss sum, correct, val correct

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self._sums[0] += loss.detach() * len(y)
        self._sums[1] += (logits.argmax(1) == y).sum()
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        if not self.trainer.sanity_checking:
            self._sums[2] += (self.net(x).argmax(1) == y).sum()

    def on_train_epoch_end(self) -> None:
        self._sums.tolist()  # the one host sync of the epoch, as the loop's and goodfit's
        wall, cpu = time.perf_counter() - self._started[0], time.process_time() - self._started[1]
        self.epochs.append((wall, cpu))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.net.parameters(), lr=0.01, foreach=True)


def bare_lightning(
    batch_size: int, epochs: int, device: str, paired_out: Path | None = None,
    chunk_steps: int = 0, seed: int = 42,
) -> dict[str, Any]:  # fmt: skip
    """Train BareLightning; its epochs in bench.compare's form. With `paired_out`, the plain
    loop runs beside it as beside goodfit (bench.paired) and writes its epochs there."""
    from goodfit.data.fashion_mnist import FashionMNISTDataModule
    from goodfit.runtime.timing import peak_rss_mb, process_start_time

    torch.manual_seed(seed)
    dm = FashionMNISTDataModule(data_dir=str(ROOT / "data"), batch_size=batch_size, seed=seed,
                                val_split=0.06, val_split_mode="tail")  # fmt: skip
    module = BareLightning()
    paired = [PairedLoopEpochs(str(paired_out), chunk_steps)] if paired_out else []
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="gpu" if device == "cuda" else "cpu", devices=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=paired,
    )  # fmt: skip
    started = time.time()
    trainer.fit(module, datamodule=dm)
    on_cuda = device == "cuda"
    peak = torch.cuda.max_memory_allocated() / 2**20 if on_cuda else peak_rss_mb()
    return {"epoch_seconds": [wall for wall, _ in module.epochs],
            "epoch_cpu_seconds": [cpu for _, cpu in module.epochs],
            "startup_seconds": started - process_start_time(), "peak_memory_mb": peak,
            "n_train": len(dm.train.labels), "test_acc": None,
            "fit_seconds": time.time() - started}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    parser.add_argument("--paired-out", type=Path, help="JSON file for the paired loop's epochs")
    parser.add_argument("--chunk-steps", type=int, default=0, help="bench.paired's chunk_steps")
    args = parser.parse_args(argv)
    result = bare_lightning(args.batch_size, args.epochs, args.device, args.paired_out,
                            args.chunk_steps)  # fmt: skip
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
