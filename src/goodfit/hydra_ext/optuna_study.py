"""Optuna's storage, pruner and trials as goodfit's search sets them up; shared by the sweeper
(hydra_plugins.goodfit_optuna) and by the pruning callback that runs inside each trial.

Optuna is imported inside the functions: only a search needs it (the `sweeps` extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from goodfit.runtime.errors import ConfigError

# The study's journal in the sweep folder when `hydra.sweeper.storage` is null: one append-only
# file, safe for several processes on a shared (NFS) file system, where SQLite is not.
JOURNAL_FILE = "optuna-journal.log"
# Set on a trial by the pruning callback when the pruner stops it; the sweeper then tells the
# study that the trial was pruned.
PRUNED_AT_EPOCH = "goodfit_pruned_at_epoch"
PRUNERS = {"median": "MedianPruner", "hyperband": "HyperbandPruner", "none": "NopPruner"}


def storage_location(storage: str | None, sweep_dir: str | Path) -> str:
    """What the study is stored in: a database URL, or the path of a journal file."""
    if storage and "://" in str(storage):
        return str(storage)
    path = Path(storage) if storage else Path(sweep_dir) / JOURNAL_FILE
    return str(path.expanduser().resolve())


def open_storage(storage: str | None, sweep_dir: str | Path) -> Any:
    """Optuna's storage: `storage` as a database URL (`sqlite:///…`, `postgresql://…`), else a
    journal file (`storage` as its path, or `<sweep_dir>/optuna-journal.log` when null)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    location = storage_location(storage, sweep_dir)
    if "://" in location:
        return optuna.storages.RDBStorage(location)
    Path(location).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(location))


def dashboard_command(storage: str | None, sweep_dir: str | Path) -> str:
    """The command that opens the study in optuna-dashboard (`pip install optuna-dashboard`)."""
    return f"optuna-dashboard {storage_location(storage, sweep_dir)}"


def build_pruner(spec: Any) -> Any:
    """`hydra.sweeper.pruner`: null or `none` (never prune), `median`, `hyperband`, or a node
    with `_target_` (any optuna.pruners class and its arguments)."""
    import optuna

    if isinstance(spec, optuna.pruners.BasePruner):
        return spec
    if spec is None or (isinstance(spec, str) and spec in PRUNERS):
        return getattr(optuna.pruners, PRUNERS[spec or "none"])()
    if isinstance(spec, Mapping) and "_target_" in spec:
        from hydra.utils import instantiate

        pruner = instantiate(spec)
        if isinstance(pruner, optuna.pruners.BasePruner):
            return pruner
    raise ConfigError(
        f"hydra.sweeper.pruner={spec!r} is not allowed: must be null, "
        f"{', '.join(p for p in PRUNERS if p != 'none')}, or a node with _target_ naming an "
        "optuna.pruners class"
    )


def trial_id(storage: Any, study_name: str, number: int) -> int:
    """The storage's id of trial `number` of the study (Optuna's own storage API)."""
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def frozen_trial(storage: Any, study_name: str, number: int) -> Any:
    """Trial `number` as the storage holds it now (its state, values and user attributes)."""
    return storage.get_trial(trial_id(storage, study_name, number))
