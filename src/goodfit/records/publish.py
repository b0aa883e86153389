"""What a run publishes to its loggers when it ends, beyond the scalars Lightning logs as it
trains: the hyper-parameters with the final figures, the pictures and the verdict. Each logger
kind gets them through its own API (one module each: tensorboard, mlflow_logger, wandb_logger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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


def where_to_look(loggers: list[Any]) -> list[tuple[str, str]]:
    """For each configured logger, how to open what it recorded: (its name, a command or file)."""
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

    rows = []
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            rows.append(("TensorBoard", f"tensorboard --logdir {Path(logger.log_dir)}"))
        elif isinstance(logger, CSVLogger):
            rows.append(("CSV", str(Path(logger.log_dir) / "metrics.csv")))
        elif isinstance(logger, MLFlowLogger):
            rows.append(("MLflow", _mlflow_place(logger)))
        elif isinstance(logger, WandbLogger):
            run = logger.experiment
            # sync_dir is public from wandb 0.19; before it, the run's files sit in <it>/files
            folder = getattr(run, "sync_dir", None) or Path(run.dir).parent
            rows.append(("W&B", f"wandb sync {folder}" if run.offline else run.url))
    return rows


def _mlflow_place(logger: Any) -> str:
    uri = getattr(logger, "tracking_uri", None)  # goodfit's MLFlowLogger keeps it
    if uri is None:
        return f"run {logger.run_id}"
    served = uri.startswith(("http:", "https:", "databricks"))
    return uri if served else f"mlflow ui --backend-store-uri {uri}"


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
