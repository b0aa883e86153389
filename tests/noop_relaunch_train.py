"""train.py with goodfit's DDP relaunch made a no-op (Lightning's own `_hydra_subprocess_cmd`
stays): the relaunch test runs it to show that its checks catch what the relaunch prevents."""

import contextlib
import runpy
import sys
from pathlib import Path

import goodfit.tasks.train

goodfit.tasks.train.job_relaunch = contextlib.nullcontext
sys.argv[0] = str(Path(__file__).resolve().parents[1] / "train.py")
runpy.run_path(sys.argv[0], run_name="__main__")
