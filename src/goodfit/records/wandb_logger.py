"""Weights & Biases: the end of a run through the W&B run of Lightning's WandbLogger (its
history already holds the curves per epoch and the test figures)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from goodfit.records.run_record import RunRecord


def publish(logger: Any, record: RunRecord) -> None:
    """The hyper-parameters into the run's config, the final figures and the verdict into its
    summary, the pictures as W&B images (`views/<name>`), summary.json as a run file."""
    import wandb

    run = logger.experiment
    run.config.update(record.params, allow_val_change=True)
    run.log({f"views/{name}": wandb.Image(str(path)) for name, path in record.pictures.items()})
    # the test figures are in the summary already, as the test stage logged them (test/acc)
    run.summary.update(
        {
            "best_val_acc": record.figures["best_val_acc"],
            "verdict": record.verdict,
            "verdict_markdown": record.verdict_markdown,
        }
    )
    if record.summary_path is not None:
        # A copy inside the run's folder: saving a file from elsewhere makes W&B link to it and
        # warn that later changes need another save.
        copy = Path(run.dir) / record.summary_path.name
        shutil.copyfile(record.summary_path, copy)
        run.save(str(copy), base_path=run.dir, policy="now")


def finish(logger: Any, failed: bool) -> None:
    """End the W&B run (Lightning leaves it open), so a next run in this process is its own."""
    import wandb

    if wandb.run is not None:
        wandb.run.finish(exit_code=1 if failed else 0)
