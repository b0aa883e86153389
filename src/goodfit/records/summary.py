"""The run's console summary and per-class table (summary.json is written by the train task)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def per_class_table(class_names: Sequence[str], results: Any) -> dict[str, dict[str, float]]:
    """{class name: {accuracy, precision, recall}} from the module's TestResults (torchmetrics'
    per-class figures on the test set); empty when testing did not run."""
    if results is None:
        return {}
    figures = results.per_class
    return {
        name: {metric: float(values[k]) for metric, values in figures.items()}
        for k, name in enumerate(class_names)
    }


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _interval(bounds: Sequence[float] | None) -> str:
    return f"  (95% interval {bounds[0]:.4f} to {bounds[1]:.4f})" if bounds else ""


def print_summary(summary: dict[str, Any], where_to_look: Sequence[tuple[str, str]] = (),
                  console: Console | None = None) -> None:  # fmt: skip
    """A short end-of-run table: the figures, the run folder, how to open what each logger
    recorded (`where_to_look`: (logger, command or file) rows)."""
    console = console or Console()
    rows = [
        ("experiment", summary.get("experiment") or "none"),
        ("model / optimizer", f"{summary.get('model')} / {summary.get('optimizer')}"),
        ("parameters", f"{summary['params_total']:,} ({summary['params_trainable']:,} trainable)"),
        (
            "data (train/val/test)",
            " / ".join(_images(summary, key) for key in ("n_train", "n_val", "n_test")),
        ),
        ("epochs run", f"{summary['epochs_run']}{_stopped_early(summary)}"),
        ("best val/acc", _fmt(summary.get("best_val_acc"))),
        ("test loss", _fmt(summary["test_loss"])),
        ("test accuracy", _fmt(summary["test_acc"]) + _interval(summary.get("test_acc_ci95"))),
        ("generalization gap", _fmt(summary.get("generalization_gap"))),
        ("verdict", summary.get("verdict")),
        ("fit time", f"{summary['fit_seconds']:.1f} s"),
        ("run folder", summary["run_dir"]),
        *where_to_look,
    ]
    print_table(f"goodfit run: {summary.get('name')}", rows, console)
    for reason in summary.get("verdict_reasons") or []:
        console.print(f"  - {reason}", highlight=False)


def print_transfer_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    """The transfer study's four steps side by side, and what the pretrained features bought."""
    pretrained = summary.get("pretrain_test_acc")
    rows = [
        ("1. pretrain, source task", _fmt(pretrained) if pretrained is not None
         else f"not run: {summary.get('backbone')}"),
        ("2. head on frozen features", _fmt(summary.get("head_test_acc"))),
        ("3. fine-tuned (this run)", _fmt(summary["test_acc"])),
        ("4. from scratch", _fmt(summary["scratch_test_acc"])),
        ("transfer gain (3 − 4)", f"{summary['transfer_gain']:+.4f}"),
        ("run folder", summary["run_dir"]),
    ]  # fmt: skip
    print_table(f"transfer study: {summary.get('name')} (test accuracy)", rows, console)


def _images(summary: dict[str, Any], key: str) -> str:
    """A split's images, "evaluated of all" when the trainer's limit_*_batches cut it."""
    split = ((summary.get("data") or {}).get("split_sizes") or {}).get(key, summary[key])
    return f"{summary[key]:,}" if split == summary[key] else f"{summary[key]:,} of {split:,}"


def _stopped_early(summary: dict[str, Any]) -> str:
    stop = summary.get("stopped_early")
    return f" (stopped early by {stop['callback']}: {stop['reason']})" if stop else ""


def print_table(title: str, rows: list[tuple[str, Any]], console: Console | None = None) -> None:
    """A two-column table of labelled values."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # long paths wrap whole: they are there to be copied
    for key, value in rows:
        table.add_row(key, str(value))
    (console or Console()).print(table)


def run_summary(
    *, cfg: Any, choices: dict[str, Any], net: Any, sizes: dict[str, int],
    history: list[dict[str, Any]], test_metrics: dict[str, Any], diagnosis: dict[str, Any],
    per_class: dict[str, Any], best_path: str, timing: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """summary.json of a completed run: what ran, the figures, the verdict, the cost."""
    val_accs = [h["val_acc"] for h in history if h.get("val_acc") is not None]
    params = list(net.parameters())
    return {
        "status": "completed",
        "name": cfg.get("name"),
        "experiment": choices.get("experiment"),
        "model": choices.get("model", cfg.model.get("_target_")),
        "module": choices.get("module", cfg.module.get("_target_")),
        "optimizer": choices.get("optimizer", cfg.optimizer.get("_target_")),
        "scheduler": choices.get("scheduler"),
        "perf": choices.get("perf"),
        "seed": cfg.seed,
        "params_total": sum(p.numel() for p in params),
        "params_trainable": sum(p.numel() for p in params if p.requires_grad),
        **sizes,
        "epochs_run": len(history),
        "test_loss": float(test_metrics["test/loss"]),
        "test_acc": float(test_metrics["test/acc"]),
        "best_val_acc": max(val_accs) if val_accs else None,
        **diagnosis,
        "per_class": per_class,
        "best_checkpoint": best_path or None,
        "history": history,
        **timing,
        "run_dir": str(cfg.paths.output_dir),
    }


def failed_summary(cfg: Any, choices: dict[str, Any], history: list[dict[str, Any]],
                   error: BaseException) -> dict[str, Any]:  # fmt: skip
    """The record of a run that stopped with an error: why, and the epochs it completed."""
    return {
        "status": "failed",
        "reason": f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
        "name": cfg.get("name"),
        "experiment": choices.get("experiment"),
        "seed": cfg.get("seed"),
        "epochs_run": len(history),
        "test_loss": None,
        "test_acc": None,
        "history": list(history),
        "run_dir": str(cfg.paths.output_dir),
    }
