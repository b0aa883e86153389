"""Pruning for `hparams_search=optuna`: the trial reports its validation metric after every epoch
and stops early when the study's pruner says so."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L

from goodfit.runtime.errors import ConfigError

log = logging.getLogger(__name__)


class OptunaPruning(L.Callback):
    """Reports `monitor` to this run's Optuna trial (number `trial_number` of `study_name`) after
    each validation epoch, the epoch (from 1) as its step. When the pruner says the trial is
    worse than it should be by now, the run stops after this epoch, then tests its best
    checkpoint and writes its record as usual, marked `pruned` (summary.json `status`).

    conf/hparams_search/optuna.yaml lists it as `callbacks.optuna_pruning`, filled from the
    sweeper's settings. Without a pruner it still reports, so the dashboard shows each trial's
    curve.
    """

    def __init__(self, study_name: str, trial_number: int, sweep_dir: str,
                 storage: str | None = None, pruner: Any = None,
                 monitor: str = "val/acc") -> None:  # fmt: skip
        self.study_name, self.trial_number, self.sweep_dir = (
            study_name,
            int(trial_number),
            sweep_dir,
        )
        self.storage, self.pruner, self.monitor = storage, pruner, monitor
        self.pruned_at_epoch: int | None = None
        self._trial: Any = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self._trial is not None:
            return
        if trainer.world_size > 1:
            raise ConfigError(
                "callbacks.optuna_pruning: pruning needs one process per trial; "
                "set callbacks.optuna_pruning=null for a multi-process trial"
            )
        self._trial = self._open_trial()

    def _open_trial(self) -> Any:
        import optuna
        from optuna.trial import TrialState

        from goodfit.hydra_ext.optuna_study import build_pruner, open_storage, trial_id

        storage = open_storage(self.storage, self.sweep_dir)
        try:
            study = optuna.load_study(study_name=self.study_name, storage=storage,
                                      pruner=build_pruner(self.pruner))  # fmt: skip
            tid = trial_id(storage, self.study_name, self.trial_number)
        except KeyError as err:
            raise ConfigError(
                f"callbacks.optuna_pruning: no trial {self.trial_number} in study "
                f"{self.study_name!r} ({err}); this callback belongs to hparams_search=optuna"
            ) from err
        if storage.get_trial(tid).state != TrialState.RUNNING:
            raise ConfigError(
                f"callbacks.optuna_pruning: trial {self.trial_number} of study "
                f"{self.study_name!r} is not running; it was already finished"
            )
        # Optuna's Trial over a trial the sweeper asked for, in this (possibly other) process.
        return optuna.trial.Trial(study, tid)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._trial is None or self.pruned_at_epoch is not None:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            logged = ", ".join(sorted(trainer.callback_metrics)) or "none"
            raise ConfigError(
                f"callbacks.optuna_pruning.monitor={self.monitor!r} is not logged "
                f"(logged: {logged})"
            )
        epoch = trainer.current_epoch + 1
        self._trial.report(float(value), epoch)
        if self._trial.should_prune():
            from goodfit.hydra_ext.optuna_study import PRUNED_AT_EPOCH

            self.pruned_at_epoch = epoch
            self._trial.set_user_attr(PRUNED_AT_EPOCH, epoch)
            trainer.should_stop = True
            log.info("Trial %d pruned after epoch %d (%s %.4f)", self.trial_number, epoch,
                     self.monitor, float(value))  # fmt: skip

    def summary_fields(self) -> dict[str, Any]:
        """What this callback adds to the run's summary.json."""
        if self.pruned_at_epoch is None:
            return {"optuna_trial": self.trial_number}
        return {"optuna_trial": self.trial_number, "status": "pruned",
                "pruned_at_epoch": self.pruned_at_epoch}  # fmt: skip
