"""MLflow: a logger whose local store parallel jobs can share, and the end of a run through
MLflow's client, into the run Lightning's MLFlowLogger made (whose metrics already hold the
curves per epoch and the test figures)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger

from goodfit.records.run_record import RunRecord

SQLITE = "sqlite:///"


class MLFlowLogger(LightningMLFlowLogger):
    """Lightning's MLFlowLogger. A local SQLite store (`sqlite:///<path>`) and its experiment
    are created once, under a file lock: MLflow sets up a new database in several steps, which
    fail when the jobs of a parallel sweep start together."""

    def __init__(self, experiment_name: str = "goodfit", tracking_uri: str | None = None,
                 artifact_location: str | None = None, **kwargs: Any) -> None:  # fmt: skip
        tracking_uri = tracking_uri or os.getenv("MLFLOW_TRACKING_URI")  # Lightning's default
        if tracking_uri and tracking_uri.startswith(SQLITE):
            prepare_sqlite_store(tracking_uri, experiment_name, artifact_location)
        super().__init__(experiment_name=experiment_name, tracking_uri=tracking_uri,
                         artifact_location=artifact_location, **kwargs)  # fmt: skip
        # where the console summary says to look (Lightning keeps it private)
        self.tracking_uri = tracking_uri or f"file:{self.save_dir}"


def prepare_sqlite_store(uri: str, experiment_name: str, artifact_location: str | None) -> None:
    """Create the database's tables and the experiment, one process at a time."""
    from mlflow.tracking import MlflowClient

    db = Path(uri[len(SQLITE) :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = MlflowClient(tracking_uri=uri)
        if client.get_experiment_by_name(experiment_name) is None:
            client.create_experiment(experiment_name, artifact_location=artifact_location)


def publish(logger: Any, record: RunRecord) -> None:
    """Parameters, the final figures as metrics, the verdict as a tag and a text artifact, the
    pictures and summary.json as artifacts."""
    client, run_id = logger.experiment, logger.run_id
    logger.log_hyperparams(record.params)  # MLflow params: strings, each written once
    client.log_metric(run_id, "best_val_acc", record.figures["best_val_acc"], step=record.step)
    client.set_tag(run_id, "verdict", record.verdict)
    client.log_text(run_id, record.verdict_markdown, "verdict.md")
    for path in record.pictures.values():
        client.log_artifact(run_id, str(path), artifact_path="pictures")
    if record.summary_path is not None:
        client.log_artifact(run_id, str(record.summary_path))
