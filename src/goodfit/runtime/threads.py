"""Each job of a parallel sweep gets its share of the cores, so jobs × threads fit the machine."""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may use, as joblib counts them (CPU affinity and cgroup quotas)
    when it is installed, else the affinity mask."""
    try:
        from joblib import cpu_count

        return max(1, int(cpu_count()))
    except ImportError:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def concurrent_jobs(n_jobs: int, cores: int) -> int:
    """How many jobs joblib runs at once for `n_jobs`: -1 means every core, -2 all but one, …"""
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return max(1, n_jobs)


def job_threads(n_jobs: int, cores: int, env_threads: str | None = None) -> int:
    """Torch threads for one of `n_jobs` concurrent jobs on `cores`: cores // jobs (at least
    one), or fewer when `env_threads` (OMP_NUM_THREADS) asks for fewer."""
    share = max(1, cores // concurrent_jobs(n_jobs, cores))
    try:
        asked = int(env_threads) if env_threads else 0
    except ValueError:
        asked = 0
    return min(share, asked) if asked > 0 else share
