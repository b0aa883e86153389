"""The runs a report reads: their folders, their summary.json, their overrides.

Only what runs wrote is read (summary.json, `.hydra/config.yaml` for the diagnosis thresholds,
`.hydra/overrides.yaml` for the settings, `.hydra/hydra.yaml` for the job's place in its
sweep), so old folders and folders copied from another machine work. A run that failed
(summary.json says `"status": "failed"`, or the folder has `.hydra/` but no summary.json) is
kept, marked failed, so the report can show it and leave it out of the statistics.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from goodfit.hydra_ext.overrides import override_key
from goodfit.records.diagnosis import Thresholds, diagnose
from goodfit.runtime.errors import ConfigError

REQUIRED_KEYS = ("history", "n_val", "test_loss", "test_acc")
NO_SUMMARY = "no summary.json: the run stopped before writing it, or is still running"


class ReportError(RuntimeError):
    """A folder or file the report cannot use; the message names it."""


@dataclass
class RunRecord:
    """One run as its folder recorded it, with its diagnosis (recomputed for older runs)."""

    folder: Path
    label: str
    summary: dict[str, Any]
    overrides: list[str] | None = None  # .hydra/overrides.yaml; None when the run has none
    job_num: int | None = None  # its job number in a Hydra sweep, when known

    def get(self, key: str, default: Any = None) -> Any:
        return self.summary.get(key, default)

    @property
    def failed(self) -> bool:
        return not self.summary or self.summary.get("status") == "failed"

    @property
    def reason(self) -> str:
        """Why a failed run failed, as its record says."""
        return str(self.summary.get("reason") or NO_SUMMARY) if self.failed else ""

    @property
    def seed(self) -> int | None:
        """The run's seed: summary.json's, else a `seed=` override."""
        if self.summary.get("seed") is not None:
            return int(self.summary["seed"])
        for override in self.overrides or []:
            _, _, value = override.partition("=")
            if override_key(override) == "seed" and value.lstrip("-").isdigit():
                return int(value)
        return None


def _is_unfinished_run(folder: Path) -> bool:
    """A Hydra run folder that never wrote summary.json, here or below (a job that stopped)."""
    return (folder / ".hydra" / "overrides.yaml").is_file() and not any(
        folder.rglob("summary.json")
    )


def find_runs(folder: Path) -> list[Path]:
    """The run folders in `folder`: itself when it holds summary.json (or is a run folder that
    stopped before writing one), else every folder below it that is."""
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder")
    if (folder / "summary.json").is_file() or _is_unfinished_run(folder):
        return [folder]
    runs = {path.parent for path in folder.rglob("summary.json")}
    runs |= {p.parent.parent for p in folder.rglob(".hydra/overrides.yaml")
             if _is_unfinished_run(p.parent.parent)}  # fmt: skip
    if not runs:
        raise ReportError(f"{folder}: no runs found (no summary.json in it or below it)")
    return sorted(runs)


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


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ReportError(f"{path}: not readable YAML ({err})") from None


def read_overrides(folder: Path) -> list[str] | None:
    """The run's command-line overrides (`.hydra/overrides.yaml`), or None without one."""
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    overrides = _read_yaml(path)
    if overrides is None:
        return []
    if not isinstance(overrides, list):
        raise ReportError(f"{path}: not a list of overrides")
    return [str(o) for o in overrides]


def read_job_num(folder: Path) -> int | None:
    """The job's number in its sweep (`hydra.job.num` in `.hydra/hydra.yaml`), else None."""
    path = folder / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return None
    num = ((_read_yaml(path) or {}).get("hydra") or {}).get("job", {}).get("num")
    return int(num) if isinstance(num, int) else None


def _read_summary(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    if not path.is_file():  # a run refused before it began, stopped, or still running
        error = logged_error(folder / "train.log")
        return {"status": "failed", "reason": error} if error else {}
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: not a readable summary ({err})") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{path}: not a readable summary (not a JSON object)")
    if summary.get("status") == "failed":
        return summary
    missing = [key for key in REQUIRED_KEYS if key not in summary]
    if missing:
        raise ReportError(f"{path}: missing {', '.join(missing)}")
    return summary


# A record of Hydra's job log (`[time][logger][LEVEL] - message`); a message may go on over the
# following lines, which do not start with '['.
LOG_RECORD = re.compile(r"^\[[^\]]*\]\[[^\]]*\]\[(?P<level>[A-Z]+)\] - (?P<message>.*)$")


def logged_error(log: Path) -> str | None:
    """The last ERROR record of a run's train.log, its lines joined (what a run refused before
    writing summary.json logged as its reason), else None."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    error: list[str] | None = None
    in_error = False
    for line in lines:
        record = LOG_RECORD.match(line)
        if record:
            in_error = record["level"] == "ERROR"
            error = [record["message"]] if in_error else error
        elif in_error and line.strip():
            error.append(line.strip())
    return " ".join(error) if error else None


def load_run(folder: Path, label: str) -> RunRecord:
    """Read a run's record; a completed run written before the diagnosis existed gets it now."""
    summary = _read_summary(folder)
    if summary and summary.get("status") != "failed" and "verdict" not in summary:
        num_classes = summary.get("num_classes") or len(summary.get("per_class") or {}) or None
        diagnosis = diagnose(
            summary["history"], summary["n_val"], summary.get("n_test"), summary["test_acc"],
            _run_thresholds(folder), num_classes,
        )  # fmt: skip
        summary = {**summary, **diagnosis.to_summary()}
    overrides, job_num = read_overrides(folder), read_job_num(folder)
    study_run = _enclosing_run(folder) if overrides is None else None
    if study_run is not None:
        # A step of a study inside a run (experiment=finetune's pretrain/ and scratch/): the
        # run's settings plus the step's name, so each step forms groups of its own.
        step = str(summary.get("name") or folder.name)
        inherited = read_overrides(study_run) or []
        overrides = [*(o for o in inherited if override_key(o) != "name"), f"name={step}"]
        job_num = read_job_num(study_run)
    return RunRecord(folder, label, summary, overrides, job_num)


def _enclosing_run(folder: Path) -> Path | None:
    """The nearest folder above `folder` with its own `.hydra/overrides.yaml`, else None."""
    for parent in folder.resolve().parents:
        if (parent / ".hydra" / "overrides.yaml").is_file():
            return parent
    return None


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
