"""The report across seeds, on run folders the tests write: groups, intervals, tests, failures.

Each folder is what a sweep job leaves: summary.json and `.hydra/overrides.yaml` (and
`.hydra/hydra.yaml` with the job number). The statistics are checked against scipy directly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from goodfit.records.figures import _band
from goodfit.records.report import main

from .test_figures import assert_png

GOOD = [0.881, 0.874, 0.879, 0.886, 0.870]
BAD = [0.852, 0.861, 0.847, 0.858, 0.850]


def history(acc: float, epochs: int = 3) -> list[dict[str, float]]:
    return [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "train_acc": acc - 0.01 / e,
             "val_acc": acc - 0.02 / e} for e in range(1, epochs + 1)]  # fmt: skip


def write_run(
    sweep: Path, overrides: list[str], *, test_acc: float | None = None, job: int | None = None,
    loss: float | None = None, gap: float = 0.01, verdict: str = "good fit",
    status: str = "completed", seed: int | None = None,
) -> Path:  # fmt: skip
    """A job folder named after its overrides, as goodfit's sweeps name them. status "failed"
    writes a failed run's summary.json, "missing" none at all."""
    folder = sweep / ",".join(o for o in overrides if not o.startswith("datamodule."))
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if job is not None:
        (folder / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {job}\n")
    seed = seed if seed is not None else int(next(o for o in overrides if "seed=" in o)[5:])
    if status == "failed":
        summary = {"status": "failed", "reason": "DivergedError: loss is nan at epoch 2",
                   "seed": seed, "epochs_run": 1, "test_loss": None, "test_acc": None,
                   "history": history(0.5, 1)}  # fmt: skip
    elif status == "completed":
        summary = {"status": "completed", "seed": seed, "experiment": overrides[0].split("=")[1],
                   "history": history(test_acc), "n_val": 600, "n_test": 10000,
                   "test_acc": test_acc, "test_loss": 1 - test_acc if loss is None else loss,
                   "generalization_gap": gap, "verdict": verdict,
                   "verdict_reasons": []}  # fmt: skip
    if status != "missing":
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def write_study(sweep: Path, good=GOOD, bad=BAD, good_seeds=None, bad_seeds=None) -> Path:
    """experiment=good,bad with one run per seed, jobs numbered as Hydra numbers them."""
    job = 0
    for name, accs, seeds in (("good", good, good_seeds), ("bad", bad, bad_seeds)):
        for acc, seed in zip(accs, seeds or range(1, len(accs) + 1), strict=True):
            write_run(sweep, [f"experiment={name}", f"seed={seed}"], test_acc=acc, job=job)
            job += 1
    return sweep


def report(sweep: Path) -> dict:
    assert main([str(sweep)]) == 0
    return json.loads((sweep / "report.json").read_text())


def ci(values: list[float]) -> list[float]:
    """The 95% Student-t interval of the mean, computed here from scipy's t quantile."""
    n, mean = len(values), float(np.mean(values))
    half = stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n)
    return [mean - half, mean + half]


def test_groups_means_spreads_and_intervals_match_scipy(tmp_path):
    sweep = write_study(tmp_path / "sweep")
    result = report(sweep)
    assert [g["name"] for g in result["groups"]] == ["experiment=good", "experiment=bad"]
    for group, accs in zip(result["groups"], (GOOD, BAD), strict=True):
        assert group["runs"] == 5 and group["seeds"] == [1, 2, 3, 4, 5]
        acc = group["test_acc"]
        assert acc["mean"] == pytest.approx(np.mean(accs), abs=1e-12)
        assert acc["std"] == pytest.approx(np.std(accs, ddof=1), abs=1e-12)
        assert acc["ci95"] == pytest.approx(ci(accs), abs=1e-12)
        assert group["test_loss"]["ci95"] == pytest.approx(ci([1 - a for a in accs]), abs=1e-12)
        assert group["generalization_gap"] == {"mean": 0.01, "std": 0.0, "ci95": [0.01, 0.01]}
        assert group["verdicts"] == {"good fit": 5} and group["failed"] == []
    text = (sweep / "report.md").read_text()
    lo, hi = ci(GOOD)
    row = f"| experiment=good | 5 | 1, 2, 3, 4, 5 | {np.mean(GOOD):.4f} ± "
    assert row in text and f"({lo:.4f} to {hi:.4f})" in text and "good fit 5/5" in text
    for picture in ("comparison.png", "test_accuracies.png"):
        assert f"]({picture})" in text
        assert_png(sweep / picture, min_size=(400, 300))


def test_well_separated_groups_give_a_small_p_and_a_plain_sentence(tmp_path, capsys):
    result = report(write_study(tmp_path / "sweep"))
    (comparison,) = result["comparisons"]
    paired = stats.ttest_rel(GOOD, BAD)
    diff = np.mean(GOOD) - np.mean(BAD)
    assert comparison["a"] == "experiment=good" and comparison["b"] == "experiment=bad"
    assert comparison["test"] == "paired t"
    assert comparison["test_acc_diff"] == pytest.approx(diff, abs=1e-12)
    assert comparison["p_value"] == pytest.approx(paired.pvalue, rel=1e-9)
    assert comparison["p_value"] < 0.01
    assert comparison["ci95"] == pytest.approx(list(paired.confidence_interval(0.95)), abs=1e-12)
    assert comparison["sentence"].startswith(f"good − bad = +{diff:.4f} (")
    assert comparison["sentence"].endswith("(paired t, 5 seeds): better beyond seed noise")
    out = capsys.readouterr().out
    assert comparison["sentence"] in out and "across seeds" in out
    assert f"- {comparison['sentence']}" in (tmp_path / "sweep" / "report.md").read_text()


def test_identical_groups_give_p_one(tmp_path):
    paired = report(write_study(tmp_path / "paired", bad=GOOD))["comparisons"][0]
    assert paired["test"] == "paired t" and paired["test_acc_diff"] == 0.0
    assert paired["p_value"] == pytest.approx(1.0) and paired["ci95"] == [0.0, 0.0]
    assert "not distinguishable from seed noise with 5 seeds" in paired["sentence"]
    welch = report(write_study(tmp_path / "welch", bad=GOOD, bad_seeds=range(6, 11)))
    comparison = welch["comparisons"][0]
    assert comparison["test"] == "Welch t" and comparison["p_value"] == pytest.approx(1.0)
    assert comparison["sentence"].endswith("not distinguishable from seed noise with 5 seeds each")


def test_paired_exactly_when_the_seeds_match(tmp_path):
    # The same seeds, written in another order: pairs are matched by seed, not by position.
    bad_seeds = [5, 3, 1, 4, 2]
    same = report(write_study(tmp_path / "same", bad_seeds=bad_seeds))["comparisons"][0]
    by_seed = [BAD[bad_seeds.index(s)] for s in range(1, 6)]
    assert same["test"] == "paired t"
    assert same["p_value"] == pytest.approx(stats.ttest_rel(GOOD, by_seed).pvalue, rel=1e-9)
    assert same["p_value"] != pytest.approx(stats.ttest_rel(GOOD, BAD).pvalue, rel=1e-3)
    other = report(write_study(tmp_path / "other", bad_seeds=[1, 2, 3, 4, 6]))["comparisons"][0]
    welch = stats.ttest_ind(GOOD, BAD, equal_var=False)
    assert other["test"] == "Welch t"
    assert other["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert other["ci95"] == pytest.approx(list(welch.confidence_interval(0.95)), abs=1e-12)
    fewer = report(write_study(tmp_path / "fewer", bad=BAD[:4]))["comparisons"][0]
    assert fewer["test"] == "Welch t" and "(Welch t, 5 and 4 seeds)" in fewer["sentence"]


def test_a_failed_seed_is_reported_and_left_out(tmp_path):
    sweep = write_study(tmp_path / "sweep", good=GOOD[:4], good_seeds=[1, 2, 4, 5])
    write_run(sweep, ["experiment=good", "seed=3"], status="failed", job=2)
    write_run(sweep, ["experiment=bad", "seed=6"], status="missing", job=9)
    result = report(sweep)
    good, bad = result["groups"]
    assert good["runs"] == 4 and good["seeds"] == [1, 2, 4, 5]
    assert good["test_acc"]["ci95"] == pytest.approx(ci(GOOD[:4]), abs=1e-12)
    assert good["failed"] == [{"seed": 3, "folder": "experiment=good,seed=3",
                               "reason": "DivergedError: loss is nan at epoch 2"}]  # fmt: skip
    assert bad["runs"] == 5 and bad["failed"][0]["seed"] == 6
    assert "no summary.json" in bad["failed"][0]["reason"]
    assert result["comparisons"][0]["test"] == "Welch t"  # seeds 1,2,4,5 against 1 to 5
    text = (sweep / "report.md").read_text()
    assert ("- experiment=good: seed 3 (`experiment=good,seed=3`) failed (DivergedError: loss "
            "is nan at epoch 2); it is left out of the statistics.") in text  # fmt: skip
    assert "- experiment=bad: seed 6 (`experiment=bad,seed=6`) failed (no summary.json" in text
    assert "| failed: DivergedError: loss is nan at epoch 2 |" in text  # its row in the runs
    assert "**Failed:** DivergedError" in text


def test_a_run_refused_before_its_summary_gives_the_logged_reason(tmp_path, capsys):
    """A job refused before any work writes no summary.json; its train.log holds why, and the
    report says so (not "no summary.json"). The run labels wrap whole in the console table."""
    sweep = write_study(tmp_path / "sweep", good=GOOD[:2], bad=BAD[:2])
    refused = write_run(sweep, ["experiment=good", "seed=3", "optimizer.lr=-1"], status="missing")
    (refused / "train.log").write_text(
        "[2026-01-01 10:00:00,000][goodfit.tasks.train][INFO] - Run folder x\n"
        "[2026-01-01 10:00:00,100][goodfit][ERROR] - Invalid configuration:\n"
        "  optimizer.lr=-1 is not allowed: must be a finite number > 0\n"
    )  # what a refused job's log holds
    capsys.readouterr()
    failed = [run for group in report(sweep)["groups"] for run in group["failed"]]
    reason = "Invalid configuration: optimizer.lr=-1 is not allowed: must be a finite number > 0"
    assert failed == [
        {"seed": 3, "folder": "experiment=good,seed=3,optimizer.lr=-1", "reason": reason}
    ]
    labels, row = [], None
    for line in capsys.readouterr().out.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) > 1 and cells[1]:  # a row's first line: its experiment column is set
            labels.append(row := [cells[0]])
        elif len(cells) > 1 and row is not None:
            row.append(cells[0])
    assert "experiment=good,seed=3,optimizer.lr=-1" in ["".join(label) for label in labels]


def test_logged_error_is_the_last_error_record(tmp_path):
    from goodfit.records.runs import logged_error

    log = tmp_path / "train.log"
    assert logged_error(log) is None  # no log at all
    log.write_text("[t][a][ERROR] - first\n[t][a][INFO] - later\n[t][b][ERROR] - second,\n"
                   "  on two lines\n\n[t][a][INFO] - after it\n  an info's own line\n")  # fmt: skip
    assert logged_error(log) == "second, on two lines"
    log.write_text("[t][a][INFO] - nothing went wrong\n")
    assert logged_error(log) is None


def test_one_run_per_group_still_reports_without_intervals(tmp_path, capsys):
    sweep = write_study(tmp_path / "sweep", good=GOOD[:1], bad=BAD[:1])  # `seed=1`, one seed
    result = report(sweep)
    for group in result["groups"]:
        assert group["runs"] == 1 and group["test_acc"]["std"] is None
        assert group["test_acc"]["ci95"] is None and group["test_acc"]["mean"] is not None
    (comparison,) = result["comparisons"]
    assert comparison["test_acc_diff"] == pytest.approx(GOOD[0] - BAD[0])
    assert comparison["p_value"] is None and comparison["ci95"] is None
    assert comparison["test"] is None
    text = (sweep / "report.md").read_text()
    assert "## Across seeds" in text
    assert "- experiment=good: one completed run, so no standard deviation and no interval" in text
    assert "no interval or test (they need two runs or more in each group)" in text
    assert_png(sweep / "test_accuracies.png")


def test_groups_ignore_shared_overrides_and_fall_back_to_the_summary(tmp_path):
    sweep = tmp_path / "sweep"
    for k, seed in enumerate((1, 2)):
        for name, acc in (("good", GOOD[k]), ("bad", BAD[k])):
            write_run(sweep, [f"experiment={name}", f"seed={seed}", "datamodule.val_split=0.1"],
                      test_acc=acc)  # fmt: skip
    names = [g["name"] for g in report(sweep)["groups"]]
    assert sorted(names) == ["experiment=bad", "experiment=good"]  # the shared key is dropped
    for overrides in sweep.rglob("overrides.yaml"):  # runs without their .hydra record
        overrides.unlink()
    groups = report(sweep)["groups"]
    assert sorted(g["name"] for g in groups) == ["experiment=bad", "experiment=good"]
    assert all(g["runs"] == 2 and g["seeds"] == [1, 2] for g in groups)


def test_runs_without_seeds_keep_the_single_run_report(tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep, ["experiment=good"], test_acc=0.87, seed=42)
    write_run(sweep, ["experiment=bad"], test_acc=0.85, seed=42)
    result = report(sweep)
    text = (sweep / "report.md").read_text()
    assert "## Across seeds" not in text and not (sweep / "test_accuracies.png").exists()
    assert "| experiment=good | good |" in text
    assert [g["runs"] for g in result["groups"]] == [1, 1]  # report.json is still written


def test_bands_are_one_std_from_three_runs_and_min_max_below():
    runs = [history(a) for a in GOOD[:3]]
    epochs, mean, low, high = _band(runs, "val_acc")
    values = [[h[0]["val_acc"] for h in runs]]
    assert epochs == [1, 2, 3] and mean[0] == pytest.approx(np.mean(values))
    assert high[0] - mean[0] == pytest.approx(np.std(values, ddof=1))
    _, _, low, high = _band(runs[:2], "val_acc")
    assert [low[0], high[0]] == [min(values[0][:2]), max(values[0][:2])]


def test_group_names_stay_distinct(tmp_path):
    """A group whose settings are all shared keeps its full name; no overrides is named so."""
    sweep = tmp_path / "sweep"
    for seed in (1, 2):
        write_run(sweep, ["experiment=good", f"seed={seed}"], test_acc=GOOD[seed])
        write_run(sweep, ["experiment=good", f"seed={seed}", "trainer.max_epochs=5"],
                  test_acc=BAD[seed])  # fmt: skip
        write_run(tmp_path / "plain", [f"seed={seed}"], test_acc=GOOD[seed])
    names = sorted(g["name"] for g in report(sweep)["groups"])
    assert names == ["experiment=good", "trainer.max_epochs=5"]
    assert [g["name"] for g in report(tmp_path / "plain")["groups"]] == ["(no overrides)"]
