"""A report across runs: `python -m goodfit.report DIR [DIR ...]`.

Each DIR is a sweep folder or a run folder. The report reads only what runs wrote (summary.json,
the pictures, the composed config and overrides), so it works on old runs and on folders copied
from another machine. It writes `report.md`, `report.json` and `comparison.png` into the first
DIR and prints the path and the table. Runs that differ only in their seed form a group; when a
sweep varied the seed, the report adds each group's statistics and a test for each pair of
groups (goodfit.records.groups), and `test_accuracies.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from goodfit.records.figures import (
    COMPARISON,
    CONFUSION_MATRIX,
    LEARNING_CURVES,
    MISCLASSIFIED,
    comparison,
)
from goodfit.records.groups import Group, group_runs, study
from goodfit.records.report_groups import (
    draw_group_pictures,
    group_lines,
    is_seed_study,
    print_groups,
)
from goodfit.records.runs import ReportError, RunRecord, load_runs
from goodfit.runtime.atomic import write_json_atomic, write_text_atomic

REPORT = "report.md"
REPORT_JSON = "report.json"
PICTURES = {
    LEARNING_CURVES: "learning curves",
    CONFUSION_MATRIX: "confusion matrix",
    MISCLASSIFIED: "misclassified test images",
}
COLUMNS = ("run", "experiment", "model", "optimizer", "epochs", "val images", "parameters",
           "test loss", "test accuracy (95% interval)", "gap", "gap, eval mode",
           "verdict")  # fmt: skip


def _number(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table_rows(records: list[RunRecord]) -> list[list[str]]:
    """One row per run, in COLUMNS order."""
    rows = []
    for r in records:
        if r.failed:
            epochs = str(r.get("epochs_run", "–"))
            rows.append([r.label, str(r.get("experiment") or "–"), "–", "–", epochs, "–", "–",
                         "–", "–", "–", "–", f"failed: {r.reason}"])  # fmt: skip
            continue
        ci = r.get("test_acc_ci95")
        interval = f" ({ci[0]:.4f}–{ci[1]:.4f})" if ci else ""
        params = r.get("params_total")
        rows.append([
            r.label, str(r.get("experiment") or "–"), str(r.get("model") or "–"),
            str(r.get("optimizer") or "–"), str(r.get("epochs_run", len(r.get("history")))),
            f"{r.get('n_val'):,}", f"{params:,}" if params is not None else "–",
            _number(r.get("test_loss")), _number(r.get("test_acc")) + interval,
            _number(r.get("generalization_gap")), _number(r.get("eval_mode_gap")),
            str(r.get("verdict")),
        ])  # fmt: skip
    return rows


def _link(path: Path, start: Path) -> str:
    """A relative link from the report's folder, with / separators and spaces escaped."""
    return Path(os.path.relpath(path, start)).as_posix().replace(" ", "%20")


def _run_section(record: RunRecord, start: Path) -> list[str]:
    lines = [f"## {record.label}", "", f"Folder: `{_link(record.folder, start)}`", ""]
    if record.failed:
        return lines + [f"**Failed:** {record.reason}", ""]
    lines += [f"**Verdict: {record.get('verdict')}**", ""]
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


def _header(records: list[RunRecord], dirs: list[Path], groups: list[Group] | None) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    count = f"{len(records)} run{'s' if len(records) != 1 else ''}"
    if groups is not None:
        count += f" in {len(groups)} group{'s' if len(groups) != 1 else ''}"
    return (
        f"{count} from {', '.join(f'`{d}`' for d in dirs)}, written {when}. Test figures are "
        "measured on each run's best checkpoint; a run's intervals are 95% Wilson intervals; the "
        "gap is the final validation loss minus the final training loss."
    )


def _run_table(records: list[RunRecord]) -> list[str]:
    return [
        "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(row) + " |" for row in table_rows(records)), "",
    ]  # fmt: skip


def write_report(dirs: list[Path]) -> tuple[Path, list[RunRecord], dict[str, Any]]:
    """Write report.md, report.json and the pictures into dirs[0]; return the report's path,
    the runs and report.json's content."""
    records = load_runs(dirs)
    out = dirs[0]
    groups = group_runs(records)
    results = study(groups)
    write_json_atomic(out / REPORT_JSON, json.loads(json.dumps(results, allow_nan=False)))
    lines = ["# goodfit report", ""]
    if is_seed_study(records, groups):
        draw_group_pictures(groups, out)
        lines += [_header(records, dirs, groups), ""]
        lines += group_lines(groups, results)
        lines += ["## Runs", "", *_run_table(records)]
    else:  # runs that are not repeated across seeds: one line and one colour per run
        comparison([(r.label, r.get("history") or []) for r in records], out / COMPARISON)
        lines += [_header(records, dirs, None), "", *_run_table(records)]
        lines += [f"![Training (solid) and validation (dashed) curves of every run]({COMPARISON})",
                  ""]  # fmt: skip
    for record in records:
        lines += _run_section(record, out)
    report = write_text_atomic(out / REPORT, "\n".join(lines))
    return report, records, results


def print_table(records: list[RunRecord]) -> None:
    from rich.console import Console
    from rich.table import Column, Table

    # the run's label wraps whole: runs of a sweep often differ only in its last characters
    table = Table(Column(COLUMNS[0], overflow="fold"), *COLUMNS[1:], title="goodfit report")
    for row in table_rows(records):
        table.add_row(*row)
    # A terminal gets its own width; a pipe or a file gets room for the whole table.
    Console(width=None if sys.stdout.isatty() else 180).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m goodfit.report",
        description="Compare runs: writes report.md, report.json and the pictures into the "
        "first DIR; runs that differ only in their seed are grouped and compared.",
    )
    parser.add_argument(
        "dirs", nargs="+", type=Path, metavar="DIR",
        help="a sweep folder or a run folder (one holding summary.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        report, records, results = write_report(args.dirs)
    except ReportError as err:
        print(f"goodfit.report: {err}", file=sys.stderr)
        return 2
    print(report)
    print_table(records)
    if is_seed_study(records, group_runs(records)):
        print_groups(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
