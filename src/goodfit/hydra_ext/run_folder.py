"""One run per folder, checked before Hydra writes anything into it.

Hydra creates the run folder, opens `train.log` and writes `.hydra/` before the task starts, so
a check inside the task comes too late: a refused run would already have overwritten the saved
config of the run it refuses. `RunFolderGuard` is a Hydra callback whose `on_run_start` runs
before all of that. It refuses a folder that holds a run (unless resuming it), refuses to resume
a folder that holds none (creating nothing), and takes an exclusive lock on the folder for the
life of the process, so two runs started at once into one folder cannot both run.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from goodfit.runtime.distributed import is_rank_zero
from goodfit.runtime.errors import (
    EXIT_USER_ERROR,
    ConfigError,
    RunFolderError,
    RunFolderInUseError,
    UserError,
)

LOCK_FILE = ".goodfit.lock"
RECORD_MARKERS = (".hydra", "summary.json", "checkpoints", "train.log")
# What Hydra and the lock write before the task starts: a folder holding these alone is that
# of a run refused before any work (a typo in an override), which the corrected run may take.
PRELUDE = frozenset({".hydra", "train.log", LOCK_FILE})
_HELD: dict[Path, Any] = {}  # folder → open lock file, kept open until the process ends


def holds_run(folder: Path) -> list[str]:
    """What in `folder` shows that a run worked there (none for a run refused at its start)."""
    found = [name for name in RECORD_MARKERS if (folder / name).exists()]
    if found and {entry.name for entry in folder.iterdir()} <= PRELUDE:
        return []
    return found


def auto_resume_state(run_dir: Path) -> str:
    """What `resume=auto` finds in `run_dir`: "completed" (a finished run), "resumable" (a run
    with a checkpoint to continue from), or "new"."""
    summary = run_dir / "summary.json"
    if summary.is_file() and '"status": "completed"' in summary.read_text():
        return "completed"
    has_config = (run_dir / ".hydra" / "config.yaml").is_file()
    if has_config and any((run_dir / "checkpoints").glob("*.ckpt")):
        return "resumable"
    return "new"


def lock_folder(folder: Path) -> None:
    """Take the folder's exclusive lock for this process's life; refuse if another holds it."""
    folder = folder.resolve()
    if folder in _HELD:
        return
    make_folder(folder, "hydra.run.dir")
    handle = open(folder / LOCK_FILE, "a+")  # noqa: SIM115  (held open until exit)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunFolderInUseError(
            f"{folder}: {holder} is running in this folder; wait for it to end, or choose "
            "another hydra.run.dir"
        ) from None
    handle.truncate(0)
    handle.write(f"process {os.getpid()}\n")
    handle.flush()
    _HELD[folder] = handle


def make_folder(folder: Path, key: str) -> None:
    """Create a run or sweep folder (and its parents); one line naming `key` when it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or str(err)
        if isinstance(err, FileExistsError) or (folder.exists() and not folder.is_dir()):
            reason = "a file has that name"
        raise RunFolderError(f"{key}={folder}: the folder cannot be created ({reason}); "
                             f"choose another {key}") from None  # fmt: skip


def claim(folder: Path, resume: str | None) -> None:
    """Check `folder` for this run and lock it (see the module's docstring)."""
    if resume and resume != "auto":
        if not (folder / ".hydra" / "config.yaml").is_file():
            raise RunFolderInUseError(
                f"resume={resume}: not a run folder (no .hydra/config.yaml there); nothing was "
                "created"
            )
    elif resume != "auto":
        found = holds_run(folder)
        if found:
            raise RunFolderInUseError(
                f"{folder} already holds a run ({', '.join(found)}); choose another "
                "hydra.run.dir, leave it to the default, or continue it with resume="
                f"{folder}"
            )
    lock_folder(folder)


class RunFolderGuard(Callback):
    """Hydra callback (conf/hydra/default.yaml): claims the run folder of a single run."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_rank_zero():  # DDP's other processes run in the folder rank 0 claimed
            return
        folder = Path(str(OmegaConf.select(config, "hydra.run.dir"))).expanduser()
        try:
            refuse_chdir(config)
            claim(folder, OmegaConf.select(config, "resume", default=None))
        except UserError as err:
            _refuse(err)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """The sweep folder, created here so that a path that cannot be one is named (Hydra's
        launcher would fail with a traceback)."""
        try:
            refuse_chdir(config)
            make_folder(Path(str(OmegaConf.select(config, "hydra.sweep.dir"))).expanduser(),
                        "hydra.sweep.dir")  # fmt: skip
        except UserError as err:
            _refuse(err)


def refuse_chdir(config: DictConfig) -> None:
    """Relative paths a user gives (datamodule.data_dir, resume=, a checkpoint) mean the folder
    the command started in, and every file a run writes goes into its run folder by absolute
    path: Hydra's chdir into the run folder would only make those paths point elsewhere."""
    if OmegaConf.select(config, "hydra.job.chdir", default=False):
        raise ConfigError(
            "hydra.job.chdir=true: goodfit reads relative paths (datamodule.data_dir=, resume=, "
            "transfer.backbone_path=, …) from the folder the command starts in and writes each "
            "run's files into its run folder itself; leave hydra.job.chdir=false"
        )


def _refuse(err: UserError) -> None:
    print(f"Error: {err}", file=sys.stderr)  # before Hydra's logging is set up
    raise SystemExit(EXIT_USER_ERROR) from None
