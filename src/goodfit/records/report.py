"""A report across runs: `python -m goodfit.report DIR [DIR ...]`.

Each DIR is a sweep folder or a run folder. The report reads only what runs wrote (summary.json,
the pictures, the composed config), so it works on old runs and on folders copied from another
machine. It writes `report.md` and `comparison.png` into the first DIR and prints the path and
the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from goodfit.records.diagnosis import Thresholds, diagnose
from goodfit.records.figures import (
    COMPARISON,
    CONFUSION_MATRIX,
    LEARNING_CURVES,
    MISCLASSIFIED,
    comparison,
)
from goodfit.runtime.errors import ConfigError

REPORT = "report.md"
PICTURES = {
    LEARNING_CURVES: "learning curves",
    CONFUSION_MATRIX: "confusion matrix",
    MISCLASSIFIED: "misclassified test images",
}
REQUIRED_KEYS = ("history", "n_val", "test_loss", "test_acc")
COLUMNS = ("run", "experiment", "model", "optimizer", "epochs", "val images", "parameters",
           "test loss", "test accuracy (95% interval)", "gap", "verdict")  # fmt: skip


class ReportError(RuntimeError):
    """A folder or file the report cannot use; the message names it."""


@dataclass
class RunRecord:
    """One run as its folder recorded it, with its diagnosis (recomputed for older runs)."""

    folder: Path
    label: str
    summary: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.summary.get(key, default)


def find_runs(folder: Path) -> list[Path]:
    """The run folders in `folder`: itself when it holds summary.json, else every folder below
    it that does."""
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder")
    if (folder / "summary.json").is_file():
        return [folder]
    runs = sorted(path.parent for path in folder.rglob("summary.json"))
    if not runs:
        raise ReportError(f"{folder}: no runs found (no summary.json in it or below it)")
    return runs


def _run_thresholds(folder: Path) -> Thresholds:
    """The thresholds the run was composed with (its .hydra/config.yaml), else the defaults."""
    config = folder / ".hydra" / "config.yaml"
    if not config.is_file():
        return Thresholds()
    from omegaconf import OmegaConf

    section = OmegaConf.select(OmegaConf.load(config), "diagnosis")
    try:
        return Thresholds.from_mapping(OmegaConf.to_container(section) if section else None)
    except ConfigError as err:
        raise ReportError(f"{config}: {err}") from None


def load_run(folder: Path, label: str) -> RunRecord:
    """Read a run's summary.json; a run written before the diagnosis existed gets it now."""
    path = folder / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: not a readable summary ({err})") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{path}: not a readable summary (not a JSON object)")
    missing = [key for key in REQUIRED_KEYS if key not in summary]
    if missing:
        raise ReportError(f"{path}: missing {', '.join(missing)}")
    if "verdict" not in summary:
        num_classes = summary.get("num_classes") or len(summary.get("per_class") or {}) or None
        diagnosis = diagnose(
            summary["history"], summary["n_val"], summary.get("n_test"), summary["test_acc"],
            _run_thresholds(folder), num_classes,
        )  # fmt: skip
        summary = {**summary, **diagnosis.to_summary()}
    return RunRecord(folder, label, summary)


def load_runs(dirs: list[Path]) -> list[RunRecord]:
    """Every run in `dirs`, labelled by its folder's path below the first DIR (its overrides in
    a sweep) or by its folder's name."""
    base = dirs[0].resolve()
    records: list[RunRecord] = []
    seen: set[Path] = set()
    for folder in dirs:
        for run in find_runs(folder):
            resolved = run.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            inside = resolved.is_relative_to(base) and resolved != base
            label = resolved.relative_to(base).as_posix() if inside else resolved.name
            records.append(load_run(run, label))
    return records


def _number(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table_rows(records: list[RunRecord]) -> list[list[str]]:
    """One row per run, in COLUMNS order."""
    rows = []
    for r in records:
        ci = r.get("test_acc_ci95")
        interval = f" ({ci[0]:.4f}–{ci[1]:.4f})" if ci else ""
        params = r.get("params_total")
        rows.append([
            r.label, str(r.get("experiment") or "–"), str(r.get("model") or "–"),
            str(r.get("optimizer") or "–"), str(r.get("epochs_run", len(r.get("history")))),
            f"{r.get('n_val'):,}", f"{params:,}" if params is not None else "–",
            _number(r.get("test_loss")), _number(r.get("test_acc")) + interval,
            _number(r.get("generalization_gap")), str(r.get("verdict")),
        ])  # fmt: skip
    return rows


def _link(path: Path, start: Path) -> str:
    """A relative link from the report's folder, with / separators and spaces escaped."""
    return Path(os.path.relpath(path, start)).as_posix().replace(" ", "%20")


def _run_section(record: RunRecord, start: Path) -> list[str]:
    lines = [f"## {record.label}", "", f"Folder: `{_link(record.folder, start)}`", "",
             f"**Verdict: {record.get('verdict')}**", ""]  # fmt: skip
    lines += [f"- {reason}" for reason in record.get("verdict_reasons") or []]
    lines.append("")
    pictures = [(name, alt) for name, alt in PICTURES.items() if (record.folder / name).is_file()]
    for name, alt in pictures:
        lines += [f"![{record.label}: {alt}]({_link(record.folder / name, start)})", ""]
    if not pictures:
        lines += ["(This run wrote no pictures.)", ""]
    per_class = record.get("per_class") or {}
    if per_class:
        # torchmetrics' per-class accuracy is the class's share classified right: its recall.
        lines += ["| class | precision | recall (= per-class accuracy) |", "|---|---|---|"]
        lines += [
            f"| {name} | {v['precision']:.4f} | {v['recall']:.4f} |"
            for name, v in per_class.items()
        ]
        lines.append("")
    return lines


def write_report(dirs: list[Path]) -> tuple[Path, list[RunRecord]]:
    """Write report.md and comparison.png into dirs[0]; return the report's path and runs."""
    records = load_runs(dirs)
    out = dirs[0]
    comparison([(r.label, r.get("history")) for r in records], out / COMPARISON)
    rows = table_rows(records)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# goodfit report", "",
        f"{len(records)} run{'s' if len(records) != 1 else ''} from "
        f"{', '.join(f'`{d}`' for d in dirs)}, written {when}. Test figures are measured on each "
        "run's best checkpoint; intervals are 95% Wilson intervals; the gap is the final "
        "validation loss minus the final training loss.", "",
        "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(row) + " |" for row in rows), "",
        f"![Training (solid) and validation (dashed) curves of every run]({COMPARISON})", "",
    ]  # fmt: skip
    for record in records:
        lines += _run_section(record, out)
    report = out / REPORT
    report.write_text("\n".join(lines))
    return report, records


def print_table(records: list[RunRecord]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*COLUMNS, title="goodfit report")
    for row in table_rows(records):
        table.add_row(*row)
    # A terminal gets its own width; a pipe or a file gets room for the whole table.
    Console(width=None if sys.stdout.isatty() else 180).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m goodfit.report",
        description="Compare runs: writes report.md and comparison.png into the first DIR.",
    )
    parser.add_argument(
        "dirs", nargs="+", type=Path, metavar="DIR",
        help="a sweep folder or a run folder (one holding summary.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        report, records = write_report(args.dirs)
    except ReportError as err:
        print(f"goodfit.report: {err}", file=sys.stderr)
        return 2
    print(report)
    print_table(records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
