"""The report's part on groups of runs (seeds): its Markdown, its pictures, its console table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from goodfit.hydra_ext.overrides import override_key
from goodfit.records.figures import COMPARISON, TEST_ACCURACIES, accuracy_points, group_comparison
from goodfit.records.groups import ALPHA, LEVEL, METRICS, Group
from goodfit.records.runs import RunRecord

METRIC_NAMES = {"test_acc": "test accuracy", "test_loss": "test loss", "generalization_gap": "gap",
                "eval_mode_gap": "gap, eval mode", "scratch_test_acc": "from scratch",
                "transfer_gain": "transfer gain"}  # fmt: skip


def group_columns(results: dict[str, Any]) -> list[str]:
    """The groups' table's header: the metrics report.json describes, between the run counts
    and the verdicts."""
    metrics = results.get("metrics", METRICS)
    return ["group", "runs", "seeds", *(METRIC_NAMES[m] for m in metrics), "verdicts"]


def is_seed_study(records: list[RunRecord], groups: list[Group]) -> bool:
    """The runs repeat settings across seeds: a group holds several runs, or a run's overrides
    set its seed (a seed sweep, even one with a single seed)."""
    repeated = any(len(g.runs) + len(g.failed) > 1 for g in groups)
    return repeated or any(override_key(o) == "seed" for r in records for o in r.overrides or [])


def figure_text(figures: dict[str, Any]) -> str:
    """`mean ± std (low to high)`: the mean, the runs' standard deviation, the mean's interval
    ("to" rather than a dash, since a gap's bounds may be negative)."""
    if figures["mean"] is None:
        return "–"
    if figures["ci95"] is None:
        return f"{figures['mean']:.4f}"
    low, high = figures["ci95"]
    return f"{figures['mean']:.4f} ± {figures['std']:.4f} ({low:.4f} to {high:.4f})"


def _verdicts_text(group: dict[str, Any]) -> str:
    runs = group["runs"]
    return "; ".join(f"{verdict} {count}/{runs}" for verdict, count in group["verdicts"].items())


def group_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per group, in `group_columns` order."""
    metrics = results.get("metrics", METRICS)
    return [
        [g["name"], str(g["runs"]), ", ".join(str(s) for s in g["seeds"]) or "–",
         *(figure_text(g[metric]) for metric in metrics), _verdicts_text(g) or "–"]
        for g in results["groups"]
    ]  # fmt: skip


def _notes(results: dict[str, Any]) -> list[str]:
    notes = []
    for group in results["groups"]:
        for run in group["failed"]:
            which = f"seed {run['seed']}" if run["seed"] is not None else "a run"
            notes.append(f"- {group['name']}: {which} (`{run['folder']}`) failed "
                         f"({run['reason']}); it is left out of the statistics.")  # fmt: skip
        if group["runs"] == 1:
            notes.append(f"- {group['name']}: one completed run, so no standard deviation and "
                         "no interval (they need two runs or more).")  # fmt: skip
        elif group["runs"] == 0:
            notes.append(f"- {group['name']}: no completed run, so no figures.")
    return notes


def group_lines(groups: list[Group], results: dict[str, Any]) -> list[str]:
    """The Markdown section on groups: their figures, the comparisons, the two pictures."""
    level, columns = f"{LEVEL:.0%}", group_columns(results)
    lines = [
        "## Across seeds", "",
        "Runs that differ only in their seed form a group. Each cell is the mean ± the sample "
        f"standard deviation over the group's completed runs, and the {level} confidence "
        "interval of the mean (Student t with n − 1 degrees of freedom).", "",
        "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
        *("| " + " | ".join(row) + " |" for row in group_rows(results)), "",
    ]  # fmt: skip
    notes = _notes(results)
    if notes:
        lines += [*notes, ""]
    if results["comparisons"]:
        lines += [
            "### Comparisons", "",
            f"The difference of mean test accuracy (first group − second), its {level} interval "
            "and p-value: a paired t-test when both groups ran the same seeds, Welch's t-test "
            f"otherwise. Below p = {ALPHA:.2f} the difference is beyond seed noise.", "",
            *(f"- {c['sentence']}" for c in results["comparisons"]), "",
        ]  # fmt: skip
    lines += [
        f"![Each group's mean training (solid) and validation (dashed) curves with bands "
        f"over its runs]({COMPARISON})", "",
        f"![Each run's test accuracy, and each group's mean with its {level} interval]"
        f"({TEST_ACCURACIES})", "",
    ]  # fmt: skip
    return lines


def draw_group_pictures(groups: list[Group], out: Path) -> None:
    """comparison.png (mean curves with bands) and test_accuracies.png into `out`."""
    from goodfit.records.groups import describe

    group_comparison([(g.name, [r.get("history") or [] for r in g.runs]) for g in groups],
                     out / COMPARISON)  # fmt: skip
    points = []
    for g in groups:
        figures = describe(g.values("test_acc"))
        points.append((g.name, g.values("test_acc"), figures["mean"], figures["ci95"]))
    accuracy_points(points, out / TEST_ACCURACIES)


def print_groups(results: dict[str, Any]) -> None:
    """The groups' table and the comparisons' sentences, on the console."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 180)
    title = "across seeds: mean ± std (95% interval of the mean)"
    table = Table(*group_columns(results), title=title)
    for row in group_rows(results):
        table.add_row(*row)
    console.print(table)
    for line in _notes(results):
        console.print(line, highlight=False, markup=False)
    for comparison in results["comparisons"]:
        console.print(comparison["sentence"], highlight=False, markup=False)
