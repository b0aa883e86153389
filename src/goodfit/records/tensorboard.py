"""TensorBoard extras: train and validation on one chart, a real HParams entry, the run's
pictures and its fit diagnosis."""

from __future__ import annotations

from pathlib import Path
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


def log_pictures(loggers: list[Logger], pictures: dict[str, Path], step: int) -> None:
    """Each PNG as a TensorBoard image (`pictures/<name>`), exactly as saved in the run folder."""
    from matplotlib.image import imread

    for logger in tensorboard_loggers(loggers):
        for name, path in pictures.items():
            logger.experiment.add_image(f"pictures/{name}", imread(path), step, dataformats="HWC")
        logger.experiment.flush()


def verdict_markdown(summary: dict[str, Any]) -> str:
    """The verdict and its reasons as Markdown for TensorBoard's text tab."""
    lines = [f"**Verdict: {summary['verdict']}**", ""]
    lines += [f"- {reason}" for reason in summary["verdict_reasons"]]
    return "\n".join(lines)


def log_verdict(loggers: list[Logger], summary: dict[str, Any]) -> None:
    """The fit diagnosis in the Text tab, under `diagnosis/verdict`."""
    for logger in tensorboard_loggers(loggers):
        logger.experiment.add_text("diagnosis/verdict", verdict_markdown(summary), 0)
        logger.experiment.flush()
