"""The training task: check → build → fit → test the best checkpoint → record.

`run(cfg)` trains and tests one model as its config says and writes the run's record into its
folder: summary.json, pictures, checkpoints, logger files. It returns the summary.
"""

from __future__ import annotations

import logging
import signal
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from goodfit.callbacks.history import history_of
from goodfit.hydra_ext import hydra_config
from goodfit.hydra_ext.checks import validate
from goodfit.hydra_ext.monitors import check_monitors
from goodfit.hydra_ext.relaunch import job_relaunch
from goodfit.hydra_ext.targets import check_targets
from goodfit.lit.classifier import logging_interval_quiet
from goodfit.records.diagnosis import Thresholds
from goodfit.records.publish import closing
from goodfit.runtime.atomic import write_json_atomic
from goodfit.runtime.distributed import is_rank_zero, own_process_group
from goodfit.runtime.errors import CheckpointError, RunFolderInUseError, UserError, first_line
from goodfit.tasks import assemble
from goodfit.tasks.record import record_run

log = logging.getLogger(__name__)

RECORD_FILES = ("summary.json", "checkpoints")


def check_run_dir_unused(run_dir: Path) -> None:
    """A new run never continues an old one by accident."""
    used = [name for name in RECORD_FILES if (run_dir / name).exists()]
    if used:
        choose = ("another hydra.sweep.dir, or add resume=auto to continue the sweep's runs "
                  "(finished ones are kept)") if hydra_config.in_multirun() else (
            "another hydra.run.dir or leave it to the default")  # fmt: skip
        raise RunFolderInUseError(f"{run_dir} already holds a run ({', '.join(used)}); "
                                  f"choose {choose}")  # fmt: skip


def preflight(cfg: DictConfig) -> Thresholds:
    """The checks that need no data, before any work: the config's values, every `_target_`,
    the fit-diagnosis thresholds (returned), the optimizer's values and the metrics watched."""
    validate(cfg)
    check_targets(cfg)
    thresholds = Thresholds.from_mapping(cfg.get("diagnosis"))
    assemble.check_optimizer(cfg)
    check_monitors(cfg)
    assemble.check_accelerator(cfg)
    return thresholds


def run(
    cfg: DictConfig,
    choices: dict[str, Any] | None = None,
    *,
    resuming: bool = False,
    prepared: assemble.Prepared | None = None,
    extra_record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and test one model as `cfg` says; write the run's record; return its summary.

    `choices` are the config-group choices when `cfg` was not composed by this Hydra run;
    `resuming` continues the run in its folder from its last checkpoint; `prepared` gives data
    and network already built (the fine-tuning study); `extra_record` joins summary.json.
    """
    thresholds = preflight(cfg)
    run_dir = Path(cfg.paths.output_dir)
    if not resuming and is_rank_zero():  # DDP children share rank 0's folder
        check_run_dir_unused(run_dir)
    ckpt_path, checkpoint = None, None
    if resuming:
        from goodfit.runtime.checkpoint_io import resumable_checkpoint
        from goodfit.tasks.resume import settle_limits

        ckpt_path, checkpoint = resumable_checkpoint(run_dir / "checkpoints")
        settle_limits(cfg, checkpoint, ckpt_path.name, run_dir)
        log.info("Resuming %s from %s", run_dir, ckpt_path)
    assemble.quiet_library_noise()
    overrides = " ".join(hydra_config.task_overrides()) or "none"
    log.info("Run folder %s (overrides: %s)", run_dir, overrides)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    choices = choices if choices is not None else hydra_config.choices()
    prepared = prepared or assemble.prepare(cfg)
    if checkpoint is not None:
        from goodfit.tasks.resume import check_same_data

        check_same_data(prepared.datamodule, checkpoint)
        del checkpoint  # Lightning loads it again to restore it; not held twice meanwhile
    loggers = assemble.build_loggers(cfg)
    with closing(loggers):  # a W&B run ends with this run, recorded or failed
        return _fit_and_record(cfg, choices, prepared, loggers, ckpt_path, thresholds,
                               extra_record or {})  # fmt: skip


@contextmanager
def _resuming_quietly() -> Iterator[None]:
    """Lightning warns that the checkpoint folder is not empty, which a resumed run's is."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Checkpoint directory .* is not empty")
        yield


def _fit_and_record(
    cfg: DictConfig, choices: dict[str, Any], prepared: assemble.Prepared, loggers: list[Any],
    ckpt_path: Path | None, thresholds: Thresholds, extra_record: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from goodfit.callbacks import RunInterrupted

    datamodule, net = prepared.datamodule, prepared.net
    module = assemble.build_module(cfg, net)
    callbacks = assemble.build_callbacks(cfg)
    _resume_hint_trusts(cfg, callbacks)
    fast = _fast_path(cfg)
    if fast is not None:
        monitor = (cfg.get("scheduler") or {}).get("monitor", "val/loss")
        fast.install(module, datamodule, callbacks, int(cfg.datamodule.batch_size), monitor)
    trainer = assemble.build_trainer(
        cfg, callbacks, loggers, **(fast.trainer_kwargs() if fast else {})
    )
    with ExitStack() as stack:
        stack.enter_context(job_relaunch())
        stack.enter_context(own_process_group())
        if ckpt_path is not None:
            stack.enter_context(_resuming_quietly())
        stack.enter_context(logging_interval_quiet(module))
        if fast is not None:
            stack.enter_context(fast.active(module, datamodule))
        started = time.perf_counter()
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        except SIGTERMException as err:  # Lightning's own handler, before training started
            raise RunInterrupted(signal.SIGTERM, "Interrupted by SIGTERM before training") from err
        except UserError as err:  # diverged, disk full, …: one line in train.log, a record
            _record_failure(cfg, choices, module, trainer, err)
            raise
        except RuntimeError as err:
            if ckpt_path is None or "state_dict" not in str(err):
                raise
            raise CheckpointError(
                f"resume: {ckpt_path} does not fit the network its run's config describes "
                f"({first_line(err)})"
            ) from None
        _stop_if_signalled(trainer)
        fit_seconds = time.perf_counter() - started
        extra_record = {**extra_record, **_callback_fields(trainer)}
        history = history_of(trainer)
        best_path = (
            trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        )
        test_metrics = trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None)[0]
    return record_run(
        cfg, choices, trainer=trainer, module=module, datamodule=datamodule, loggers=loggers,
        history=history, test_metrics=test_metrics, best_path=best_path,
        fit_seconds=fit_seconds, thresholds=thresholds, extra=extra_record,
    )  # fmt: skip


def _record_failure(cfg: DictConfig, choices: dict[str, Any], module: Any, trainer: L.Trainer,
                    error: BaseException) -> None:  # fmt: skip
    """A failed run's summary.json: why, and the epochs it completed (best effort: when the disk
    is full, writing it may fail too, which is logged). The entry point logs the error itself."""
    from goodfit.records.summary import failed_summary

    if not trainer.is_global_zero:
        return
    summary = failed_summary(cfg, choices, history_of(trainer), error)
    try:
        write_json_atomic(Path(cfg.paths.output_dir) / "summary.json", summary)
    except OSError as err:
        log.error("The failed run's summary.json could not be written either: %s", err)


def _fast_path(cfg: DictConfig) -> Any:
    """The run's opt-in speed work (`perf=fast`), or None on the plain Lightning path."""
    perf = cfg.get("perf") or {}
    if not (perf.get("manual_optimization") or perf.get("fast_dispatch")):
        return None
    from goodfit.perf import FastPath, PerfSettings

    return FastPath(PerfSettings.from_config(perf), cfg.trainer)


def _callback_fields(trainer: L.Trainer) -> dict[str, Any]:
    """What the run's callbacks add to summary.json (e.g. a search trial's number and whether
    the pruner stopped it: `status: pruned`)."""
    from lightning.pytorch.callbacks import EarlyStopping, Timer

    fields: dict[str, Any] = {}
    for callback in trainer.callbacks:
        fields.update(getattr(callback, "summary_fields", dict)())
        if isinstance(callback, EarlyStopping) and callback.stopping_reason_message:
            fields["stopped_early"] = {"callback": type(callback).__name__,
                                       "epoch": callback.stopped_epoch + 1,
                                       "reason": callback.stopping_reason_message}  # fmt: skip
        if isinstance(callback, Timer) and (left := callback.time_remaining()) is not None:
            fields.update(_time_limit_stop(trainer, callback, left))
    return fields


def _time_limit_stop(trainer: L.Trainer, timer: Any, left: float) -> dict[str, Any]:
    """`stopped_early` for a run that trainer.max_time (Lightning's Timer) ended, with how much
    of its last epoch ran; nothing when the run ended before the limit."""
    if left > 0:
        return {}
    history = history_of(trainer)
    last = history[-1] if history else {}
    limit = timedelta(seconds=round(left + timer.time_elapsed()))
    reason = f"the time limit trainer.max_time ({limit}) was reached"
    if "batches_run" in last:
        reason += (f"; epoch {last['epoch']} ran {last['batches_run']:,} of its "
                   f"{last['batches_in_epoch']:,} batches")  # fmt: skip
    epoch = last.get("epoch", trainer.current_epoch + 1)
    return {"stopped_early": {"callback": type(timer).__name__, "epoch": epoch, "reason": reason}}


def _resume_hint_trusts(cfg: DictConfig, callbacks: list[Any]) -> None:
    """A run of classes outside goodfit's trusted ones (a user's own module) is resumed with
    trust_checkpoint=true: the command a stop prints says so."""
    from goodfit.callbacks import StopOnSignal
    from goodfit.tasks.checkpoints import untrusted_targets

    if untrusted_targets(OmegaConf.to_container(cfg)):
        for callback in callbacks:
            if isinstance(callback, StopOnSignal):
                callback.resume_args = (*callback.resume_args, "trust_checkpoint=true")


def _stop_if_signalled(trainer: L.Trainer) -> None:
    """A signal during the last epoch stops the run before testing, with its checkpoint."""
    from goodfit.callbacks import StopOnSignal

    for callback in trainer.callbacks:
        if isinstance(callback, StopOnSignal):
            callback.stop(trainer, "at the end of training")
