"""Multi-process runs: which process this is, its console, and a process group that ends with
its run."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def is_rank_zero() -> bool:
    """True in the first process of a run (and in a run of one process)."""
    return all(os.environ.get(name, "0") == "0" for name in _RANK_VARIABLES)


def quiet_console_of_other_processes() -> None:
    """In any process but the first, the log's console handlers pass errors only: each process
    keeps its whole log in its own file (`train_ddp_process_1.log`), and the console, which the
    processes share, does not show the first one's lines twice (as Lightning's rank-zero
    messages are shown once)."""
    if is_rank_zero():
        return
    for handler in logging.getLogger().handlers:
        if getattr(handler, "stream", None) in (sys.stdout, sys.stderr):
            handler.setLevel(logging.ERROR)


# What Lightning's subprocess launcher writes into the launching process's environment.
_LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def own_process_group() -> Iterator[None]:
    """A DDP run inside the block leaves the process as it found it.

    Lightning's DDP leaves two things behind until the process exits: its process group, and the
    variables its launcher set in `os.environ` (`LOCAL_RANK`, …). The next DDP run in the same
    process (the next job of a multirun) would take that `LOCAL_RANK` to mean that someone else
    started its processes, start none, and wait forever; or reuse the old group, whose other
    processes are gone. So the block's process group is destroyed (torch's public
    `destroy_process_group`) and the variables are put back as they were."""
    import torch.distributed as dist

    before = dist.is_available() and dist.is_initialized()
    saved = {name: os.environ.get(name) for name in _LAUNCH_VARIABLES}
    try:
        yield
    finally:
        if not before and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
