"""TensorBoard extras: train and validation on one chart, and a real HParams entry."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import Logger, TensorBoardLogger

CURVES_LAYOUT = {
    "Learning curves": {
        "loss (train vs val)": ["Multiline", ["train/loss", "val/loss"]],
        "accuracy (train vs val)": ["Multiline", ["train/acc", "val/acc"]],
    }
}


def tensorboard_loggers(loggers: list[Logger]) -> list[TensorBoardLogger]:
    return [lg for lg in loggers if isinstance(lg, TensorBoardLogger)]


def add_curves_layout(loggers: list[Logger]) -> None:
    """Custom-scalars layout: each metric's train and val curves on one chart."""
    for logger in tensorboard_loggers(loggers):
        logger.experiment.add_custom_scalars(CURVES_LAYOUT)


def log_hparams(loggers: list[Logger], params: dict[str, Any], metrics: dict[str, float]) -> None:
    """Write the HParams entry once the run's figures are known, then flush."""
    for logger in tensorboard_loggers(loggers):
        logger.log_hyperparams(params, metrics)
        logger.experiment.flush()
