"""`python train.py …`: one run, the fine-tuning study, or either of them resumed."""

from __future__ import annotations

import logging
import os
from typing import Any

from omegaconf import DictConfig

from goodfit.hydra_ext import hydra_config
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


def train_command(cfg: DictConfig) -> dict[str, Any]:
    """What `python train.py` does with its composed config; returns the run's summary."""
    share_cores_with_parallel_jobs()
    choices = None
    resuming = bool(cfg.get("resume"))
    if resuming:
        resumed = load_resumed_run(cfg)
        cfg, choices = resumed.cfg, resumed.choices
    if cfg.get("transfer"):
        return finetune.run(cfg, choices, resuming=resuming)
    return train.run(cfg, choices, resuming=resuming)
