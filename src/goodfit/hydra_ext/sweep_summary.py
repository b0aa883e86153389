"""One table for a whole multirun: summary.csv and summary.md in the sweep folder.

A Hydra callback. Each job, as it ends (in its own process, whatever the launcher), writes its
row under `<sweep>/.jobs/` and rebuilds both tables under a file lock. A failed job gets a row
marked failed with its error, so a sweep whose last job fails still has its table.
"""

from __future__ import annotations

import atexit
import csv
import fcntl
import hashlib
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from goodfit.runtime.atomic import write_text_atomic
from goodfit.runtime.distributed import is_rank_zero
from goodfit.runtime.errors import RunFolderInUseError

log = logging.getLogger(__name__)

COLUMNS = ["job", "overrides", "status", "test_acc", "best_val_acc", "test_loss", "epochs_run",
           "fit_seconds", "verdict", "run_dir", "error"]  # fmt: skip
ROWS_DIR = ".jobs"


def job_row(job_return: JobReturn, run_dir: Path, job_num: int, job: str = "") -> dict[str, Any]:
    """A job's row: its figures from summary.json, or its error when it failed. A search trial
    that its pruner stopped early is `pruned` (its figures are those of its epochs). A job
    refused because its folder holds another run shows none of that run's figures."""
    summary_path = run_dir / "summary.json"
    someone_elses = isinstance(job_return._return_value, RunFolderInUseError)
    summary = {}
    if summary_path.is_file() and not someone_elses:
        summary = json.loads(summary_path.read_text())
    failed = job_return.status != JobStatus.COMPLETED or summary.get("status") == "failed"
    error = ""
    if job_return.status == JobStatus.FAILED:
        error = f"{type(job_return._return_value).__name__}: {job_return._return_value}"
    elif summary.get("status") == "failed":
        error = str(summary.get("reason", ""))
    verdict = summary.get("verdict", "")
    return {
        "num": job_num,
        "ended": time.time(),
        "job": job or run_dir.name,
        "overrides": " ".join(job_return.overrides or []),
        "status": "failed" if failed else summary.get("status", "completed"),
        "test_acc": summary.get("test_acc", ""),
        "best_val_acc": summary.get("best_val_acc", ""),
        "test_loss": summary.get("test_loss", ""),
        "epochs_run": summary.get("epochs_run", ""),
        "fit_seconds": summary.get("fit_seconds", ""),
        "verdict": ", ".join(verdict) if isinstance(verdict, list) else verdict,
        "run_dir": str(run_dir),
        "error": " ".join(error.split())[:300],  # one line, for the table
    }


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def render_markdown(rows: list[dict[str, Any]]) -> str:
    shown = [c for c in COLUMNS if c != "run_dir"]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in shown) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_tables(sweep_dir: Path) -> list[dict[str, Any]]:
    """Rebuild summary.csv and summary.md from every job row written so far."""
    rows = [json.loads(p.read_text()) for p in (sweep_dir / ROWS_DIR).glob("*.json")]
    rows.sort(key=lambda row: (row["num"], row["ended"]))
    write_text_atomic(sweep_dir / "summary.csv", render_csv(rows))
    write_text_atomic(sweep_dir / "summary.md", render_markdown(rows))
    return rows


def print_sweep_table(sweep_dir: Path) -> None:
    """The sweep's table on the console (a failed job's error in place of its verdict), with
    where its files are; nothing when no job ended."""
    from rich.console import Console
    from rich.table import Column, Table

    rows = sorted((json.loads(p.read_text()) for p in (sweep_dir / ROWS_DIR).glob("*.json")),
                  key=lambda row: (row["num"], row["ended"]))  # fmt: skip
    if not rows:
        return
    failed = sum(row["status"] == "failed" for row in rows)
    title = f"sweep: {len(rows)} job(s)" + (f", {failed} failed" if failed else "")
    table = Table(Column("job", overflow="fold"), "status", "test_acc", "best_val_acc",
                  "verdict or error", title=title)  # fmt: skip
    for row in rows:
        cells = [row.get(c, "") for c in ("job", "status", "test_acc", "best_val_acc")]
        table.add_row(*(_cell(c) for c in cells), row.get("error") or row.get("verdict", ""))
    # A terminal gets its own width; a pipe or a file gets room for the whole table.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    console.print(f"{sweep_dir}/summary.md, summary.csv; compare the runs: python -m "
                  f"goodfit.report {sweep_dir}", highlight=False, soft_wrap=True)  # fmt: skip


class SweepSummary(Callback):
    """Hydra callback: `hydra.callbacks.sweep_summary` in conf/hydra/default.yaml.

    Hydra turns an exception in a callback into a warning and goes on, which would end a sweep
    "successfully" without its table. A failure here is logged and stops the sweep with status
    1 instead (a SystemExit, which Hydra does not catch).

    The launching process prints the table when it exits: after the last job, also when a
    failed job made Hydra end the sweep with its error (Hydra then skips `on_multirun_end`)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if is_rank_zero():  # not in the other processes of a job's DDP run
            sweep_dir = Path(str(config.hydra.sweep.dir)).expanduser().resolve()
            atexit.register(print_sweep_table, sweep_dir)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        try:
            self._add_row(config, job_return)
        except Exception as err:
            log.error("The sweep summary could not be written (%s: %s); stopping the sweep",
                      type(err).__name__, err)  # fmt: skip
            raise SystemExit(1) from err

    @staticmethod
    def _add_row(config: DictConfig, job_return: JobReturn) -> None:
        # The whole config (not job_return.hydra_cfg, a copy of `hydra` alone), so that the sweep
        # folder's interpolations of `paths.*` resolve.
        hydra_cfg = config.get("hydra") if config is not None else None
        if hydra_cfg is None or str(hydra_cfg.mode) != "RunMode.MULTIRUN":
            return
        sweep_dir = Path(str(hydra_cfg.sweep.dir)).resolve()
        run_dir = Path(str(hydra_cfg.runtime.output_dir)).resolve()
        job = run_dir.relative_to(sweep_dir).as_posix() if run_dir.is_relative_to(sweep_dir) else ""
        row = job_row(job_return, run_dir, int(hydra_cfg.job.num), job)
        rows_dir = sweep_dir / ROWS_DIR
        rows_dir.mkdir(parents=True, exist_ok=True)
        # keyed by folder: a resumed search numbers its jobs from 0 again
        key = hashlib.sha1(str(run_dir).encode()).hexdigest()[:16]
        write_text_atomic(rows_dir / f"{key}.json", json.dumps(row))
        with open(sweep_dir / ".summary.lock", "w") as lock:  # jobs may end at the same time
            fcntl.flock(lock, fcntl.LOCK_EX)
            write_tables(sweep_dir)
