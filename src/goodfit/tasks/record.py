"""After a run: summary.json, the pictures, what goes to the loggers, the console table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from goodfit.callbacks.history import recorder_of, startup_seconds_of
from goodfit.records.diagnosis import Thresholds, diagnose
from goodfit.records.figures import write_run_pictures
from goodfit.records.publish import publish, verdict_markdown, where_to_look
from goodfit.records.run_record import RunRecord
from goodfit.records.summary import per_class_table, print_summary, run_summary
from goodfit.runtime.atomic import write_json_atomic
from goodfit.runtime.errors import UserError
from goodfit.runtime.timing import peak_rss_mb

log = logging.getLogger(__name__)

# Values a study varies, sent to the loggers (TensorBoard's HParams tab, MLflow params, W&B
# config) beside the group choices.
HPARAM_KEYS = ("seed", "datamodule.batch_size", "datamodule.val_split",
               "datamodule.val_split_mode", "trainer.max_epochs", "optimizer.lr",
               "optimizer.momentum", "optimizer.weight_decay", "model.dropout")  # fmt: skip


def hparams_for_loggers(cfg: DictConfig, choices: dict[str, Any]) -> dict[str, Any]:
    """The group choices and the main numbers of the run."""
    params: dict[str, Any] = {f"choice/{k}": v for k, v in choices.items() if "/" not in k}
    for key in HPARAM_KEYS:
        value = OmegaConf.select(cfg, key)
        if value is not None:
            params[key] = value
    return params


def peak_memory_mb(trainer: L.Trainer) -> float:
    """Peak accelerator memory when training on one, else the process's peak RSS."""
    device = trainer.strategy.root_device
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def data_record(datamodule: Any) -> dict[str, Any]:
    """What summary.json says about the data: its datamodule, classes, image shape and split
    sizes, and the datamodule's own facts (e.g. `skipped_images` of an image folder)."""
    record = {"datamodule": type(datamodule).__name__, "class_names": list(datamodule.class_names),
              "image_shape": list(datamodule.image_shape),
              "split_sizes": dict(datamodule.sizes)}  # fmt: skip
    record.update(getattr(datamodule, "summary_facts", None) or {})
    return record


def evaluated_sizes(trainer: L.Trainer, module: Any, split_sizes: dict[str, int]) -> dict[str, int]:
    """The split sizes with n_val and n_test as the images the figures rest on: the module's
    own count (`images_evaluated`, as Classifier keeps it) where `trainer.limit_val_batches` or
    `limit_test_batches` evaluated part of a split; a module that keeps none gets a warning."""
    sizes = dict(split_sizes)
    counted = getattr(module, "images_evaluated", None) or {}
    for stage in ("val", "test"):
        if counted.get(stage):
            sizes[f"n_{stage}"] = int(counted[stage])
            continue
        limit = getattr(trainer, f"limit_{stage}_batches", 1.0)
        if limit is not None and limit != 1.0:
            log.warning("n_%s=%d is the split's size: %s keeps no count of the images it "
                        "evaluated (images_evaluated), and trainer.limit_%s_batches=%s may "
                        "have evaluated fewer", stage, sizes[f"n_{stage}"],
                        type(module).__name__, stage, limit)  # fmt: skip
    return sizes


def record_run(
    cfg: DictConfig, choices: dict[str, Any], *, trainer: L.Trainer, module: Any,
    datamodule: Any, loggers: list[Any], history: list[dict[str, Any]],
    test_metrics: dict[str, Any], best_path: str, fit_seconds: float,
    thresholds: Thresholds, extra: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Write the run's record (on the first process) and return its summary."""
    missing = [key for key in ("test/loss", "test/acc") if key not in test_metrics]
    if missing:
        raise UserError(
            f"module: {type(module).__name__} logged no {' and no '.join(missing)} in its test "
            "step, which the run's record needs (summary.json, the verdict); its checkpoints "
            f"are kept in {Path(cfg.paths.output_dir) / 'checkpoints'}"
        )
    sizes = evaluated_sizes(trainer, module, datamodule.sizes)
    test_acc = float(test_metrics["test/acc"])
    num_classes = len(datamodule.class_names)
    diagnosis = diagnose(history, sizes["n_val"], sizes["n_test"], test_acc, thresholds,
                         num_classes)  # fmt: skip
    unrecorded = not history and recorder_of(trainer) is None
    if unrecorded:
        diagnosis.reasons[:] = ["callbacks.epoch_history is switched off: no epoch was "
                                "recorded, so the fit cannot be judged."]  # fmt: skip
    test_results = getattr(module, "test_results", None)
    summary = run_summary(
        cfg=cfg, choices=choices, net=module, sizes=sizes, history=history,
        test_metrics=test_metrics, diagnosis=diagnosis.to_summary(),
        per_class=per_class_table(datamodule.class_names, test_results), best_path=best_path,
        timing={
            "fit_seconds": round(fit_seconds, 3),
            "startup_seconds": round(startup_seconds_of(trainer) or 0.0, 3),
            "peak_memory_mb": round(peak_memory_mb(trainer), 1),
            "device": str(trainer.strategy.root_device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
    )  # fmt: skip
    summary["data"] = data_record(datamodule)
    if unrecorded:  # the epochs trained, though none was recorded
        summary["epochs_run"] = trainer.current_epoch
    summary.update(extra, num_classes=num_classes)
    if not trainer.is_global_zero:
        return summary
    run_dir = Path(cfg.paths.output_dir)
    if cfg.get("save_backbone"):
        from goodfit.models.backbone import BACKBONE_FILE, save_backbone

        save_backbone(module.net, OmegaConf.to_container(cfg.model, resolve=True),
                      run_dir / BACKBONE_FILE)  # fmt: skip
        summary["backbone"] = str(run_dir / BACKBONE_FILE)
    pictures = write_run_pictures(
        run_dir, history, test_results, datamodule.class_names,
        f"{cfg.get('name')}: {summary['verdict']}", summary["n_val"],
    )  # fmt: skip
    summary["pictures"] = sorted(path.name for path in pictures.values())
    write_json_atomic(run_dir / "summary.json", summary)
    publish_to_loggers(cfg, choices, loggers, summary, pictures)
    print_summary(summary, where_to_look(loggers))
    return summary


def publish_to_loggers(cfg: DictConfig, choices: dict[str, Any], loggers: list[Any],
                       summary: dict[str, Any], pictures: dict[str, Path]) -> None:  # fmt: skip
    """The hyper-parameters with the final figures, the pictures and the verdict, to every
    configured logger (TensorBoard, MLflow, W&B) through its own API."""
    record = RunRecord(
        params=hparams_for_loggers(cfg, choices),
        figures={
            "best_val_acc": summary["best_val_acc"] or 0.0,
            "test_acc": summary["test_acc"],
            "test_loss": summary["test_loss"],
        },
        verdict=str(summary["verdict"]),
        verdict_markdown=verdict_markdown(summary),
        step=len(summary["history"]),
        pictures=dict(pictures),
        summary_path=Path(cfg.paths.output_dir) / "summary.json",
    )  # fmt: skip
    publish(loggers, record)
