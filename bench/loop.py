"""The benchmark's baseline: the plain PyTorch loop a researcher would write, and the machine."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    import lightning
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
    }


def autocast(device: Any, precision: str) -> Any:
    """What a hand-written loop does for Lightning's `precision`: nothing for 32-true, a
    bfloat16 autocast around the forward pass and the loss for bf16-mixed."""
    import torch

    if str(precision) in ("32-true", "32"):
        return contextlib.nullcontext()
    if str(precision) == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision={precision}: the plain loop runs 32-true or bf16-mixed")


class LoopEpoch:
    """One epoch of the hand-written baseline, runnable in pieces: permute, then slice and
    step (`run_steps`, as often as wanted), then `finish`: validate and read the totals (the one
    host sync, as goodfit). Loss and accuracy accumulate on the device."""

    def __init__(
        self, net: Any, opt: Any, data: tuple, batch_size: int, generator: Any,
        precision: str = "32-true",
    ) -> None:  # fmt: skip
        import torch

        x, y, self.vx, self.vy = data
        self.net, self.opt, self.batch_size, self.precision = net, opt, batch_size, precision
        self.device = x.device
        net.train()
        order = torch.randperm(len(x), generator=generator).to(self.device)
        self.xs, self.ys = x[order], y[order]
        self.steps = math.ceil(len(x) / batch_size)
        self.done = 0  # steps taken
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)

    def run_steps(self, until: int) -> None:
        """Take the optimizer steps up to step `until` (at most the epoch's)."""
        import torch.nn.functional as F

        net, opt, bs = self.net, self.opt, self.batch_size
        for step in range(self.done, min(until, self.steps)):
            xb = self.xs[step * bs : (step + 1) * bs]
            yb = self.ys[step * bs : (step + 1) * bs]
            with autocast(self.device, self.precision):
                logits = net(xb)
                loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.loss_sum += loss.detach() * len(yb)
            self.correct += (logits.argmax(1) == yb).sum()
        self.done = max(self.done, min(until, self.steps))

    def finish(self) -> None:
        """The steps not taken yet, a validation pass, and the host sync."""
        import torch

        self.run_steps(self.steps)
        net, vx, vy = self.net, self.vx, self.vy
        net.eval()
        with torch.no_grad(), autocast(self.device, self.precision):
            val_correct = sum((net(vx[i : i + 1000]).argmax(1) == vy[i : i + 1000]).sum()
                              for i in range(0, len(vy), 1000))  # fmt: skip
        net.train()
        float(self.loss_sum), float(self.correct), float(val_correct)


def loop_epoch(
    net: Any, opt: Any, data: tuple, batch_size: int, generator: Any, precision: str = "32-true"
) -> None:
    """One whole epoch of the hand-written baseline (`LoopEpoch` in one go)."""
    LoopEpoch(net, opt, data, batch_size, generator, precision).finish()


def plain_loop(batch_size: int, epochs: int, device: str, seed: int = 42) -> dict[str, Any]:
    """The baseline in a process of its own: its epochs, start-up and peak memory."""
    import torch

    from goodfit.data.fashion_mnist import FashionMNISTDataModule
    from goodfit.models import MLP
    from goodfit.runtime.timing import peak_rss_mb, process_start_time

    torch.manual_seed(seed)
    dm = FashionMNISTDataModule(data_dir=str(ROOT / "data"), val_split=0.06, val_split_mode="tail")
    dm.prepare_data()
    dm.load()
    dev = torch.device(device)
    tensors = (dm.train.images, dm.train.labels, dm.val.images, dm.val.labels)
    data = tuple(t.to(dev) for t in tensors)
    net = MLP().to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, foreach=True)
    generator = torch.Generator().manual_seed(seed)
    epoch_seconds, epoch_cpu_seconds, startup = [], [], None
    for _ in range(epochs):
        started, cpu_started = time.perf_counter(), time.process_time()
        if startup is None:
            startup = time.time() - process_start_time()
        loop_epoch(net, opt, data, batch_size, generator)
        epoch_seconds.append(time.perf_counter() - started)
        epoch_cpu_seconds.append(time.process_time() - cpu_started)
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else peak_rss_mb()
    return {"epoch_seconds": epoch_seconds, "epoch_cpu_seconds": epoch_cpu_seconds,
            "startup_seconds": startup, "peak_memory_mb": peak,
            "n_train": len(data[0])}  # fmt: skip
