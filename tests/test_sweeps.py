"""Sweeps on the engines researchers use: joblib, submitit, Optuna; and the sweep's table."""

from __future__ import annotations

import csv
import json
import os

import pytest

from goodfit.hydra_ext.resolvers import job_dirname

from .conftest import run_train, synthetic_overrides


def table(sweep) -> list[dict[str, str]]:
    with open(sweep / "summary.csv") as f:
        return list(csv.DictReader(f))


def job_folders(sweep) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.mark.slow
def test_joblib_runs_jobs_in_parallel_without_oversubscribing(synthetic_dir, tmp_path):
    sweep = tmp_path / "sweep"
    run_train(
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer=sgd,rmsprop",
        "debug=fast", f"hydra.sweep.dir={sweep}", *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    assert job_folders(sweep) == ["optimizer=rmsprop", "optimizer=sgd"]
    threads = [
        json.loads((sweep / j / "summary.json").read_text())["threads"] for j in job_folders(sweep)
    ]
    assert sum(threads) <= max(2, os.cpu_count() or 1), "jobs x threads must fit the cores"
    assert [row["status"] for row in table(sweep)] == ["completed", "completed"]


@pytest.mark.slow
def test_submitit_local(synthetic_dir, tmp_path):
    sweep = tmp_path / "sweep"
    run_train(
        "-m", "hydra/launcher=submitit_local", "optimizer=sgd,adam", "debug=fast",
        f"hydra.sweep.dir={sweep}", *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    assert job_folders(sweep) == ["optimizer=adam", "optimizer=sgd"]
    assert all((sweep / job / "summary.json").is_file() for job in job_folders(sweep))


def test_failed_job_is_listed_and_the_others_still_run(synthetic_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m", "optimizer.lr=-1,0.01", "debug=fast", f"hydra.sweep.dir={sweep}",
        *synthetic_overrides(synthetic_dir), check=False,
    )  # fmt: skip
    assert result.returncode != 0  # the sweep reports its failure: the job and why, no traceback
    assert "Traceback" not in result.stderr
    assert "optimizer.lr=-1 is not allowed" in result.stderr.split("Error executing job")[-1]
    rows = {row["overrides"].split()[0]: row for row in table(sweep)}
    assert rows["optimizer.lr=-1"]["status"] == "failed"
    assert "optimizer.lr=-1" in rows["optimizer.lr=-1"]["error"]
    assert rows["optimizer.lr=0.01"]["status"] == "completed"
    assert float(rows["optimizer.lr=0.01"]["test_acc"]) > 0
    markdown = (sweep / "summary.md").read_text()
    assert "| failed |" in markdown and "| completed |" in markdown
    # the console ends with the sweep's table, though Hydra ended the sweep with the error
    shown = result.stdout.rsplit("sweep: 2 job(s), 1 failed", 1)[1]
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in shown.splitlines()]
    rows = {row[0]: row for row in cells if row and row[0]}
    assert rows["optimizer.lr=-1"][1] == "failed" and "optimizer.lr=-1 is not" in rows[
        "optimizer.lr=-1"][4]  # fmt: skip
    assert rows["optimizer.lr=0.01"][1] == "completed"
    assert shown.strip().endswith(f"python -m goodfit.report {sweep}")


@pytest.mark.parametrize(
    ("overrides", "params", "expected"),
    [
        (["optimizer=sgd", "trainer.max_epochs=2"], None, "optimizer=sgd,trainer.max_epochs=2"),
        ([], None, "job3"),
        (["datamodule.data_dir=/a/b"], None, "datamodule.data_dir=_a_b"),
        (["name=my exp"], None, "name=my_exp"),  # a space would split a printed command
        (["optimizer.lr=0.00029380279387", "seed=1"], {"optimizer.lr": "x"},
         "trial3-optimizer.lr=0.0002938"),
        # a swept seed is a sub-folder: one setting's seeds group together
        (["experiment=good", "seed=1"], None, "experiment=good/seed=1"),
        (["seed=2"], None, "seed=2"),
    ],
)  # fmt: skip
def test_job_folder_names(tmp_path, overrides, params, expected):
    assert job_dirname(str(tmp_path), overrides, 3, params) == expected


def test_a_sweep_with_a_data_fact_among_its_overrides_names_its_jobs(tmp_path):
    """The sweep's saved overrides are read as typed: `${data:…}` resolved there failed, the
    data not being loaded when the job's folder is named."""
    from omegaconf import OmegaConf

    typed = "model.in_features=${data:in_features}"
    OmegaConf.save({"hydra": {"overrides": {"task": [typed, "seed=1,2"]}}},
                   tmp_path / "multirun.yaml")  # fmt: skip
    assert job_dirname(str(tmp_path), [typed, "seed=1"], 0) == "seed=1"


def test_a_job_folder_too_long_for_a_file_system_is_shortened_apart(tmp_path):
    """An override of a long list (or a long name=) would make a folder name past the 255 bytes
    file systems take, and the job failed with OSError: it keeps its start and a digest."""
    long_a = "model.hidden=[" + ",".join(["1024"] * 60) + "]"
    long_b = long_a.replace("1024]", "512]")
    names = [job_dirname(str(tmp_path), [o, "seed=1"], 0) for o in (long_a, long_b)]
    folders = [name.split("/")[0] for name in names]
    assert folders[0] != folders[1] and all(n.endswith("/seed=1") for n in names)
    assert all(len(f.encode()) <= 200 and f.startswith("model.hidden=[1024,") for f in folders)
    for folder in folders:
        (tmp_path / folder).mkdir()  # a real folder of that name can be made
    assert len(job_dirname(str(tmp_path), ["name=" + "é" * 150], 0).encode()) <= 200


def test_slurm_launcher_config_composes():
    result = run_train("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra")
    launcher = result.stdout.split("  launcher:", 1)[1]
    assert "SlurmLauncher" in launcher and "partition: gpu" in launcher
    assert "timeout_min: 240" in launcher and "max_num_timeout: 3" in launcher


def test_a_job_refused_for_another_runs_folder_shows_none_of_its_figures(tmp_path):
    """The job failed before any work because its folder holds an earlier run: its row says so
    and does not borrow that run's test accuracy."""
    from hydra.core.utils import JobReturn, JobStatus

    from goodfit.hydra_ext.sweep_summary import job_row
    from goodfit.runtime.errors import RunFolderInUseError

    folder = tmp_path / "experiment=good"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "test_acc": 0.88}))
    in_use = RunFolderInUseError(f"{folder} already holds a run")
    refused = JobReturn(["experiment=good"], status=JobStatus.FAILED, _return_value=in_use)
    row = job_row(refused, folder, job_num=0)
    assert (row["status"], row["test_acc"], row["verdict"]) == ("failed", "", "")
    assert row["error"] == f"RunFolderInUseError: {folder} already holds a run"
    finished = JobReturn(overrides=["experiment=good"], status=JobStatus.COMPLETED)
    assert job_row(finished, folder, job_num=0)["test_acc"] == 0.88  # its own run: read
