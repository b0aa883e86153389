"""The training task: compose → validate → fit → test the best checkpoint → record."""

from __future__ import annotations

import logging
import signal
import time
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from goodfit.config import validate
from goodfit.diagnosis import Thresholds, diagnose
from goodfit.distributed import is_rank_zero, use_job_relaunch
from goodfit.errors import RunFolderInUseError

log = logging.getLogger(__name__)

RECORD_FILES = ("summary.json", "checkpoints")


def hydra_choices() -> dict[str, Any]:
    """The config-group choices (`model: mlp_good`, …) when running under Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return dict(HydraConfig.get().runtime.choices)


def check_run_dir_unused(run_dir: Path) -> None:
    """A new run never continues an old one by accident."""
    used = [name for name in RECORD_FILES if (run_dir / name).exists()]
    if used:
        raise RunFolderInUseError(
            f"{run_dir} already holds a run ({', '.join(used)}); "
            "choose another hydra.run.dir or leave it to the default"
        )


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list[Any]:
    """The configured callbacks, skipping any set to null, plus goodfit's own."""
    from hydra.utils import instantiate

    from goodfit.callbacks import (
        AugmentationPreview,
        ConfigInCheckpoint,
        RandomStateInCheckpoint,
        StopOnDivergence,
        StopOnSignal,
    )

    callbacks = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None:
            continue
        if name == "lr_monitor" and not cfg.get("logger"):
            log.warning("callbacks.lr_monitor needs a logger; skipped because logger is null")
            continue
        callbacks.append(instantiate(cb_cfg))
    callbacks.append(ConfigInCheckpoint(OmegaConf.to_container(cfg, resolve=True)))
    if cfg.get("augmentation"):
        callbacks.append(AugmentationPreview(run_dir))
    callbacks += [RandomStateInCheckpoint(), StopOnDivergence()]
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    callbacks.append(StopOnSignal(last, resume_dir=cfg.get("study_dir")))
    return callbacks


def build_loggers(cfg: DictConfig) -> list[Any]:
    from hydra.utils import instantiate

    return [instantiate(lg) for lg in (cfg.get("logger") or {}).values() if lg is not None]


def hparams_for_tensorboard(cfg: DictConfig, choices: dict[str, Any]) -> dict[str, Any]:
    """The values a study varies: group choices and the main numbers."""
    params: dict[str, Any] = {f"choice/{k}": v for k, v in choices.items() if "/" not in k}
    for key in ("seed", "datamodule.batch_size", "datamodule.val_split",
                "datamodule.val_split_mode", "trainer.max_epochs", "optimizer.lr",
                "optimizer.momentum", "optimizer.weight_decay", "model.dropout"):  # fmt: skip
        value = OmegaConf.select(cfg, key)
        if value is not None:
            params[key] = value
    return params


def peak_memory_mb(trainer: Any) -> float:
    """Peak accelerator memory when training on one, else the process's peak RSS."""
    import torch

    from goodfit.timing import peak_rss_mb

    device = trainer.strategy.root_device
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def failed_summary(
    cfg: DictConfig, choices: dict[str, Any], model: Any, error: Exception
) -> dict[str, Any]:
    """The record of a run that stopped with an error: why, and the epochs it completed."""
    return {
        "status": "failed",
        "reason": str(error),
        "name": cfg.get("name"),
        "experiment": choices.get("experiment"),
        "seed": cfg.seed,
        "epochs_run": len(model.history),
        "test_loss": None,
        "test_acc": None,
        "history": list(model.history),
        "run_dir": str(cfg.paths.output_dir),
    }


def quiet_library_noise() -> None:
    """One copy of each log line, and none of the warnings that do not apply to goodfit."""
    root = logging.getLogger()
    if root.handlers:  # Hydra's handlers print and file every record already
        logging.getLogger("lightning").handlers.clear()
    # goodfit logs once per epoch, so the per-step logging interval is irrelevant.
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
    # goodfit logs torchmetrics values, which are already synced across processes.
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
    # goodfit's own callbacks restore their state from the checkpoint when they are present.
    warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint.*")


def run(cfg: DictConfig, choices: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and test one model as `cfg` says; write the run's record; return its summary.
    `choices` are the config-group choices when `cfg` was not composed by this Hydra run."""
    resumed = None
    if cfg.get("resume"):
        from goodfit.resume import load_resumed_run

        resumed = load_resumed_run(cfg)
        cfg = resumed.cfg
    validate(cfg)
    thresholds = Thresholds.from_mapping(cfg.get("diagnosis"))
    run_dir = Path(cfg.paths.output_dir)
    if resumed is None and is_rank_zero():  # DDP children share rank 0's folder
        check_run_dir_unused(run_dir)
    ckpt_path = None
    if resumed is not None:
        from goodfit.checkpoint_io import resumable_checkpoint

        ckpt_path = resumable_checkpoint(run_dir / "checkpoints")
        log.info("Resuming %s from %s", run_dir, ckpt_path)

    import lightning as L
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from goodfit.callbacks import DivergedError, RunInterrupted, StopOnSignal
    from goodfit.checkpoint_io import AtomicCheckpointIO
    from goodfit.fast_hooks import NoProfiler, use_fast_callback_dispatch
    from goodfit.figures import write_run_pictures
    from goodfit.models import build_network
    from goodfit.module import Classifier
    from goodfit.optimization import StepSettings
    from goodfit.summary import per_class_table, print_summary, write_json_atomic
    from goodfit.tensorboard import add_curves_layout, log_hparams, log_pictures, log_verdict

    quiet_library_noise()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if choices is None:
        choices = resumed.choices if resumed else hydra_choices()

    augmentation = instantiate(cfg.augmentation) if cfg.get("augmentation") else None
    steps = StepSettings.from_config(cfg)
    datamodule = instantiate(
        cfg.datamodule, augmentation=augmentation, steps_per_batch=steps.steps_per_batch
    )
    datamodule.prepare_data()  # fail on missing or damaged data before building anything else
    datamodule.load()
    net = build_network(cfg.model)
    transfer = None
    if cfg.get("transfer"):
        from goodfit import transfer as transfer_learning

        transfer = transfer_learning.prepare(cfg, net, datamodule, run_dir)
    scheduler = cfg.get("scheduler")
    model = Classifier(
        net=net,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(scheduler.factory) if scheduler else None,
        scheduler_interval=scheduler.interval if scheduler else "epoch",
        scheduler_monitor=scheduler.monitor if scheduler else "val/loss",
        num_classes=len(datamodule.class_names),
        steps=steps,
    )

    callbacks = build_callbacks(cfg, run_dir) + (transfer.callbacks if transfer else [])
    loggers = build_loggers(cfg)
    profiler = {} if cfg.trainer.get("profiler") else {"profiler": NoProfiler()}
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        **profiler,
        **steps.trainer_kwargs(),
        callbacks=callbacks,
        logger=loggers or False,
        enable_checkpointing=any(isinstance(cb, ModelCheckpoint) for cb in callbacks),
        enable_progress_bar=any(isinstance(cb, ProgressBar) for cb in callbacks),
        plugins=[AtomicCheckpointIO()],
    )
    add_curves_layout(loggers)
    use_job_relaunch()
    use_fast_callback_dispatch()

    started = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    except DivergedError as err:
        if trainer.is_global_zero:
            write_json_atomic(run_dir / "summary.json", failed_summary(cfg, choices, model, err))
        raise
    except SIGTERMException as err:  # Lightning's own handler, before training started
        raise RunInterrupted(signal.SIGTERM, "Interrupted by SIGTERM before training") from err
    stop_on_signal = next(cb for cb in callbacks if isinstance(cb, StopOnSignal))
    stop_on_signal.stop(trainer, "at the end of training")  # a signal during the last epoch
    fit_seconds = time.perf_counter() - started
    history = list(model.history)  # testing a checkpoint loads that checkpoint's history

    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint else ""
    test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None)[0]

    val_accs = [h["val_acc"] for h in history if h["val_acc"] is not None]
    summary: dict[str, Any] = {
        "status": "completed",
        "name": cfg.get("name"),
        "experiment": choices.get("experiment"),
        "model": choices.get("model", cfg.model.get("_target_")),
        "optimizer": choices.get("optimizer", cfg.optimizer.get("_target_")),
        "scheduler": choices.get("scheduler"),
        "seed": cfg.seed,
        "params_total": sum(p.numel() for p in net.parameters()),
        "params_trainable": sum(p.numel() for p in net.parameters() if p.requires_grad),
        **datamodule.sizes,
        "epochs_run": len(history),
        "test_loss": float(test_metrics["test/loss"]),
        "test_acc": float(test_metrics["test/acc"]),
        "best_val_acc": max(val_accs) if val_accs else None,
        **diagnose(
            history,
            datamodule.sizes["n_val"],
            datamodule.sizes["n_test"],
            float(test_metrics["test/acc"]),
            thresholds,
        ).to_summary(),
        "per_class": per_class_table(datamodule.class_names, model.test_results),
        "best_checkpoint": str(best_path) if best_path else None,
        "history": history,
        "fit_seconds": round(fit_seconds, 3),
        "startup_seconds": round(model.startup_seconds or 0.0, 3),
        "peak_memory_mb": round(peak_memory_mb(trainer), 1),
        "device": str(trainer.strategy.root_device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "run_dir": str(run_dir),
    }
    if transfer is not None:
        scratch_acc = transfer_learning.scratch_test_acc(cfg, run_dir)
        summary.update(transfer.record, scratch_test_acc=scratch_acc,
                       transfer_gain=round(summary["test_acc"] - scratch_acc, 4))  # fmt: skip
    if not trainer.is_global_zero:
        return summary
    if cfg.get("save_backbone"):
        from goodfit.transfer import BACKBONE_FILE, save_backbone

        save_backbone(net, OmegaConf.to_container(cfg.model, resolve=True), run_dir / BACKBONE_FILE)
        summary["backbone"] = str(run_dir / BACKBONE_FILE)
    pictures = write_run_pictures(
        run_dir, history, model.test_results, datamodule.class_names,
        f"{cfg.get('name')}: {summary['verdict']}", summary["n_val"],
    )  # fmt: skip
    summary["pictures"] = sorted(path.name for path in pictures.values())
    write_json_atomic(run_dir / "summary.json", summary)
    log_pictures(loggers, pictures, step=len(history))
    log_verdict(loggers, summary)
    log_hparams(
        loggers,
        hparams_for_tensorboard(cfg, choices),
        {
            "hp/best_val_acc": summary["best_val_acc"] or 0.0,
            "hp/test_acc": summary["test_acc"],
            "hp/test_loss": summary["test_loss"],
        },  # fmt: skip
    )
    print_summary(summary)
    return summary
