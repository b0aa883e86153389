"""Process start time and peak memory, for the run's record and the benchmark."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

_IMPORTED_AT = time.time()


def process_start_time() -> float:
    """Unix time at which this process started (from /proc on Linux; else goodfit's import)."""
    try:
        # Fields after the ")" that closes the command name; starttime is field 22 overall.
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB
