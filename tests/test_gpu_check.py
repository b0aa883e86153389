"""`make gpu-check`: dry on the CPU end to end, its time boxes, its installer, its wheel script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from bench import gpu_check, gpu_env, gpu_plan
from bench.gpu_report import Report, render
from bench.runs import run_command

from .conftest import ROOT


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK")}
    return {**env, **extra}


@pytest.mark.slow
def test_dry_run_writes_both_files(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        ["make", "--no-print-directory", "gpu-check", f"GPU_PYTHON={sys.executable}"],
        cwd=ROOT, env=_env(GPU_CHECK_DRY="1", GPU_CHECK_OUT=str(out)),
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for section in ("tests:", "mlp:", "experiments:", "convnets:", "done:"):
        assert section in result.stdout, f"no progress line for {section}"
    data = json.loads((out / "gpu_check.json").read_text())
    shutil.rmtree(Path(data["setup"]["runs"]).parent)  # the runs' own folders
    assert data["dry"] is True and data["complete"] is True and data["in_progress"] is None
    assert data["machine"]["torch"] == torch.__version__ and data["machine"]["lightning"]
    assert data["setup"]["data"].startswith("SYNTHETIC")
    sections = data["sections"]
    assert {s["status"] for s in sections.values()} == {"done"}
    (tests,) = sections["tests"]["rows"]
    assert tests["status"] == "ok" and tests["passed"] + tests["skipped"] == 3
    (mlp,) = sections["mlp"]["rows"]
    assert (mlp["batch"], mlp["precision"], mlp["path"]) == (64, "bf16-mixed", "perf=fast")
    assert mlp["status"] == "ok" and mlp["epochs"] == mlp["planned"] == 1
    assert mlp["s/epoch"] > 0 and mlp["loop s/epoch"] > 0 and mlp["ratio"] > 0
    assert mlp["ratio"] == pytest.approx(mlp["s/epoch"] / mlp["loop s/epoch"], rel=0.01)
    assert mlp["samples/s"] == round(1128 / mlp["s/epoch"])  # 1200 less 6% for validation
    (experiment,) = sections["experiments"]["rows"]
    assert experiment["experiment"] == "good_fast" and experiment["status"] == "ok"
    assert experiment["wall s"] >= experiment["fit s"] > 0
    assert 0.0 <= experiment["test acc"] <= 1.0
    (convnet,) = sections["convnets"]["rows"]
    assert (convnet["experiment"], convnet["compile"], convnet["epochs"]) == ("cnn", True, 1)
    assert convnet["first epoch s"] > 0 and convnet["cut_short"] is False
    md = (out / "gpu_check.md").read_text()
    assert "**Dry run on the CPU**" in md and "Incomplete" not in md
    for header in ("| batch | precision | path |", "| experiment | status |",
                   "| experiment | compile |", "| status | passed |"):  # fmt: skip
        assert header in md
    assert "| 64 | bf16-mixed | perf=fast | ok | 1 |" in md
    assert "| cnn | True | ok | 1 | 1 |" in md


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_without_cuda_it_says_so_and_does_nothing(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check"], cwd=ROOT, env=_env(GPU_CHECK_OUT=str(out)),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no CUDA device" in result.stdout and not out.exists()


@pytest.mark.parametrize(
    ("environ", "key"),
    [({"GPU_CHECK_DRY": "yes"}, "GPU_CHECK_DRY=yes"), ({"GPU_CHECK_BUDGET": "abc"},
     "GPU_CHECK_BUDGET=abc"), ({"GPU_CHECK_BUDGET": "0"}, "GPU_CHECK_BUDGET=0")],
)  # fmt: skip
def test_bad_settings_are_refused(environ, key):
    with pytest.raises(SystemExit, match=key):
        gpu_plan.settings(environ)


def test_settings_defaults():
    assert gpu_plan.settings({}) == (False, 450.0)
    assert gpu_plan.settings({"GPU_CHECK_DRY": "1", "GPU_CHECK_BUDGET": "60"}) == (True, 60.0)


def test_sections_keep_their_share_and_pass_on_what_they_leave():
    start = time.time()
    clock = gpu_plan.Clock(100.0, start)
    assert clock.section_end("convnets") == pytest.approx(start + 100)
    assert clock.section_end("tests") == pytest.approx(start + 8)  # 92 s kept for the rest
    assert clock.section_end("mlp") == pytest.approx(start + 42)
    # A run gets its weight's share of what is left of its section, at least `at_least`
    # seconds, never more than the section has.
    share = clock.run_end("mlp", 1.0, 4.0) - time.time()
    assert share == pytest.approx((start + 42 - time.time()) / 4, abs=0.1)
    assert clock.run_end("mlp", 1.0, 4.0, at_least=20) - time.time() == pytest.approx(20, abs=0.1)
    assert clock.run_end("mlp", 1.0, 4.0, at_least=60) == pytest.approx(start + 42)


def _check(tmp_path, budget: float) -> gpu_check.Check:
    plan = gpu_plan.Plan.for_mode(True, budget)
    plan.min_run = 10.0
    report = Report(tmp_path / "out", True, budget)
    return gpu_check.Check(plan, gpu_plan.Clock(budget, time.time()), report, tmp_path, [])


def _no_figures(row: dict, run: gpu_check.Run) -> str:
    raise AssertionError("a run that did not run has no figures")


def test_a_run_without_time_left_is_skipped_and_recorded(tmp_path):
    check = _check(tmp_path, budget=10.0)  # its section ends in 6.6 s, under min_run
    row = {"experiment": "good"}
    check.train("experiments", row, ["experiment=good"], (1.0, 1.0), _no_figures)
    saved = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    (row,) = saved["sections"]["experiments"]["rows"]
    assert row == {"experiment": "good", "status": "skipped (time box)"}
    assert (
        "experiments: good: skipped (time box)" in (tmp_path / "out" / "gpu_check.md").read_text()
    )


def test_a_failed_run_is_recorded_with_its_reason(tmp_path):
    check = _check(tmp_path, budget=3600.0)
    row = {"experiment": "nope"}
    check.train("experiments", row, ["experiment=nope"], (1.0, 1.0), _no_figures)
    assert row["status"] == "failed" and "nope" in row["error"]
    md = render(check.report.data)
    assert "Incomplete" in md and "- experiments: nope: failed (" in md
    assert "HYDRA_FULL_ERROR" not in md.split("## Not run")[1], "the hint is no reason"


def test_a_command_past_its_time_is_ended_with_what_it_started(tmp_path):
    pid_file = tmp_path / "pid"
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match="ran past 2 s"):
        run_command(["bash", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], timeout=2)
    assert time.perf_counter() - started < 30
    stat = Path(f"/proc/{pid_file.read_text().strip()}/stat")
    time.sleep(0.5)
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_deadline_ends_training_at_an_epoch_end(tmp_path):
    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    from bench.deadline import StopBeforeDeadline

    def fit(at: float) -> tuple[int, dict]:
        out = tmp_path / f"stop_{at}.json"
        trainer = L.Trainer(max_epochs=4, limit_train_batches=2, limit_val_batches=1,
                            callbacks=[StopBeforeDeadline(at, str(out), reserve=0.0)],
                            accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        trainer.fit(BoringModel())
        return trainer.current_epoch, json.loads(out.read_text())

    assert fit(time.time()) == (1, {"planned": 4, "stopped_after": 1})
    assert fit(time.time() + 600) == (4, {"planned": 4, "stopped_after": None})


def _wheel(folder: Path, dist: str, module: str) -> Path:
    """A minimal real wheel holding one module."""
    name = f"{dist.replace('-', '_')}-1.0"
    path = folder / f"{name}-py3-none-any.whl"
    files = {f"{module}.py": "VALUE = 42\n",
             f"{name}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n",
             f"{name}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                        "Root-Is-Purelib: true\nTag: py3-none-any\n"}  # fmt: skip
    record = f"{name}.dist-info/RECORD"
    files[record] = "".join(f"{f},,\n" for f in [*files, record])
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return path


def test_wheels_of_what_is_missing_install_without_an_index(tmp_path, monkeypatch):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    _wheel(wheels, "goodfit-probe-dist", "goodfit_probe_mod")
    (wheels / "pytest-8.0.0-py3-none-any.whl").write_bytes(b"")  # present: left alone
    names, lacking = gpu_env.to_install(wheels)
    assert names == ["goodfit-probe-dist"] and lacking == []
    monkeypatch.setenv("GPU_WHEELS", str(wheels))
    monkeypatch.setenv("GPU_SITE", str(target))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert gpu_env.prepare() == ["goodfit-probe-dist"]
    assert str(target) in os.environ["PYTHONPATH"].split(os.pathsep)
    probe = subprocess.run([sys.executable, "-c", "import goodfit_probe_mod as m; print(m.VALUE)"],
                           capture_output=True, text=True, env=dict(os.environ))  # fmt: skip
    assert probe.stdout.strip() == "42", probe.stderr
    assert gpu_env.prepare() == [], "installed once, found the next time"


def test_a_requirement_nothing_provides_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("GPU_WHEELS", str(tmp_path / "no-wheels"))
    monkeypatch.setenv("GPU_SITE", str(tmp_path / "site"))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(gpu_env, "requirements", lambda: ["goodfit-probe-absent>=1", "pytest>=1"])
    with pytest.raises(SystemExit, match=r"goodfit-probe-absent>=1\. .*gpu_wheels\.sh"):
        gpu_env.prepare()


def test_requirements_are_checked_with_their_versions():
    assert not gpu_env.unmet("pytest>=1")
    assert gpu_env.unmet("pytest>=999")
    assert gpu_env.unmet("goodfit-probe-absent")
    assert {gpu_env._requirement_name(r) for r in gpu_env.requirements()} >= {
        "hydra-core", "omegaconf", "tensorboard", "rich", "matplotlib", "pytest"}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--only", "nope"], "--only nope: not one of hydra-core"),
     (["--only", "torch"], "--only torch: not one of"),
     (["--python", "3"], "--python 3: expected a version like 3.12"),
     (["--bogus"], "unknown argument --bogus")],
)  # fmt: skip
def test_wheel_script_refuses_bad_arguments(args, message, tmp_path):
    dest = tmp_path / "wheels"
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_wheels.sh"), *args,
                             "--dest", str(dest)], env=_env(PYTHON=sys.executable),
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0 and message in result.stderr
    assert not dest.exists(), "nothing fetched"


def test_plain_loop_follows_the_precision():
    from bench.loop import autocast, loop_epoch

    with autocast(torch.device("cpu"), "bf16-mixed"):
        assert torch.nn.Linear(4, 2)(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "32-true"):
        assert torch.nn.Linear(4, 2)(torch.ones(1, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="precision=16-mixed"):
        autocast(torch.device("cpu"), "16-mixed")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    data = (torch.rand(20, 4, 4), torch.arange(20) % 3, torch.rand(5, 4, 4), torch.arange(5) % 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = net[1].weight.detach().clone()
    loop_epoch(net, opt, data, 8, torch.Generator().manual_seed(0), "bf16-mixed")
    assert not torch.equal(before, net[1].weight) and net[1].weight.dtype == torch.float32
