"""`make bench` (`python -m bench`): training through goodfit against a plain PyTorch loop on
the same tensors, on both of goodfit's paths: perf=default (plain Lightning) and perf=fast, with
Lightning alone (bench/bare.py: a minimal LightningModule and Trainer) as a second reference.

Every side trains the good experiment's network with SGD on the same in-memory tensors, with a
validation pass every epoch; each runs in its own process, so start-up and peak memory are its
own. The template side is `train.py` exactly as users run it (logging, validation, checkpoints,
progress bar). "paired" runs the plain loop inside a goodfit run (or Lightning alone's), its
steps interleaved with the other side's a fraction of a second at a time (bench/paired.py), so
both sides of each ratio share the machine's load of the moment; "vs Lightning" divides a paired
ratio by Lightning alone's. `python -m bench --help` lists the options.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import time
from pathlib import Path
from typing import Any

from bench.loop import ROOT, machine, plain_loop
from bench.runs import measure_bare, measure_loop, measure_template, paired_bare, paired_run


def paired_ratios(
    template: dict[str, Any], loop: list[list[float]], batch_size: int
) -> dict[str, float]:
    """The median ratio of the pairs and goodfit's extra CPU time per optimizer step, warm-up
    pair left out."""

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


def measure_paired(
    overrides: list[str] | None, out_dir: Path, batch_size: int, device: str = "cpu",
    epochs: int = 4,
) -> dict[str, float]:  # fmt: skip
    """`paired_run`'s ratios (see `paired_ratios`); `overrides=None`: Lightning alone's
    (`paired_bare`, for `epochs`). On the CPU the loop's steps interleave with the other side's
    about every `INTERLEAVE_SAMPLES` samples; on a GPU (where that would need a sync) its whole
    epoch runs before the other side's."""
    chunk = max(1, INTERLEAVE_SAMPLES // batch_size) if device == "cpu" else 0
    if overrides is None:
        loop_file = out_dir.parent / f"{out_dir.name}_loop.json"
        measured = paired_bare(batch_size, epochs, device, loop_file, chunk)
    else:
        measured = paired_run(overrides, out_dir, chunk_steps=chunk)
    return paired_ratios(*measured, batch_size)


# On the CPU the paired loop takes its steps in stretches of this many samples (a fraction of a
# second) between goodfit's: the host's speed changes from second to second here.
INTERLEAVE_SAMPLES = 4096
PATHS = ("perf=default", "perf=fast")  # goodfit's two paths, each timed against the loop
DEFAULT_EXPERIMENTS = ("good", "good_fast")  # whole runs timed after the per-epoch table
LOOP, BARE = "plain PyTorch loop", "Lightning alone (bench/bare.py)"


def epoch_time(result: dict[str, Any], key: str = "epoch_seconds") -> float:
    """Median seconds per epoch, leaving out the first (warm-up) when there are several."""
    seconds = result[key]
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def comparison_rows(args: argparse.Namespace, out_root: Path) -> list[dict[str, Any]]:
    """Per batch size: the loop, Lightning alone and goodfit's runs alternate `repeat` times,
    so a change in the machine's speed during the benchmark (shared hosts) falls on all; epochs
    are pooled per side. Then the paired runs (`measure_paired`)."""
    device = "cuda" if args.device == "auto" and _has_cuda() else args.device
    device = "cpu" if device == "auto" else device
    rows = []
    for batch_size in args.batch_sizes:
        base = ["experiment=good", f"trainer.max_epochs={args.epochs}",
                f"datamodule.batch_size={batch_size}",
                f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}"]  # fmt: skip
        if args.overrides:  # another network or way of stepping: only the paired loop follows
            out_dir = out_root / f"paired_bs{batch_size}"
            paired = measure_paired([*base, *args.overrides], out_dir, batch_size, device)
            rows.append({"run": "goodfit " + " ".join(args.overrides), "batch": batch_size,
                         **paired})  # fmt: skip
            continue
        rows += batch_rows(args, base, batch_size, device, out_root)
    return rows


def batch_rows(
    args: argparse.Namespace, base: list[str], batch_size: int, device: str, out_root: Path
) -> list[dict[str, Any]]:
    """`comparison_rows` for one batch size."""
    variants = [(f"goodfit {path}", [*base, path]) for path in PATHS]
    if args.compile:
        variants.append(("goodfit, model.compile=true", [*base, "model.compile=true"]))
    # The paired loop trains in 32-true: each variant in that precision is paired with it.
    paired_sides: dict[str, list[str] | None] = {BARE: None, **dict(variants)}
    if device == "cuda":
        variants.append(("goodfit, bf16-mixed", [*base, "trainer.precision=bf16-mixed"]))
    results: dict[str, list[dict[str, Any]]] = {LOOP: [], BARE: []}
    for repeat in range(args.repeat):
        results[LOOP].append(measure_loop(batch_size, args.epochs, device))
        results[BARE].append(measure_bare(batch_size, args.epochs, device))
        for label, overrides in variants:
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)  # no = or , in hydra.run.dir
            name = f"{slug}_bs{batch_size}_{repeat}"
            results.setdefault(label, []).append(measure_template(overrides, out_root / name))
    pooled = {label: pool(runs) for label, runs in results.items()}
    rows = {label: _row(label, batch_size, result, pooled[LOOP])
            for label, result in pooled.items()}  # fmt: skip
    rows[LOOP].update({"paired": 1.0, "paired CPU": 1.0, "extra CPU µs/step": 0})
    for label, overrides in paired_sides.items():
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
        out_dir = out_root / f"paired_{slug}_bs{batch_size}"
        rows[label].update(measure_paired(overrides, out_dir, batch_size, device, args.epochs))
    for label in paired_sides:  # goodfit over Lightning alone, each paired with its loop
        rows[label]["vs Lightning"] = round(rows[label]["paired"] / rows[BARE]["paired"], 3)
    return list(rows.values())


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
    keys = list(dict.fromkeys(key for row in rows for key in row))  # every row's, in order
    for key in keys:
        table.add_column(key, justify="left" if key in ("run", "experiment") else "right")
    for row in rows:
        table.add_row(*(str(row.get(key, "")) for key in keys))
    Console(width=180).print(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per timing (default 4)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="loop/template alternations per batch (default 2)"
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 512])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--compile", action="store_true", help="also time model.compile=true")
    parser.add_argument("--experiments", nargs="*", default=None,
                        help="whole experiments to time (default: good good_fast; "
                        "none with --overrides)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument(
        "--overrides", nargs="+", default=[], metavar="KEY=VALUE",
        help="train.py overrides for goodfit's runs (e.g. model.hidden=[8] perf=fast); "
        "then only the paired comparison runs, its loop training a copy of that network",
    )  # fmt: skip
    parser.add_argument("--loop-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.experiments is None:  # --overrides asks for one comparison, not the whole bench
        args.experiments = [] if args.overrides else list(DEFAULT_EXPERIMENTS)
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
        title + " (median; ratio = run / loop, separate processes; CPU: process CPU time; "
        "paired: the loop's steps interleaved with the run's in one process; vs Lightning: "
        "paired / Lightning alone's paired)",
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
