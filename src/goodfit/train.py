"""The training task: compose → validate → fit → test the best checkpoint → record."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from goodfit.config import validate
from goodfit.diagnosis import Thresholds, diagnose
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


def build_callbacks(cfg: DictConfig) -> list[Any]:
    """The configured callbacks, skipping any set to null, plus goodfit's own."""
    from hydra.utils import instantiate

    from goodfit.callbacks import ConfigInCheckpoint

    callbacks = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None:
            continue
        if name == "lr_monitor" and not cfg.get("logger"):
            log.warning("callbacks.lr_monitor needs a logger; skipped because logger is null")
            continue
        callbacks.append(instantiate(cb_cfg))
    callbacks.append(ConfigInCheckpoint(OmegaConf.to_container(cfg, resolve=True)))
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


def quiet_library_noise() -> None:
    """One copy of each log line, and none of the warnings that do not apply to goodfit."""
    root = logging.getLogger()
    if root.handlers:  # Hydra's handlers print and file every record already
        logging.getLogger("lightning").handlers.clear()
    # goodfit logs once per epoch, so the per-step logging interval is irrelevant.
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one model as `cfg` says; write the run's record; return its summary."""
    validate(cfg)
    thresholds = Thresholds.from_mapping(cfg.get("diagnosis"))
    run_dir = Path(cfg.paths.output_dir)
    check_run_dir_unused(run_dir)

    import lightning as L
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar

    from goodfit.figures import write_run_pictures
    from goodfit.module import Classifier
    from goodfit.summary import per_class_table, print_summary, write_json_atomic
    from goodfit.tensorboard import add_curves_layout, log_hparams, log_pictures, log_verdict

    quiet_library_noise()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    choices = hydra_choices()

    datamodule = instantiate(cfg.datamodule)
    datamodule.prepare_data()  # fail on missing or damaged data before building anything else
    datamodule.load()
    net = instantiate(cfg.model)
    scheduler = cfg.get("scheduler")
    model = Classifier(
        net=net,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(scheduler.factory) if scheduler else None,
        scheduler_interval=scheduler.interval if scheduler else "epoch",
        scheduler_monitor=scheduler.monitor if scheduler else "val/loss",
        num_classes=len(datamodule.class_names),
    )

    callbacks = build_callbacks(cfg)
    loggers = build_loggers(cfg)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        enable_checkpointing=any(isinstance(cb, ModelCheckpoint) for cb in callbacks),
        enable_progress_bar=any(isinstance(cb, ProgressBar) for cb in callbacks),
    )
    add_curves_layout(loggers)

    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    fit_seconds = time.perf_counter() - started
    history = list(model.history)  # testing a checkpoint loads that checkpoint's history

    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint else ""
    test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None)[0]

    val_accs = [h["val_acc"] for h in history if h["val_acc"] is not None]
    summary: dict[str, Any] = {
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
        "device": str(trainer.strategy.root_device),
        "torch": torch.__version__,
        "run_dir": str(run_dir),
    }
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
