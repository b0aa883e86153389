"""The evaluation task: test a checkpoint on the test set, as its training run's test did."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from goodfit.config import ConfigError

log = logging.getLogger(__name__)


def find_checkpoint(path: Path) -> Path:
    """A checkpoint file as given; for a run folder, the checkpoint its own test used."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"ckpt_path={path}: no such checkpoint file or run folder")
    summary = path / "summary.json"
    if summary.is_file():
        best = json.loads(summary.read_text()).get("best_checkpoint")
        if best and Path(best).is_file():
            return Path(best)
    for name in ("best.ckpt", "last.ckpt"):
        if (path / "checkpoints" / name).is_file():
            return path / "checkpoints" / name
    raise ConfigError(f"ckpt_path={path}: the folder holds no checkpoints/best.ckpt or last.ckpt")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's contents; it must carry the config of the run that wrote it."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a damaged or foreign file: say which and why
        raise ConfigError(f"ckpt_path={path}: cannot be loaded ({err})") from err
    if "goodfit_config" not in checkpoint or "state_dict" not in checkpoint:
        raise ConfigError(f"ckpt_path={path}: not a goodfit checkpoint (no goodfit_config)")
    return checkpoint


def run(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint in `cfg.ckpt_path`; print and return its test loss and accuracy."""
    import lightning as L
    from hydra.utils import instantiate

    from goodfit.models import build_network
    from goodfit.module import Classifier
    from goodfit.summary import print_table
    from goodfit.train import quiet_library_noise

    quiet_library_noise()
    ckpt = find_checkpoint(Path(cfg.ckpt_path).expanduser())
    run_cfg = OmegaConf.create(load_checkpoint(ckpt)["goodfit_config"])
    if cfg.get("data_dir"):
        run_cfg.datamodule.data_dir = cfg.data_dir

    datamodule = instantiate(run_cfg.datamodule)
    datamodule.prepare_data()
    model = Classifier(
        net=build_network(run_cfg.model),
        optimizer=instantiate(run_cfg.optimizer),
        num_classes=len(datamodule.class_names),
    )
    trainer_cfg = run_cfg.trainer
    trainer: L.Trainer = instantiate(
        trainer_cfg,
        accelerator=cfg.get("accelerator") or trainer_cfg.accelerator,
        devices=1,  # one process, even for a model trained with DDP: the test set is the same
        num_nodes=1,
        strategy="auto",
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    metrics = trainer.test(model, datamodule=datamodule, ckpt_path=str(ckpt), weights_only=False,
                           verbose=False)[0]  # fmt: skip
    result = {
        "checkpoint": str(ckpt),
        "test_loss": float(metrics["test/loss"]),
        "test_acc": float(metrics["test/acc"]),
        "n_test": datamodule.sizes["n_test"],
    }
    print_table(
        f"goodfit eval: {run_cfg.get('name')}",
        [("checkpoint", ckpt), ("test images", result["n_test"]),
         ("test loss", f"{result['test_loss']:.4f}"),
         ("test accuracy", f"{result['test_acc']:.4f}")],
    )  # fmt: skip
    return result
