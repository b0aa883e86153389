"""Each side of the benchmark measured in a process of its own: the plain loop, Lightning alone,
goodfit's train.py, and the paired runs that put the loop beside either of the last two."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loop import ROOT

PAIRED_CALLBACK = "bench.paired.PairedLoopEpochs"


def run_command(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float | None = None
) -> tuple[float, str]:
    """Run `cmd` in the project folder; its wall time and output. It runs in a process group
    of its own, so a time-out or an interruption ends it with every process it started."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException as err:  # a time-out, Ctrl-C: nothing it started may outlive it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        if isinstance(err, subprocess.TimeoutExpired):
            raise TimeoutError(f"{' '.join(cmd)} ran past {timeout:.0f} s:\n"
                               f"{stdout[-3000:]}{stderr[-3000:]}") from None  # fmt: skip
        raise
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stdout[-3000:]}{stderr[-3000:]}")
    return wall, stdout


def measure_loop(batch_size: int, epochs: int, device: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "loop.json"
        cmd = [sys.executable, "-m", "bench", "--loop-only", "--device", device]
        cmd += ["--batch-size", str(batch_size), "--epochs", str(epochs), "--out", str(out)]
        wall, _ = run_command(cmd)
        result = json.loads(out.read_text())
    return {**result, "wall_seconds": wall}


def measure_template(
    overrides: list[str], out_dir: Path, timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    cmd = [sys.executable, "train.py", *overrides, f"hydra.run.dir={out_dir}"]
    wall, _ = run_command(cmd, env, timeout)
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


def paired_run(
    overrides: list[str], out_dir: Path, timeout: float | None = None,
    env: dict[str, str] | None = None, chunk_steps: int = 0,
) -> tuple[dict[str, Any], list[list[float]]]:  # fmt: skip
    """One goodfit run with a plain-loop epoch beside each of its epochs, in its process
    (`bench.paired`; `chunk_steps` > 0: interleaved with goodfit's steps): goodfit's figures,
    its epoch times net of the loop's, and the loop's seconds per epoch, [wall, CPU, …]."""
    loop_file = out_dir.parent / f"{out_dir.name}_loop.json"
    paired = [f"+callbacks.paired_loop._target_={PAIRED_CALLBACK}",
              f"+callbacks.paired_loop.out={loop_file}",
              f"+callbacks.paired_loop.chunk_steps={chunk_steps}"]  # fmt: skip
    template = measure_template([*overrides, *paired], out_dir, timeout, env)
    return net_of_loop(template, loop_file)


def measure_bare(
    batch_size: int, epochs: int, device: str, paired_out: Path | None = None,
    chunk_steps: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Lightning alone (bench.bare) in a process of its own; with `paired_out`, the plain
    loop beside it as `paired_run` puts it beside goodfit."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bare.json"
        cmd = [sys.executable, "-m", "bench.bare", "--device", device, "--out", str(out),
               "--batch-size", str(batch_size), "--epochs", str(epochs)]  # fmt: skip
        if paired_out is not None:
            cmd += ["--paired-out", str(paired_out), "--chunk-steps", str(chunk_steps)]
        wall, _ = run_command(cmd)
        return {**json.loads(out.read_text()), "wall_seconds": wall}


def paired_bare(
    batch_size: int, epochs: int, device: str, loop_file: Path, chunk_steps: int = 0
) -> tuple[dict[str, Any], list[list[float]]]:
    """`paired_run` for Lightning alone: its figures net of the loop's, and the loop's."""
    bare = measure_bare(batch_size, epochs, device, loop_file, chunk_steps)
    return net_of_loop(bare, loop_file)


def net_of_loop(
    measured: dict[str, Any], loop_file: Path
) -> tuple[dict[str, Any], list[list[float]]]:
    """A paired run's epoch times less the time its loop took inside them, and the loop's
    epochs ([wall, CPU, wall inside, CPU inside] seconds each)."""
    loop = json.loads(loop_file.read_text())
    for key, column in (("epoch_seconds", 2), ("epoch_cpu_seconds", 3)):  # the loop's share
        measured[key] = [t - epoch[column] for t, epoch in zip(measured[key], loop, strict=True)]
    return measured, loop
