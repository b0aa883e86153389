"""`python train.py …`: one run, the fine-tuning study, or either of them resumed."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from goodfit.tasks import finetune, train
from goodfit.tasks.resume import auto_resume_state, load_resumed_run

log = logging.getLogger(__name__)


def train_command(cfg: DictConfig) -> dict[str, Any]:
    """What `python train.py` does with its composed config; returns the run's summary."""
    choices = None
    resume = cfg.get("resume")
    auto = resume == "auto"
    if auto:  # continue the run in this folder if there is one (a requeued SLURM job), else start
        run_dir = Path(cfg.paths.output_dir)
        state = auto_resume_state(run_dir)
        log.info("resume=auto: %s", {"completed": "the run in this folder has finished",
                                     "resumable": f"continuing the run in {run_dir}",
                                     "new": "starting a new run"}[state])  # fmt: skip
        if state == "completed":
            return json.loads((run_dir / "summary.json").read_text())
        resume = str(run_dir) if state == "resumable" else None
        with open_dict(cfg):
            cfg.resume = resume
    resuming = bool(resume)
    if resuming:
        resumed = load_resumed_run(cfg, Path(resume), auto=auto)
        cfg, choices = resumed.cfg, resumed.choices
    if cfg.get("transfer"):
        return finetune.run(cfg, choices, resuming=resuming)
    return train.run(cfg, choices, resuming=resuming)
