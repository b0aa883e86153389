"""`python train.py …`: one run, the fine-tuning study, or either of them resumed."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from goodfit.hydra_ext import hydra_config
from goodfit.hydra_ext.run_folder import auto_resume_state
from goodfit.runtime.distributed import quiet_console_of_other_processes
from goodfit.tasks import finetune, train
from goodfit.tasks.resume import load_resumed_run

log = logging.getLogger(__name__)


def share_cores_with_parallel_jobs() -> int | None:
    """Under the joblib launcher, limit torch to this job's share of the cores (cores // jobs
    at once, or fewer if OMP_NUM_THREADS says so); return the threads set, else None."""
    n_jobs = hydra_config.parallel_jobs()
    if n_jobs is None:
        return None
    import torch

    from goodfit.runtime.threads import available_cores, concurrent_jobs, job_threads

    cores = available_cores()
    threads = job_threads(n_jobs, cores, os.environ.get("OMP_NUM_THREADS"))
    torch.set_num_threads(threads)
    log.info("joblib launcher: %d jobs at once on %d cores, %d torch threads for this job",
             concurrent_jobs(n_jobs, cores), cores, threads)  # fmt: skip
    return threads


def auto_resume(cfg: DictConfig) -> str:
    """`resume=auto`: continue the run in this run's folder if there is one (a requeued SLURM
    job), else start one; sets `cfg.resume` to that folder or null. Returns what it found."""
    run_dir = Path(cfg.paths.output_dir)
    state = auto_resume_state(run_dir)
    log.info("resume=auto: %s", {"completed": "the run in this folder has finished",
                                 "resumable": f"continuing the run in {run_dir}",
                                 "new": "starting a new run"}[state])  # fmt: skip
    with open_dict(cfg):
        cfg.resume = str(run_dir) if state == "resumable" else None
    return state


def train_command(cfg: DictConfig) -> dict[str, Any]:
    """What `python train.py` does with its composed config; returns the run's summary."""
    quiet_console_of_other_processes()
    share_cores_with_parallel_jobs()
    choices = None
    auto = cfg.get("resume") == "auto"
    if auto and auto_resume(cfg) == "completed":
        return json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    resume = cfg.get("resume")
    resuming = bool(resume)
    if resuming:
        resumed = load_resumed_run(cfg, Path(resume), auto=auto)
        cfg, choices = resumed.cfg, resumed.choices
    if cfg.get("transfer"):
        return finetune.run(cfg, choices, resuming=resuming)
    return train.run(cfg, choices, resuming=resuming)
