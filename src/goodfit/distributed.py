"""Multi-process runs: a relaunch that works inside Hydra multiruns, and rank checks.

Lightning's DDP re-runs the script for every extra process. Under Hydra it re-runs `sys.argv`,
which inside a multirun holds `-m` and the sweep, so every child would start a sweep of its own,
and it points the child at `hydra.run.dir`, which in a multirun is not the job's folder. goodfit
relaunches each child as this job alone (its task overrides), in this job's own folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

# Overrides that would turn a child into a sweep or search of its own.
_SWEEP_GROUPS = ("hparams_search",)
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def child_command(local_rank: int) -> tuple[Sequence[str], str]:
    """The command and folder for DDP process `local_rank` of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    script = Path(hydra_cfg.runtime.cwd, sys.argv[0]).resolve()
    overrides = [o for o in hydra_cfg.overrides.task if o.split("=", 1)[0] not in _SWEEP_GROUPS]
    command = [
        sys.executable,
        str(script),
        *overrides,
        f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"',  # quoted: folder names hold = and ,
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",  # rank 0 already wrote .hydra/
    ]
    return command, hydra_cfg.runtime.cwd


def use_job_relaunch() -> None:
    """Make Lightning's subprocess launcher start children with `child_command`."""
    from lightning.fabric.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = child_command


def is_rank_zero() -> bool:
    """True in the first process of a run (and in a run of one process)."""
    return all(os.environ.get(name, "0") == "0" for name in _RANK_VARIABLES)
