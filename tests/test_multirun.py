"""Sweeps through Hydra's real launcher, and run folders that never collide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from .conftest import ROOT, run_train, synthetic_overrides


def test_two_job_multirun_one_named_folder_per_job(synthetic_dir, tmp_path):
    sweep = tmp_path / "sweep"
    run_train(
        "-m", "optimizer=sgd,rmsprop", "trainer.max_epochs=2", f"hydra.sweep.dir={sweep}",
        *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["optimizer=rmsprop", "optimizer=sgd"]
    for job in jobs:
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["optimizer"] == job.split("=")[1]
        assert summary["epochs_run"] == 2

    # TensorBoard names each run after its folder, so sgd and rmsprop can be told apart.
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(sweep))
    multiplexer.Reload()
    runs = multiplexer.Runs()
    assert set(runs) == {"optimizer=sgd", "optimizer=rmsprop"}
    for run in runs:
        assert {"train/loss", "val/loss"} <= set(runs[run]["scalars"])


def test_runs_started_together_get_their_own_folders(synthetic_dir, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = [sys.executable, str(ROOT / "train.py"), "debug=fast", f"paths.log_dir={tmp_path}",
            *synthetic_overrides(synthetic_dir)]  # fmt: skip
    procs = [
        subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2
    assert all((folder / "summary.json").is_file() for folder in folders)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, timeout: float = 60.0):
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_tensorboard_server_lists_the_sweep_runs(synthetic_dir, tmp_path):
    sweep = tmp_path / "sweep"
    run_train(
        "-m", "optimizer=sgd,adam", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}",
        *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(sweep),
         "--host", "127.0.0.1", "--port", str(port), "--load_fast", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        tags = _get_json(f"http://127.0.0.1:{port}/data/plugin/scalars/tags")
        runs = _get_json(f"http://127.0.0.1:{port}/data/runs")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert {"optimizer=sgd", "optimizer=adam"} <= set(runs)
    for run in ("optimizer=sgd", "optimizer=adam"):
        assert {"train/loss", "val/loss"} <= set(tags[run])
