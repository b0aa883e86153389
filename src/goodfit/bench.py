"""`make bench`: training through goodfit against a plain PyTorch loop on the same tensors.

Both sides train the good experiment's network with SGD on the same in-memory tensors, with a
validation pass every epoch; each runs in its own process, so start-up and peak memory are its
own. The template side is `train.py` exactly as users run it (logging, validation, checkpoints,
progress bar). Run `python -m goodfit.bench --help` for the options.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


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


def loop_epoch(net: Any, opt: Any, data: tuple, batch_size: int, generator: Any) -> None:
    """One epoch of the hand-written baseline: permute, slice, step; accumulate loss and
    accuracy on the device; validate; one host sync at the end, as goodfit."""
    import torch
    import torch.nn.functional as F

    x, y, vx, vy = data
    dev = x.device
    net.train()
    order = torch.randperm(len(x), generator=generator).to(dev)
    xs, ys = x[order], y[order]
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    for i in range(0, len(xs), batch_size):
        xb, yb = xs[i : i + batch_size], ys[i : i + batch_size]
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * len(yb)
        correct += (logits.argmax(1) == yb).sum()
    net.eval()
    with torch.no_grad():
        val_correct = sum((net(vx[i : i + 1000]).argmax(1) == vy[i : i + 1000]).sum()
                          for i in range(0, len(vy), 1000))  # fmt: skip
    float(loss_sum), float(correct), float(val_correct)


def plain_loop(batch_size: int, epochs: int, device: str, seed: int = 42) -> dict[str, Any]:
    """The baseline in a process of its own: its epochs, start-up and peak memory."""
    import torch

    from goodfit.data.fashion_mnist import FashionMNISTDataModule
    from goodfit.models import MLP
    from goodfit.timing import peak_rss_mb, process_start_time

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


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return wall, result.stdout


def measure_loop(batch_size: int, epochs: int, device: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "loop.json"
        cmd = [sys.executable, "-m", "goodfit.bench", "--loop-only", "--device", device]
        cmd += ["--batch-size", str(batch_size), "--epochs", str(epochs), "--out", str(out)]
        wall, _ = _run(cmd)
        result = json.loads(out.read_text())
    return {**result, "wall_seconds": wall}


def measure_template(overrides: list[str], out_dir: Path) -> dict[str, Any]:
    cmd = [sys.executable, "train.py", *overrides, f"hydra.run.dir={out_dir}"]
    wall, _ = _run(cmd)
    summary = json.loads((out_dir / "summary.json").read_text())
    return {
        "epoch_seconds": [h["seconds"] for h in summary["history"]],
        "epoch_cpu_seconds": [h["cpu_seconds"] for h in summary["history"]],
        "startup_seconds": summary["startup_seconds"],
        "peak_memory_mb": summary["peak_memory_mb"],
        "n_train": summary["n_train"],
        "test_acc": summary["test_acc"],
        "fit_seconds": summary["fit_seconds"],
        "wall_seconds": wall,
    }


def measure_paired(overrides: list[str], out_dir: Path, batch_size: int) -> dict[str, float]:
    """One goodfit run with a plain-loop epoch before each of its epochs, in its process
    (`goodfit.bench_paired`): the median ratio of the pairs and goodfit's extra CPU time per
    optimizer step, warm-up pair left out."""
    loop_file = out_dir.parent / f"{out_dir.name}_loop.json"
    paired = [f"+callbacks.paired_loop._target_={PAIRED_CALLBACK}",
              f"+callbacks.paired_loop.out={loop_file}"]  # fmt: skip
    template = measure_template([*overrides, *paired], out_dir)
    loop = json.loads(loop_file.read_text())

    def pairs(template_key: str, column: int) -> list[tuple[float, float]]:
        both = list(zip(template[template_key], (epoch[column] for epoch in loop), strict=True))
        return both[1:] or both

    steps = math.ceil(template["n_train"] / batch_size)
    cpu = pairs("epoch_cpu_seconds", 1)
    return {
        "paired": round(statistics.median(t / p for t, p in pairs("epoch_seconds", 0)), 3),
        "paired CPU": round(statistics.median(t / p for t, p in cpu), 3),
        "extra CPU µs/step": round(statistics.median((t - p) / steps * 1e6 for t, p in cpu)),
    }


PAIRED_CALLBACK = "goodfit.bench_paired.PairedLoopEpochs"


def epoch_time(result: dict[str, Any], key: str = "epoch_seconds") -> float:
    """Median seconds per epoch, leaving out the first (warm-up) when there are several."""
    seconds = result[key]
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def comparison_rows(args: argparse.Namespace, out_root: Path) -> list[dict[str, Any]]:
    """Loop and template alternate `repeat` times per batch size, so a change in the machine's
    speed during the benchmark (shared hosts) falls on both; epochs are pooled per side."""
    device = "cuda" if args.device == "auto" and _has_cuda() else args.device
    device = "cpu" if device == "auto" else device
    accelerator = "gpu" if device == "cuda" else "cpu"
    rows = []
    for batch_size in args.batch_sizes:
        base = [
            "experiment=good",
            f"trainer.max_epochs={args.epochs}",
            f"datamodule.batch_size={batch_size}",
            f"trainer.accelerator={accelerator}",
        ]
        if args.overrides:  # another network or way of stepping: only the paired loop follows
            label = "goodfit " + " ".join(args.overrides)
            out_dir = out_root / f"paired_bs{batch_size}"
            paired = measure_paired([*base, *args.overrides], out_dir, batch_size)
            rows.append({"run": label, "batch": batch_size, **paired})
            continue
        variants = [("goodfit", base)]
        if args.compile:
            variants.append(("goodfit, model.compile=true", [*base, "model.compile=true"]))
        if device == "cuda":
            variants.append(("goodfit, bf16-mixed", [*base, "trainer.precision=bf16-mixed"]))
        results: dict[str, list[dict[str, Any]]] = {"plain PyTorch loop": []}
        for repeat in range(args.repeat):
            results["plain PyTorch loop"].append(measure_loop(batch_size, args.epochs, device))
            for label, overrides in variants:
                slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)  # no = or , in hydra.run.dir
                name = f"{slug}_bs{batch_size}_{repeat}"
                results.setdefault(label, []).append(measure_template(overrides, out_root / name))
        pooled = {label: pool(runs) for label, runs in results.items()}
        loop = pooled["plain PyTorch loop"]
        batch_rows = [_row(label, batch_size, result, loop) for label, result in pooled.items()]
        batch_rows[0].update({"paired": 1.0, "paired CPU": 1.0, "extra CPU µs/step": 0})
        batch_rows[1].update(measure_paired(base, out_root / f"paired_bs{batch_size}", batch_size))
        rows += batch_rows
    return rows


def pool(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several measurements of one side as one: every epoch but each run's first (warm-up)."""

    def pooled(key: str) -> list[float]:
        epochs = [s for run in runs for s in (run[key][1:] or run[key])]
        return [max(epochs), *epochs]  # epoch_time() leaves out the first

    return {
        "epoch_seconds": pooled("epoch_seconds"),
        "epoch_cpu_seconds": pooled("epoch_cpu_seconds"),
        "startup_seconds": min(run["startup_seconds"] for run in runs),
        "peak_memory_mb": max(run["peak_memory_mb"] for run in runs),
        "n_train": runs[0]["n_train"],
    }


def _row(label: str, batch_size: int, result: dict[str, Any], loop: dict[str, Any]) -> dict:
    epoch, cpu = epoch_time(result), epoch_time(result, "epoch_cpu_seconds")
    return {
        "run": label,
        "batch": batch_size,
        "s/epoch": round(epoch, 3),
        "samples/s": round(result["n_train"] / epoch),
        "ratio": round(epoch / epoch_time(loop), 3),
        "CPU s/epoch": round(cpu, 3),
        "CPU ratio": round(cpu / epoch_time(loop, "epoch_cpu_seconds"), 3),
        "startup s": round(result["startup_seconds"], 2),
        "peak MiB": round(result["peak_memory_mb"]),
    }


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def experiment_rows(names: list[str], out_root: Path) -> list[dict[str, Any]]:
    """Whole runs, as `python train.py experiment=NAME` (wall time includes start-up and test)."""
    rows = []
    for name in names:
        result = measure_template([f"experiment={name}"], out_root / f"experiment_{name}")
        rows.append({"experiment": name, "wall s": round(result["wall_seconds"], 1),
                     "fit s": round(result["fit_seconds"], 1),
                     "epochs": len(result["epoch_seconds"]),
                     "test acc": round(result["test_acc"], 4)})  # fmt: skip
    if len(rows) > 1:
        for row in rows[1:]:
            row["wall vs first"] = round(row["wall s"] / rows[0]["wall s"], 3)
    return rows


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key, justify="left" if key in ("run", "experiment") else "right")
    for row in rows:
        table.add_row(*(str(row.get(key, "")) for key in rows[0]))
    Console(width=160).print(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m goodfit.bench", description=__doc__)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per timing (default 4)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="loop/template alternations per batch (default 2)"
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 512])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--compile", action="store_true", help="also time model.compile=true")
    parser.add_argument("--experiments", nargs="*", default=["good", "good_fast"],
                        help="whole experiments to time (default: good good_fast)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument(
        "--overrides", nargs="+", default=[], metavar="KEY=VALUE",
        help="train.py overrides for goodfit's runs (e.g. model.hidden=[8] steps_per_batch=1); "
        "then only the paired comparison runs, its loop training a copy of that network",
    )  # fmt: skip
    parser.add_argument("--loop-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("epochs", "repeat", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)}: must be >= 1")
    if any(b < 1 for b in args.batch_sizes):
        parser.error(f"--batch-sizes={args.batch_sizes}: each must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.loop_only:  # the child process of measure_loop
        device = "cuda" if args.device == "auto" and _has_cuda() else args.device
        result = plain_loop(args.batch_size, args.epochs, "cpu" if device == "auto" else device)
        args.out.write_text(json.dumps(result))
        return
    out_root = ROOT / "logs" / "bench" / time.strftime("%Y-%m-%d_%H-%M-%S")
    out_root.mkdir(parents=True)
    info = machine()
    print("Machine:", ", ".join(f"{k}={v}" for k, v in info.items()))
    rows = comparison_rows(args, out_root)
    title = f"Per epoch: experiment=good's network, SGD, {args.epochs} epochs x {args.repeat}"
    print_table(
        title + " (median; ratio = goodfit / loop; CPU: process CPU time; paired: a "
        "loop epoch before each goodfit epoch, in one process)",
        rows,
    )
    experiments = experiment_rows(args.experiments, out_root) if args.experiments else []
    if experiments:
        print_table("Whole experiments (python train.py experiment=NAME)", experiments)
    results = {"machine": info, "per_epoch": rows, "experiments": experiments}
    out = args.out or out_root / "bench.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"Results: {out}")


if __name__ == "__main__":
    main()
