"""The sweeper's settings (`hydra.sweeper.*`), registered with Hydra as
`hydra/sweeper=goodfit_optuna`. Imported at every Hydra start-up: no Optuna import here.
(No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules, where
dataclasses cannot resolve string annotations.)"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class GoodfitOptunaSweeperConf:
    _target_: str = "hydra_plugins.goodfit_optuna.sweeper.GoodfitOptunaSweeper"
    # the sampler and the pruner reach the sweeper as settings, built per trial
    _recursive_: bool = False
    # maximize or minimize the value the task returns
    direction: str = "maximize"
    study_name: str = "goodfit"
    # null: a journal file in the sweep folder (optuna-journal.log); a path: a journal file
    # there; a database URL (sqlite:///…, postgresql://…): Optuna's RDB storage
    storage: Any = None
    # trials the study holds in all (finished or running), across every worker sharing it
    n_trials: int = 20
    # trials this process runs at the same time through the Hydra launcher
    n_jobs: int = 1
    # an optuna.samplers class; its `seed` plus the trial's number seeds each trial's draw
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None}
    )
    # null, median, hyperband, or a node with _target_ (an optuna.pruners class)
    pruner: Any = None
    # the search space: key -> choice(...), interval(...), tag(log, interval(...)), range(...)
    params: Any = None
    # fraction of this process's trials that may fail before it stops asking for new ones
    max_failure_rate: float = 0.0
    # mark trials left running by killed workers failed at start (none may still be running)
    fail_stale_trials: bool = False


ConfigStore.instance().store(
    group="hydra/sweeper", name="goodfit_optuna", node=GoodfitOptunaSweeperConf,
    provider="goodfit",
)  # fmt: skip
