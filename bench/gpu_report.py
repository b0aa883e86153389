"""The GPU check's record: gpu_check.json (every figure) and gpu_check.md (tables), rewritten
after every run, so a check stopped anywhere leaves what it measured until then."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

SECTIONS = {
    "tests": "GPU tests (pytest tests/test_gpu.py)",
    "mlp": "The good MLP per epoch: goodfit against a plain PyTorch loop, data on the device",
    "experiments": "Whole experiments",
    "convnets": "Convnets, with and without model.compile=true",
}
# Columns of each section's table in gpu_check.md (the JSON holds more).
COLUMNS = {
    "tests": ["status", "passed", "failed", "errors", "skipped", "seconds"],
    "mlp": ["batch", "precision", "path", "status", "epochs", "s/epoch", "samples/s",
            "loop s/epoch", "loop samples/s", "ratio", "peak MiB"],
    "experiments": ["experiment", "status", "epochs", "planned", "wall s", "fit s", "s/epoch",
                    "test acc"],
    "convnets": ["experiment", "compile", "status", "epochs", "planned", "first epoch s",
                 "s/epoch", "fit s", "wall s", "test acc"],
}  # fmt: skip
NOTES = {
    "mlp": "experiment=good's network and SGD at each batch size. s/epoch: median of the epochs "
    "after the first (training and validation); samples/s: training images / s/epoch. The "
    "loop's epochs run in the same process, one before each goodfit epoch, in the same "
    "precision (bench/paired.py); ratio: median of goodfit / loop over those pairs.",
    "experiments": "`python train.py experiment=NAME trainer=gpu`: wall time of the whole "
    "command (start-up and test included), fit time, test accuracy of the best checkpoint.",
    "convnets": "`python train.py experiment=NAME trainer=gpu [model.compile=true]` for as many "
    "epochs as fitted the check's time (planned: the experiment's full length; a run cut short "
    "stopped at an epoch's end, one-cycle schedule unfinished). first epoch s includes "
    "compilation; s/epoch: median of the others.",
}


class Report:
    """The check's results so far, saved on every change."""

    def __init__(self, out: Path, dry: bool, budget: float) -> None:
        self.out = out
        self.data: dict[str, Any] = {
            "dry": dry, "complete": False, "in_progress": None,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "budget_seconds": budget,
            "seconds": 0.0, "machine": {}, "setup": {},
            "sections": {name: {"status": "not started", "rows": []} for name in SECTIONS},
        }  # fmt: skip
        self._t0 = time.perf_counter()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def section(self, name: str, **fields: Any) -> None:
        self.data["sections"][name].update(fields)
        self.save()

    def add_row(self, name: str, row: dict[str, Any]) -> None:
        self.data["sections"][name]["rows"].append(row)
        self.save()

    def problems(self) -> list[str]:
        """Rows that failed or ran out of time, as 'section: what: status'."""
        found = []
        for name, section in self.data["sections"].items():
            for row in section["rows"]:
                if row.get("status") not in ("ok", "skipped (time box)"):
                    found.append(f"{name}: {_label(row)}: {row.get('status')}")
        return found

    def save(self) -> None:
        from goodfit.runtime.atomic import write_json_atomic, write_text_atomic

        self.data["seconds"] = round(time.perf_counter() - self._t0, 1)
        write_json_atomic(self.out / "gpu_check.json", self.data)
        write_text_atomic(self.out / "gpu_check.md", render(self.data))


def _label(row: dict[str, Any]) -> str:
    keys = ("experiment", "batch", "precision", "path", "compile", "command")
    return " ".join(f"{row[k]}" for k in keys if row.get(k) not in (None, False))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return lines


def render(data: dict[str, Any]) -> str:
    """gpu_check.md: what ran where, each section's table, and what did not run."""
    lines = ["# goodfit GPU check", ""]
    if data["dry"]:
        lines += [
            "**Dry run on the CPU** (GPU_CHECK_DRY=1): tiny synthetic data, 1 epoch, a "
            "reduced grid. It proves the check runs; its figures say nothing.",
            "",
        ]
    if not data["complete"]:
        lines += [f"**Incomplete**: stopped during {data['in_progress'] or 'setup'}.", ""]
    lines += [f"`make gpu-check`, started {data['started']}, {data['seconds']} s of a "
              f"{data['budget_seconds']:.0f} s budget.", "", "## Machine", ""]  # fmt: skip
    facts = {**data["machine"], **data["setup"]}
    lines += ["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in facts.items()]
    left_out = []
    for name, title in SECTIONS.items():
        section = data["sections"][name]
        lines += ["", f"## {title}", "", f"Section: {section['status']}."]
        if name in NOTES:
            lines += ["", NOTES[name]]
        if section["rows"]:
            lines += ["", *table(section["rows"], COLUMNS[name])]
        left_out += [f"- {name}: {_label(row)}: {row['status']}" + why(row)
                     for row in section["rows"] if row.get("status") != "ok"]  # fmt: skip
        left_out += [f"- {name}: {_label(row)}: cut short after {row['epochs']} of "
                     f"{row['planned']} epochs (time box)"
                     for row in section["rows"] if row.get("cut_short")]  # fmt: skip
    if left_out:
        lines += ["", "## Not run, failed or cut short", "", *left_out]
    return "\n".join(lines) + "\n"


def why(row: dict[str, Any]) -> str:
    """The error's last telling line (Hydra ends with a hint about HYDRA_FULL_ERROR)."""
    lines = [line for line in (row.get("error") or "").strip().splitlines()
             if line.strip() and "HYDRA_FULL_ERROR" not in line]  # fmt: skip
    return f" ({lines[-1].strip()[:200]})" if lines else ""
