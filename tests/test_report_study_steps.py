"""The report on a sweep of the transfer study (`experiment=finetune seed=1,2,3`): each seed's run
folder holds its steps' own runs (`pretrain/`, `scratch/`, no `.hydra/` of their own). Each step
forms its own group, the study's gain is described across seeds, and accuracies on different
classes are not compared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from .test_report_seeds import history, report

SOURCE = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
TARGET = ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FINETUNED, SCRATCH, PRETRAIN = [0.932, 0.933, 0.912], [0.893, 0.890, 0.874], [0.945, 0.945, 0.950]


def summary(name: str, seed: int, acc: float, classes: list[str], **extra: float) -> str:
    per_class = {c: {"precision": acc, "recall": acc, "f1": acc} for c in classes}
    return json.dumps({"status": "completed", "experiment": "finetune", "name": name,
                       "seed": seed, "history": history(acc), "n_val": 300, "n_test": 5000,
                       "test_acc": acc, "test_loss": 1 - acc, "generalization_gap": 0.01,
                       "verdict": "good fit", "verdict_reasons": [], "per_class": per_class,
                       **extra})  # fmt: skip


def write_finetune_sweep(sweep: Path) -> None:
    for job, seed in enumerate((1, 2, 3)):
        run = sweep / f"seed={seed}"
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- experiment=finetune\n- seed={seed}\n")
        (run / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {job}\n")
        fine, scratch = FINETUNED[job], SCRATCH[job]
        (run / "summary.json").write_text(
            summary(
                "finetune",
                seed,
                fine,
                TARGET,
                scratch_test_acc=scratch,
                transfer_gain=round(fine - scratch, 4),
            )  # fmt: skip
        )
        for step, acc, classes in (("pretrain", PRETRAIN[job], SOURCE),
                                   ("finetune_scratch", scratch, TARGET)):  # fmt: skip
            folder = run / ("pretrain" if step == "pretrain" else "scratch")
            folder.mkdir()
            (folder / "summary.json").write_text(summary(step, seed, acc, classes))


def test_each_step_is_a_group_and_the_gain_is_described_across_seeds(tmp_path):
    sweep = tmp_path / "sweep"
    write_finetune_sweep(sweep)
    result = report(sweep)
    groups = {g["name"]: g for g in result["groups"]}
    assert list(groups) == ["experiment=finetune", "name=pretrain", "name=finetune_scratch"]
    for name, accs in (("experiment=finetune", FINETUNED), ("name=pretrain", PRETRAIN),
                       ("name=finetune_scratch", SCRATCH)):  # fmt: skip
        assert groups[name]["runs"] == 3 and groups[name]["seeds"] == [1, 2, 3]
        assert groups[name]["test_acc"]["mean"] == pytest.approx(np.mean(accs))
    assert result["metrics"][-2:] == ["scratch_test_acc", "transfer_gain"]
    gains = np.subtract(FINETUNED, SCRATCH).round(4)
    gain = groups["experiment=finetune"]["transfer_gain"]
    assert gain["mean"] == pytest.approx(np.mean(gains))
    assert gain["std"] == pytest.approx(np.std(gains, ddof=1))
    assert groups["name=pretrain"]["transfer_gain"]["mean"] is None

    by_pair = {(c["a"], c["b"]): c for c in result["comparisons"]}
    fine_vs_scratch = by_pair[("experiment=finetune", "name=finetune_scratch")]
    paired = stats.ttest_rel(FINETUNED, SCRATCH)
    assert fine_vs_scratch["test"] == "paired t"
    assert fine_vs_scratch["p_value"] == pytest.approx(paired.pvalue)
    for pair in (
        ("experiment=finetune", "name=pretrain"),
        ("name=pretrain", "name=finetune_scratch"),
    ):
        assert by_pair[pair]["other_classes"] and by_pair[pair]["test_acc_diff"] is None
        assert (
            "not compared (their runs were tested on different classes)"
            in by_pair[pair]["sentence"]
        )

    table = (sweep / "report.md").read_text()
    assert "| from scratch | transfer gain | verdicts |" in table
    assert f"| {gain['mean']:.4f} ± {gain['std']:.4f} (" in table


def test_runs_without_the_study_figures_keep_the_usual_columns(tmp_path):
    sweep = tmp_path / "sweep"
    write_finetune_sweep(sweep)
    for path in sweep.glob("seed=*/summary.json"):
        figures = json.loads(path.read_text())
        del figures["scratch_test_acc"], figures["transfer_gain"]
        path.write_text(json.dumps(figures))
    result = report(sweep)
    assert result["metrics"] == ["test_acc", "test_loss", "generalization_gap"]
    assert "| test accuracy | test loss | gap | verdicts |" in (sweep / "report.md").read_text()
