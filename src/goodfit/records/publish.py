"""What a run publishes to its loggers when it ends, beyond the scalars Lightning logs as it
trains: the hyper-parameters with the final figures, the pictures and the verdict. Each logger
kind gets them through its own API (one module each: tensorboard, mlflow_logger, wandb_logger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunRecord:
    """The end of a run, as every logger receives it."""

    params: dict[str, Any]  # group choices (`choice/model`) and main numbers (`optimizer.lr`)
    figures: dict[str, float]  # best_val_acc, test_acc, test_loss
    verdict: str  # the verdict's label, e.g. "good fit"
    verdict_markdown: str  # the verdict and its reasons
    step: int  # epochs run: the x position of anything drawn once, at the end
    pictures: dict[str, Path] = field(default_factory=dict)  # name -> PNG in the run folder
    summary_path: Path | None = None  # summary.json


def verdict_markdown(summary: dict[str, Any]) -> str:
    """The verdict and its reasons as Markdown."""
    lines = [f"**Verdict: {summary['verdict']}**", ""]
    lines += [f"- {reason}" for reason in summary["verdict_reasons"]]
    return "\n".join(lines)


def _publisher(logger: Any) -> Callable[[Any, RunRecord], None] | None:
    # Lightning's logger classes import without their libraries; each publisher imports its
    # library only when a run uses that logger.
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    if isinstance(logger, TensorBoardLogger):
        from goodfit.records import tensorboard

        return tensorboard.publish
    if isinstance(logger, MLFlowLogger):
        from goodfit.records import mlflow_logger

        return mlflow_logger.publish
    if isinstance(logger, WandbLogger):
        from goodfit.records import wandb_logger

        return wandb_logger.publish
    return None  # CSV: metrics.csv already holds every figure


def publish(loggers: list[Any], record: RunRecord) -> None:
    """Send the record to every configured logger that can show it."""
    for logger in loggers:
        publisher = _publisher(logger)
        if publisher is not None:
            publisher(logger, record)


@contextmanager
def closing(loggers: list[Any]) -> Iterator[None]:
    """End what a logger keeps open past Lightning's own end of run (a W&B run) when the run
    ends, recorded or failed, so the next run in this process starts its own."""
    from lightning.pytorch.loggers import WandbLogger

    failed = True
    try:
        yield
        failed = False
    finally:
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                from goodfit.records import wandb_logger

                wandb_logger.finish(logger, failed)
