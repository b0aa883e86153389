"""The benchmark runs end to end (its figures are read, never asserted as times)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import compare as bench

from .conftest import ROOT

pytestmark = pytest.mark.realdata


def test_epoch_time_leaves_out_warm_up():
    assert bench.epoch_time({"epoch_seconds": [9.0, 2.0, 3.0, 4.0]}) == 3.0
    assert bench.epoch_time({"epoch_seconds": [5.0]}) == 5.0


@pytest.mark.slow
def test_bench_compares_template_and_loop(real_data_dir, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--epochs", "2", "--repeat", "1",
         "--batch-sizes", "512", "--experiments", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Machine:" in result.stdout and "plain PyTorch loop" in result.stdout
    data = json.loads(out.read_text())
    runs = {row["run"]: row for row in data["per_epoch"]}
    paths = ["goodfit perf=default", "goodfit perf=fast"]
    assert set(runs) == {bench.LOOP, bench.BARE, *paths}
    loop, bare = runs[bench.LOOP], runs[bench.BARE]
    assert loop["paired"] == 1.0 and bare["vs Lightning"] == 1.0
    for path in paths:  # each paired ratio over Lightning alone's, from the same run
        ratio = runs[path]["paired"] / bare["paired"]
        assert runs[path]["vs Lightning"] == pytest.approx(ratio, abs=0.002)
    for template in (runs[side] for side in (bench.BARE, *paths)):
        assert template["ratio"] == pytest.approx(template["s/epoch"] / loop["s/epoch"], rel=0.02)
        assert template["samples/s"] > 0 and template["peak MiB"] > 0
        assert template["startup s"] > 0
        cpu_ratio = template["CPU s/epoch"] / loop["CPU s/epoch"]
        assert template["CPU ratio"] == pytest.approx(cpu_ratio, rel=0.02)
        assert template["paired"] > 0 and template["paired CPU"] > 0
        assert "extra CPU µs/step" in template
    assert data["machine"]["cores"] >= 1 and data["machine"]["torch"]


@pytest.mark.slow
def test_bench_overrides_run_the_paired_comparison_only(real_data_dir, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--epochs", "2", "--batch-sizes", "512",
         "--experiments", "--out", str(out), "--overrides", "model.hidden=[8]",
         "perf=fast"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (row,) = json.loads(out.read_text())["per_epoch"]
    assert row["run"] == "goodfit model.hidden=[8] perf=fast" and row["batch"] == 512
    assert row["paired"] > 0 and row["paired CPU"] > 0
    assert isinstance(row["extra CPU µs/step"], int)


def test_lightning_alone_trains_beside_the_paired_loop(real_data_dir, tmp_path):
    """bench/bare.py: a plain LightningModule and Trainer, the loop paired with it."""
    from bench.bare import main as bare_main

    out, loop_file = tmp_path / "bare.json", tmp_path / "loop.json"
    bare_main(["--batch-size", "4096", "--epochs", "2", "--out", str(out),
               "--paired-out", str(loop_file), "--chunk-steps", "3"])  # fmt: skip
    bare = json.loads(out.read_text())
    assert len(bare["epoch_seconds"]) == len(bare["epoch_cpu_seconds"]) == 2
    assert bare["n_train"] == 56_400 and bare["startup_seconds"] > 0  # 6 % held out
    loop = json.loads(loop_file.read_text())
    assert len(loop) == 2 and all(0 < epoch[2] <= epoch[0] for epoch in loop)


def test_pooling_leaves_out_each_runs_warm_up():
    runs = [
        {
            "epoch_seconds": [9.0, 2.0, 2.2],
            "epoch_cpu_seconds": [9.5, 4.0, 4.4],
            "startup_seconds": 3.0,
            "peak_memory_mb": 10,
            "n_train": 5,
        },
        {
            "epoch_seconds": [8.0, 3.0, 2.1],
            "epoch_cpu_seconds": [8.5, 6.0, 4.2],
            "startup_seconds": 2.5,
            "peak_memory_mb": 12,
            "n_train": 5,
        },
    ]
    pooled = bench.pool(runs)
    assert bench.epoch_time(pooled) == pytest.approx(2.15)  # median of 2.0, 2.2, 3.0, 2.1
    assert bench.epoch_time(pooled, "epoch_cpu_seconds") == pytest.approx(4.3)
    assert pooled["startup_seconds"] == 2.5 and pooled["peak_memory_mb"] == 12


@pytest.mark.parametrize(
    ("argv", "experiments"),
    [
        ([], ["good", "good_fast"]),
        (["--experiments"], []),
        (["--overrides", "perf=fast"], []),  # one comparison, as its help says
        (["--overrides", "perf=fast", "--experiments", "good"], ["good"]),
    ],
)
def test_whole_experiments_run_unless_overrides_ask_for_one_comparison(argv, experiments):
    assert bench.parse_args(argv).experiments == experiments


@pytest.mark.parametrize("argv", [["--repeat", "0"], ["--epochs", "0"], ["--batch-sizes", "0"]])
def test_bench_refuses_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(argv)
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_32_true_variant_is_paired_with_the_loop(device, monkeypatch, tmp_path):
    """`--compile`'s variant gets a paired ratio like the two paths; bf16-mixed (GPU only) is
    not paired with the 32-true loop. The measurements are stand-ins: this checks the wiring."""
    epochs = {"epoch_seconds": [3.0, 2.0], "epoch_cpu_seconds": [6.0, 4.0],
              "startup_seconds": 1.0, "peak_memory_mb": 1, "n_train": 64}  # fmt: skip
    paired: list = []
    monkeypatch.setattr(bench, "measure_loop", lambda *a: epochs)
    monkeypatch.setattr(bench, "measure_bare", lambda *a: epochs)
    monkeypatch.setattr(bench, "measure_template", lambda *a: epochs)

    def measure_paired(overrides, *args):
        paired.append(overrides)
        return {"paired": 1.5 if overrides is None else 1.2}

    monkeypatch.setattr(bench, "measure_paired", measure_paired)
    args = bench.parse_args(["--compile", "--repeat", "1", "--epochs", "2"])
    rows = {row["run"]: row for row in bench.batch_rows(args, ["base"], 32, device, tmp_path)}
    compiled = rows["goodfit, model.compile=true"]
    assert (
        compiled["vs Lightning"] == pytest.approx(0.8) and ["base", "model.compile=true"] in paired
    )
    assert len(paired) == 4  # Lightning alone, perf=default, perf=fast, model.compile=true
    if device == "cuda":
        assert "paired" not in rows["goodfit, bf16-mixed"]
