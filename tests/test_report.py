"""`python -m goodfit.report` on a sweep the test runs, on loose and old run folders, and on bad
input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from goodfit.records.report import main

from .conftest import ROOT, run_train, synthetic_overrides
from .test_figures import assert_png

LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


@pytest.fixture(scope="module")
def study_sweep(synthetic_dir: Path, tmp_path_factory) -> Path:
    """The study in small: experiment=good,bad for two epochs on synthetic data."""
    sweep = tmp_path_factory.mktemp("study") / "sweep"
    run_train(
        "-m", "experiment=good,bad", "trainer.max_epochs=2", f"hydra.sweep.dir={sweep}",
        *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    return sweep


def report_cli(*dirs: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "goodfit.report", *map(str, dirs)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def picture_links(report: Path) -> list[str]:
    return LINK.findall(report.read_text())


def assert_links_resolve(report: Path) -> list[str]:
    links = picture_links(report)
    assert links, "the report links no pictures"
    for link in links:
        assert not Path(link).is_absolute(), f"{link} is not relative"
        assert_png(report.parent / link.replace("%20", " "), min_size=(300, 200))
    return links


@pytest.mark.slow
def test_study_report(study_sweep):
    result = report_cli(study_sweep)
    assert result.returncode == 0, result.stderr
    report = study_sweep / "report.md"
    assert result.stdout.splitlines()[0] == str(report)
    text = report.read_text()
    for experiment, model, optimizer in (
        ("good", "mlp_good", "sgd"),
        ("bad", "mlp_bad", "rmsprop"),
    ):
        summary = json.loads(
            (study_sweep / f"experiment={experiment}" / "summary.json").read_text()
        )
        row = next(
            line for line in text.splitlines() if line.startswith(f"| experiment={experiment} |")
        )
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:5] == [experiment, model, optimizer, "2"]
        assert cells[7] == f"{summary['test_loss']:.4f}"
        lo, hi = summary["test_acc_ci95"]
        assert cells[8] == f"{summary['test_acc']:.4f} ({lo:.4f}–{hi:.4f})"
        assert cells[9:11] == [f"{summary['generalization_gap']:.4f}",
                               f"{summary['eval_mode_gap']:.4f}"]  # fmt: skip
        assert cells[11] == summary["verdict"]
        assert f"experiment={experiment}" in result.stdout  # the printed table
        for reason in summary["verdict_reasons"]:
            assert f"- {reason}" in text
        for name in ("learning_curves", "confusion_matrix", "misclassified"):
            assert f"experiment={experiment}/{name}.png" in picture_links(report)
    links = assert_links_resolve(report)
    assert links[0] == "comparison.png"
    assert_png(study_sweep / "comparison.png")


def test_report_on_run_folders_from_two_places(study_sweep, tmp_path, capsys):
    """Run folders copied elsewhere: the report goes into the first; links still resolve."""
    first, second = tmp_path / "a" / "run one", tmp_path / "b" / "run-two"
    shutil.copytree(study_sweep / "experiment=good", first)
    shutil.copytree(study_sweep / "experiment=bad", second)
    assert main([str(first), str(second)]) == 0
    report = first / "report.md"
    assert capsys.readouterr().out.startswith(f"{report}\n")
    links = assert_links_resolve(report)
    assert "../../b/run-two/learning_curves.png" in links
    assert "learning_curves.png" in links
    assert "| run one |" in report.read_text() and "| run-two |" in report.read_text()


@pytest.mark.slow
def test_report_diagnoses_old_runs(study_sweep, tmp_path, capsys):
    """A run written before the diagnosis existed: the report computes its verdict."""
    old = tmp_path / "old"
    shutil.copytree(study_sweep / "experiment=good", old)
    summary = json.loads((old / "summary.json").read_text())
    verdict = summary["verdict"]
    for key in ("verdict", "verdict_reasons", "generalization_gap", "val_acc_ci95",
                "test_acc_ci95", "per_class", "pictures"):  # fmt: skip
        del summary[key]
    (old / "summary.json").write_text(json.dumps(summary))
    for png in old.glob("*.png"):
        png.unlink()
    assert main([str(old)]) == 0
    text = (old / "report.md").read_text()
    assert f"**Verdict: {verdict}**" in text and "(This run wrote no pictures.)" in text
    assert_links_resolve(old / "report.md")  # comparison.png, drawn from the history


def test_folder_without_runs_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'empty'}: no runs found" in err
    assert not (tmp_path / "empty" / "report.md").exists()
    result = report_cli(tmp_path / "missing")
    assert result.returncode == 2 and f"{tmp_path / 'missing'}: no such folder" in result.stderr


def test_damaged_summary_is_named(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{not json")
    assert main([str(tmp_path)]) == 2
    assert f"{run / 'summary.json'}: not a readable summary" in capsys.readouterr().err
    (run / "summary.json").write_text(json.dumps({"history": []}))
    assert main([str(tmp_path)]) == 2
    assert "missing n_val, test_loss, test_acc" in capsys.readouterr().err
