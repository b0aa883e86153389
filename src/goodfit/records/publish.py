"""What a run publishes to its loggers when it ends, beyond the scalars Lightning logs as it
trains: the hyper-parameters with the final figures, the pictures and the verdict. Each logger
kind gets them through its own API (one module each: tensorboard, mlflow_logger, wandb_logger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from goodfit.records.run_record import RunRecord


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
