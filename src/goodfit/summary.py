"""The run's record: summary.json, written atomically, and the console summary."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=_jsonable)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a run's record is for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


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


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    """A short end-of-run table: the figures, the run folder, how to open TensorBoard."""
    console = console or Console()
    table = Table(title=f"goodfit run: {summary.get('name')}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("experiment", summary.get("experiment")),
        ("model / optimizer", f"{summary.get('model')} / {summary.get('optimizer')}"),
        ("parameters", f"{summary['params_total']:,} ({summary['params_trainable']:,} trainable)"),
        (
            "data (train/val/test)",
            f"{summary['n_train']} / {summary['n_val']} / {summary['n_test']}",
        ),
        ("epochs run", summary["epochs_run"]),
        ("best val/acc", _fmt(summary.get("best_val_acc"))),
        ("test loss", _fmt(summary["test_loss"])),
        ("test accuracy", _fmt(summary["test_acc"]) + _interval(summary.get("test_acc_ci95"))),
        ("generalization gap", _fmt(summary.get("generalization_gap"))),
        ("verdict", summary.get("verdict")),
        ("fit time", f"{summary['fit_seconds']:.1f} s"),
        ("run folder", summary["run_dir"]),
        ("TensorBoard", f"tensorboard --logdir {summary['run_dir']}"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    for reason in summary.get("verdict_reasons") or []:
        console.print(f"  - {reason}", highlight=False)


def print_table(title: str, rows: list[tuple[str, Any]], console: Console | None = None) -> None:
    """A two-column table of labelled values."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, str(value))
    (console or Console()).print(table)
