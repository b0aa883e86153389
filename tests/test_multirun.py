"""Sweeps through Hydra's real launcher, and run folders that never collide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from .conftest import ROOT, run_train, synthetic_overrides
from .servers import free_port, get_json, post_json, serving, venv_command


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_tensorboard_opens_on_the_learning_curves(synthetic_dir, tmp_path):
    """A real TensorBoard server on a small seed sweep: its runs group by setting, its Time
    Series tab starts with the train and val curves, its HParams tab holds every run's choices
    and final figures."""
    from .tensorboard_read import time_series_groups

    sweep = tmp_path / "sweep"
    run_train(
        "-m", "optimizer=sgd,adam", "seed=1,2", "debug=fast", "trainer.max_epochs=2",
        "trainer.limit_train_batches=3", f"hydra.sweep.dir={sweep}",
        *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    port = free_port()
    command = [venv_command("tensorboard"), "--logdir", str(sweep), "--host", "127.0.0.1",
               "--port", str(port), "--load_fast", "false"]  # fmt: skip
    base = f"http://127.0.0.1:{port}/data"
    with serving(command):
        runs = get_json(f"{base}/runs")
        tags = get_json(f"{base}/plugin/timeseries/tags")  # what the Time Series tab lists
        experiment = post_json(f"{base}/plugin/hparams/experiment", {})
        statuses = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
        request = {"startIndex": 0, "sliceSize": 100, "allowedStatuses": statuses}
        groups = post_json(f"{base}/plugin/hparams/session_groups", request)
    expected = {f"optimizer={o}/seed={s}" for o in ("sgd", "adam") for s in (1, 2)}
    assert set(runs) == expected, "one run per job; a seed nested under its setting"
    scalar_tags = {t for run_tags in tags["scalars"]["runTagInfo"].values() for t in run_tags}
    image_tags = set(tags["images"]["tagDescriptions"]) | set(tags["images"]["tagRunSampledInfo"])
    for run in expected:
        assert {
            "train/loss",
            "train/acc",
            "val/loss",
            "val/acc",
            "train/lr",
            "train_eval/loss",
            "train_eval/acc",
        } <= set(tags["scalars"]["runTagInfo"][run])
    # the tab's first group is the training curves (the epoch's mean, then measured as
    # validation's), then validation; what is drawn once at the end (the figures, the
    # pictures) comes after them
    order = time_series_groups(sorted(scalar_tags | image_tags))
    assert order[:3] == ["train", "train_eval", "val"], order
    assert set(order[3:]) == {"verdict", "views"}, order
    # the HParams tab: each run's choices and final figures
    metric_tags = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert metric_tags == {"verdict/best_val_acc", "verdict/test_acc", "verdict/test_loss"}
    assert {"choice/optimizer", "seed"} <= {h["name"] for h in experiment["hparamInfos"]}
    sessions = {g["name"]: g for g in groups["sessionGroups"]}
    assert set(sessions) == expected
    for name, group in sessions.items():
        summary = json.loads((sweep / name / "summary.json").read_text())
        assert group["hparams"]["choice/optimizer"] == name.split("/")[0].split("=")[1]
        assert group["hparams"]["seed"] == int(name.split("=")[-1])
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert values["verdict/test_acc"] == pytest.approx(summary["test_acc"], rel=1e-5)


def test_a_sweep_started_again_in_its_folder_says_how_to_continue_it(synthetic_dir, tmp_path):
    """The same sweep into the same folder: each job is refused (its folder holds a finished
    run) with how to continue the sweep instead; with resume=auto the finished runs are kept."""
    sweep = tmp_path / "sweep"
    command = ["-m", "seed=1,2", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}",
               *synthetic_overrides(synthetic_dir)]  # fmt: skip
    run_train(*command)
    finished = (sweep / "seed=1" / "summary.json").read_text()
    again = run_train(*command, check=False)
    output = " ".join((again.stdout + again.stderr).split())
    assert "choose another hydra.sweep.dir, or add resume=auto to continue the sweep's runs" in (
        output)  # fmt: skip
    run_train(*command, "resume=auto")
    assert (sweep / "seed=1" / "summary.json").read_text() == finished
