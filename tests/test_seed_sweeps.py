"""Seeds as a sweep: jobs in parallel each with its share of the cores, and `make study SEEDS=N`
through the real Makefile, train.py and report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from goodfit.runtime.threads import available_cores, concurrent_jobs, job_threads

from .conftest import ROOT, run_train, synthetic_overrides


@pytest.mark.parametrize(
    ("n_jobs", "cores", "env", "threads"),
    [(2, 16, None, 8), (5, 16, None, 3), (-1, 16, None, 1), (-2, 16, None, 1), (4, 16, "2", 2),
     (4, 16, "32", 4), (32, 16, None, 1), (3, 2, None, 1), (2, 16, "bad", 8)],
)  # fmt: skip
def test_each_job_gets_its_share_of_the_cores(n_jobs, cores, env, threads):
    assert job_threads(n_jobs, cores, env) == threads
    assert concurrent_jobs(n_jobs, cores) * threads <= max(cores, concurrent_jobs(n_jobs, cores))


@pytest.mark.slow
def test_joblib_seed_sweep_shares_the_cores_and_reports(synthetic_dir, tmp_path, monkeypatch):
    """Two seeds at once through Hydra's joblib launcher. OMP_NUM_THREADS above the share is
    passed on to the workers by joblib; goodfit still holds each job to cores // 2."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(available_cores() + 1))
    sweep = tmp_path / "sweep"
    run_train(
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "experiment=good", "seed=1,2",
        "debug=fast", f"hydra.sweep.dir={sweep}", *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    share = max(1, available_cores() // 2)
    for seed in (1, 2):
        summary = json.loads((sweep / f"seed={seed}" / "summary.json").read_text())
        assert summary["seed"] == seed and summary["threads"] == share
        assert "torch threads for this job" in (sweep / f"seed={seed}" / "train.log").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "goodfit.report", str(sweep)], cwd=ROOT, capture_output=True,
        text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (group,) = json.loads((sweep / "report.json").read_text())["groups"]
    assert group["runs"] == 2 and group["seeds"] == [1, 2]
    assert group["name"].startswith("experiment=good,") and "seed" not in group["name"]


def make(*args: str, py: str = sys.executable) -> subprocess.CompletedProcess:
    """`make study …` in the project, with the venv and data steps taken as done."""
    return subprocess.run(
        ["make", "--no-print-directory", "-o", "install", "-o", "data", "study", f"PY={py}",
         *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_study_seeds_runs_the_seed_sweep_then_the_report(synthetic_dir, tmp_path):
    sweep = tmp_path / "study"
    args = " ".join(["trainer.max_epochs=1", *synthetic_overrides(synthetic_dir)])
    result = make("SEEDS=2", f"STUDY_DIR={sweep}", f"ARGS={args}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"train.py -m experiment=good,bad seed=1,2 hydra.sweep.dir={sweep}" in result.stdout
    # A swept seed is a sub-folder of its setting, so TensorBoard groups a setting's seeds.
    jobs = sorted(p.parent.relative_to(sweep).as_posix() for p in sweep.rglob("summary.json"))
    assert jobs == [f"experiment={e}/seed={s}" for e in ("bad", "good") for s in (1, 2)]
    report = json.loads((sweep / "report.json").read_text())
    assert [(g["name"], g["runs"]) for g in report["groups"]] == [
        ("experiment=good", 2), ("experiment=bad", 2)]  # fmt: skip
    assert report["comparisons"][0]["test"] == "paired t"
    assert (sweep / "report.md").is_file() and (sweep / "test_accuracies.png").is_file()


@pytest.mark.parametrize("seeds", ["abc", "0", "-1", "2.5"])
def test_make_study_refuses_a_bad_seed_count(seeds, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = make(f"SEEDS={seeds}", f"STUDY_DIR={tmp_path / 'never'}")
    assert result.returncode != 0
    assert f"make study: SEEDS must be a whole number from 1 (got '{seeds}')" in result.stderr
    assert not (tmp_path / "never").exists()


def test_make_study_without_seeds_is_the_one_run_study(tmp_path):
    """PY=echo prints the two commands `make study` runs instead of running them."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = make(f"STUDY_DIR={tmp_path}", py="echo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [
        f"train.py -m experiment=good,bad hydra.sweep.dir={tmp_path}",
        f"-m goodfit.report {tmp_path}",
    ]


@pytest.mark.slow
def test_report_on_a_seed_sweep_with_failed_jobs(synthetic_dir, tmp_path):
    """Jobs that stop on a bad value leave a run folder without summary.json: the report lists
    them as failed and computes the other group's figures."""
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m", "optimizer.lr=-1,0.01", "seed=1,2", "debug=fast", f"hydra.sweep.dir={sweep}",
        *synthetic_overrides(synthetic_dir), check=False,
    )  # fmt: skip
    assert result.returncode != 0  # the sweep reports its failures
    report = subprocess.run(
        [sys.executable, "-m", "goodfit.report", str(sweep)], cwd=ROOT, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    bad, good = json.loads((sweep / "report.json").read_text())["groups"]
    assert (bad["name"], bad["runs"], good["name"], good["runs"]) == (
        "optimizer.lr=-1", 0, "optimizer.lr=0.01", 2)  # fmt: skip
    assert [f["seed"] for f in bad["failed"]] == [1, 2]
    assert all("optimizer.lr=-1 is not allowed" in f["reason"] for f in bad["failed"])
    text = (sweep / "report.md").read_text()
    assert "- optimizer.lr=-1: no completed run, so no figures." in text
    assert "-1 − 0.01: no completed runs to compare" in text
    assert good["test_acc"]["ci95"] is not None
