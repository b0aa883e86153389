"""`make gpu-check`: goodfit's GPU path, proven and timed in one command, within 8 minutes.

On a CUDA machine, in this order, each section in a time box of its own (a section that ends
early leaves its time to the next ones; one that runs long is cut, never the ones after it):
  tests        pytest tests/test_gpu.py
  mlp          experiment=good's network at batch 4096, 512 and 32, in 32-true and bf16-mixed,
               on perf=default and perf=fast, against a plain PyTorch loop (bench/paired.py)
  experiments  experiment=good_fast and experiment=good, trainer=gpu
  convnets     experiment=cnn and experiment=resnet, trainer=gpu, without and with
               model.compile=true, for as many epochs as fit (bench/deadline.py)
It records the GPU, driver, CUDA, torch and Lightning, and writes gpu_check.json (every figure)
and gpu_check.md (tables) after every run, so a check stopped anywhere keeps what it measured.

Missing packages are installed first from .gpu/wheels (bench/gpu_env.py, bench/gpu_wheels.sh).
The real Fashion-MNIST is looked for in data/, /usr/share/datasets/fashion-mnist and .gpu/data
(or `data` beside GPU_WHEELS); without it the check runs on synthetic data and says so.

Environment: GPU_CHECK_OUT (default logs/gpu_check/<time>/; the runs' own folders stay under
logs/gpu_check/), GPU_CHECK_BUDGET (seconds for the whole check: default 450; dry 3600, so that a
slow CI machine never cuts a section), GPU_CHECK_DRY=1 (the same check on the CPU: tiny synthetic
data, 1 epoch, one run of each kind; what CI runs). Without CUDA, and not dry, it says so and
exits 0.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import gpu_env
from bench.compare import epoch_time, paired_ratios
from bench.gpu_facts import data_overrides, machine_facts
from bench.gpu_plan import Clock, Plan, settings
from bench.gpu_report import Report, why
from bench.runs import measure_template, paired_run, run_command

ROOT = gpu_env.ROOT
DEADLINE = "bench.deadline.StopBeforeDeadline"
_STARTED = time.time()


def say(message: str) -> None:
    """Progress, with the seconds since the check started."""
    print(f"[{time.time() - _STARTED:5.0f} s] {message}", flush=True)


@dataclass
class Check:
    """A check under way: what runs, its clock, its record, the folder of its runs."""

    plan: Plan
    clock: Clock
    report: Report
    runs: Path
    data: list[str]  # overrides that point runs at the data

    def train(
        self, section: str, row: dict[str, Any], overrides: list[str],
        share: tuple[float, float], figures: Callable[[dict[str, Any], Run], str],
        paired: bool = False, env: dict[str, str] | None = None, compiles: bool = False,
    ) -> None:  # fmt: skip
        """One `python train.py` in its time box: its share (weight, weights left) of what is
        left of the section (bench/gpu_plan.py); `figures` fills `row` from it and says what to
        print. Whatever happens, the row is recorded: a failure is one row's, not the check's.
        A run that compiles gets twice the least share: its first epoch includes compilation."""
        label = " ".join(str(v) for v in row.values())
        left = self.clock.section_end(section) - time.time()
        if left < self.plan.min_run:
            row["status"] = "skipped (time box)"
            say(f"{section}: {label}: skipped, {left:.0f} s left in the section's time box")
            self.report.add_row(section, row)
            return
        at_least = self.plan.min_share * (2 if compiles else 1)
        run_end = self.clock.run_end(section, *share, at_least=at_least)
        name = "_".join(str(v) for v in row.values()).replace("=", "-").replace(" ", "")
        out_dir, stop_file = self.runs / f"{section}_{name}", self.runs / f"{section}_{name}.stop"
        overrides = [*overrides, f"trainer={self.plan.trainer}", *self.data, *self.plan.extra,
                     f"+callbacks.gpu_check_deadline._target_={DEADLINE}",
                     f"+callbacks.gpu_check_deadline.at={run_end - 2:.1f}",
                     f"+callbacks.gpu_check_deadline.reserve={self.plan.test_reserve}",
                     f"+callbacks.gpu_check_deadline.out={stop_file}"]  # fmt: skip
        self.report.set("in_progress", f"{section}: {label}")
        say(f"{section}: {label}: running ({run_end - time.time():.0f} s, {left:.0f} at most)")
        try:
            if paired:
                template, loop = paired_run(overrides, out_dir, left, env)
            else:
                template, loop = measure_template(overrides, out_dir, left, env), None
            summary = json.loads((out_dir / "summary.json").read_text())
            stop = json.loads(stop_file.read_text()) if stop_file.exists() else {}
            row.update(status="ok", epochs=summary["epochs_run"], planned=stop.get("planned"),
                       cut_short=stop.get("stopped_after") is not None)  # fmt: skip
            message = figures(row, Run(template, summary, loop))
        except Exception as err:  # recorded with its reason, and the check goes on
            status = "timed out" if isinstance(err, TimeoutError) else "failed"
            row.update(status=status, error=f"{type(err).__name__}: {err}"[-1500:])
            message = status + why(row)
        say(f"{section}: {label}: {message}")
        self.report.add_row(section, row)


@dataclass
class Run:
    """What one run left: bench.compare's figures, its summary.json, the paired loop's epochs."""

    template: dict[str, Any]
    summary: dict[str, Any]
    loop: list[list[float]] | None


def median_epoch(seconds: list[float]) -> float:
    return round(epoch_time({"epoch_seconds": seconds}), 4)


def run_tests(check: Check) -> None:
    import xml.etree.ElementTree as ET

    junit = check.runs / "gpu_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py",
           f"--junitxml={junit}"]  # fmt: skip
    row: dict[str, Any] = {"command": "pytest tests/test_gpu.py"}
    check.report.set("in_progress", "tests")
    say("tests: pytest tests/test_gpu.py")
    try:
        left = check.clock.section_end("tests") - time.time()
        row.update(seconds=round(run_command(cmd, timeout=left)[0], 1), status="ok")
    except (RuntimeError, TimeoutError) as err:
        row.update(status="timed out" if isinstance(err, TimeoutError) else "failed",
                   error=str(err)[-3000:])  # fmt: skip
    if junit.exists():
        suite = ET.parse(junit).getroot()
        suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        row.update(failed=counts["failures"], errors=counts["errors"], skipped=counts["skipped"],
                   passed=counts["tests"] - counts["failures"] - counts["errors"]
                   - counts["skipped"])  # fmt: skip
    say(f"tests: {row['status']}: {row.get('passed')} passed, {row.get('failed')} failed, "
        f"{row.get('skipped')} skipped")  # fmt: skip
    check.report.add_row("tests", row)


def mlp_figures(row: dict[str, Any], run: Run) -> str:
    template, loop = run.template, run.loop or []
    n_train, ours = template["n_train"], median_epoch(template["epoch_seconds"])
    theirs = median_epoch([epoch[0] for epoch in loop])
    ratios = paired_ratios(template, loop, row["batch"])
    row.update({"s/epoch": ours, "samples/s": round(n_train / ours),
                "loop s/epoch": theirs, "loop samples/s": round(n_train / theirs),
                "ratio": ratios.pop("paired"), **ratios,
                "peak MiB": round(template["peak_memory_mb"]),
                "epoch_seconds": template["epoch_seconds"],
                "loop_epoch_seconds": [epoch[0] for epoch in loop]})  # fmt: skip
    return f"{ours} s/epoch, loop {theirs}, ratio {row['ratio']}"


def run_mlp(check: Check) -> None:
    weights = [2.0 if batch < 128 else 1.0 for batch, _, _ in check.plan.mlp]
    for k, (batch, precision, path) in enumerate(check.plan.mlp):
        row: dict[str, Any] = {"batch": batch, "precision": precision, "path": path}
        overrides = ["experiment=good", f"trainer.precision={precision}", path,
                     f"datamodule.batch_size={batch}",
                     f"trainer.max_epochs={check.plan.mlp_epochs}"]  # fmt: skip
        share = (weights[k], sum(weights[k:]))
        check.train("mlp", row, overrides, share, mlp_figures, paired=True)


def whole_run_figures(row: dict[str, Any], run: Run) -> str:
    template, seconds = run.template, run.template["epoch_seconds"]
    row.update({"wall s": round(template["wall_seconds"], 1),
                "fit s": round(template["fit_seconds"], 1),
                "startup s": round(template["startup_seconds"], 1),
                "first epoch s": round(seconds[0], 2), "s/epoch": median_epoch(seconds),
                "test acc": round(template["test_acc"], 4),
                "best val acc": run.summary["best_val_acc"], "epoch_seconds": seconds,
                "peak MiB": round(template["peak_memory_mb"])})  # fmt: skip
    return (f"{row['epochs']}/{row['planned']} epochs, {row['s/epoch']} s/epoch, wall "
            f"{row['wall s']} s, fit {row['fit s']} s, test acc {row['test acc']}")  # fmt: skip


def run_experiments(check: Check) -> None:
    names = check.plan.experiments
    weights = [3.0 if name == "good" else 1.0 for name in names]
    for k, name in enumerate(names):
        row: dict[str, Any] = {"experiment": name}
        share = (weights[k], sum(weights[k:]))
        check.train("experiments", row, [f"experiment={name}"], share, whole_run_figures)


def run_convnets(check: Check) -> None:
    runs = check.plan.convnets
    weights = [(1.6 if name == "resnet" else 1.0) + (0.8 if compiled else 0.0)
               for name, compiled in runs]  # fmt: skip
    # Dry, on a CPU: dynamo traces the network but runs the graphs eagerly, since inductor's
    # C++ build takes minutes there (a torch that lacks this setting ignores it).
    env = {**os.environ, "TORCH_COMPILE_OVERRIDE_BACKENDS": ">=0:eager"}
    for k, (name, compiled) in enumerate(runs):
        row: dict[str, Any] = {"experiment": name, "compile": compiled}
        overrides = [f"experiment={name}", f"model.compile={str(compiled).lower()}",
                     *check.plan.convnet_extra]  # fmt: skip
        share = (weights[k], sum(weights[k:]))
        dry_compile = env if check.plan.dry and compiled else None
        check.train("convnets", row, overrides, share, whole_run_figures, env=dry_compile,
                    compiles=compiled)  # fmt: skip


SECTION_RUNNERS = {"tests": run_tests, "mlp": run_mlp, "experiments": run_experiments,
                   "convnets": run_convnets}  # fmt: skip


def main() -> int:
    started = time.time()
    dry, budget = settings(dict(os.environ))
    import torch

    if not dry and not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine, nothing to check (GPU_CHECK_DRY=1 "
              "runs the same check on the CPU).")  # fmt: skip
        return 0
    installed = gpu_env.prepare()  # before anything that needs hydra, rich, …

    plan = Plan.for_mode(dry, budget)
    logs = ROOT / "logs" / "gpu_check"
    logs.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=time.strftime("%Y-%m-%d_%H-%M-%S_"), dir=logs))
    out = Path(os.environ.get("GPU_CHECK_OUT") or folder)
    runs = folder / "runs"
    runs.mkdir()
    report = Report(out, dry, plan.budget)
    say(f"gpu-check{' (dry, on the CPU)' if dry else ''}: results in {out}, runs in {runs}")
    report.set("machine", machine_facts())
    say("machine: " + ", ".join(f"{k}={v}" for k, v in report.data["machine"].items()))
    data, note = data_overrides(dry, runs)
    report.set("setup", {**note, "installed from wheels": ", ".join(installed) or "nothing",
                         "runs": str(runs)})  # fmt: skip
    say(note["data"])
    check = Check(plan, Clock(plan.budget, started), report, runs, data)
    for name, runner in SECTION_RUNNERS.items():
        section_started = time.time()
        box = round(check.clock.section_end(name) - section_started)
        report.section(name, status="running", box_seconds=box)
        runner(check)
        report.section(name, status="done", seconds=round(time.time() - section_started, 1))
    report.data.update(complete=True, in_progress=None)
    report.save()
    problems = report.problems()
    say(f"done: {out / 'gpu_check.md'}" + (f"; problems: {'; '.join(problems)}" if problems
                                            else ""))  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
