"""Faults that would lose or corrupt work, and files that would run code: each is refused or
handled, and a test shows the outcome through the real commands."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from goodfit.runtime.checkpoint_io import load_checkpoint
from goodfit.tasks import predict

from .conftest import ROOT, run_train, synthetic_overrides


class CreatesAFile:
    """A pickle that creates `path` when it is opened with weights_only=False."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.fixture(scope="module")
def finished(synthetic_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "finished"
    run_train("experiment=good", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}",
              *synthetic_overrides(synthetic_dir))  # fmt: skip
    return run_dir


def crafted_checkpoint(path: Path, marker: Path, config: dict) -> Path:
    torch.save({"state_dict": {}, "goodfit_config": config, "loops": {},
                "optimizer_states": [], "payload": CreatesAFile(marker)}, path)  # fmt: skip
    return path


def run_eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "eval.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_a_crafted_checkpoint_runs_nothing(finished, tmp_path, capsys):
    marker = tmp_path / "was-run"
    config = json.loads(json.dumps(OmegaConf.to_container(
        OmegaConf.load(finished / ".hydra" / "config.yaml"))))  # fmt: skip
    evil = crafted_checkpoint(tmp_path / "evil.ckpt", marker, config)
    image = tmp_path / "x.png"
    shutil.copy(finished / "learning_curves.png", image)

    assert predict.main([str(evil), str(image)]) == 2
    assert "refused" in capsys.readouterr().err and not marker.exists()

    result = run_eval(f"ckpt_path={evil}")
    assert result.returncode == 2 and "refused" in result.stdout + result.stderr
    assert not marker.exists()

    tampered = tmp_path / "tampered"
    shutil.copytree(finished, tampered)
    (tampered / ".goodfit.lock").unlink()
    crafted_checkpoint(tampered / "checkpoints" / "last.ckpt", marker, config)
    result = run_train(f"resume={tampered}", check=False)
    assert result.returncode == 2 and "refused" in result.stdout + result.stderr
    assert not marker.exists(), "resume neither opened it nor fell back to another checkpoint"


def test_a_saved_config_builds_only_known_classes(finished, tmp_path):
    checkpoint = torch.load(finished / "checkpoints" / "best.ckpt", weights_only=True)
    checkpoint["goodfit_config"]["model"]["_target_"] = "subprocess.call"
    torch.save(checkpoint, tmp_path / "odd.ckpt")
    result = run_eval(f"ckpt_path={tmp_path / 'odd.ckpt'}")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-2000:]
    assert "model: subprocess.call is not a class of goodfit" in output
    assert "trust_checkpoint=true" in output


def test_weights_that_do_not_fit_their_config_are_a_clear_error(finished, tmp_path):
    checkpoint = torch.load(finished / "checkpoints" / "best.ckpt", weights_only=True)
    checkpoint["goodfit_config"]["model"]["hidden"] = [64]
    torch.save(checkpoint, tmp_path / "other.ckpt")
    result = run_eval(f"ckpt_path={tmp_path / 'other.ckpt'}")
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "do not fit the network its config describes" in output
    assert "Traceback" not in output


def files_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_a_refused_run_leaves_the_finished_run_byte_identical(finished, synthetic_dir):
    before = files_digest(finished)
    result = run_train("experiment=bad", f"hydra.run.dir={finished}",
                       *synthetic_overrides(synthetic_dir), check=False)  # fmt: skip
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert files_digest(finished) == before


@pytest.mark.parametrize("resume", [None, "auto"])
def test_the_corrected_command_takes_the_folder_of_a_run_refused_at_its_start(
    synthetic_dir, tmp_path, resume
):
    """A typo refused before any work leaves only Hydra's files in a fixed hydra.run.dir: the
    corrected command runs there (with resume=auto too), and the folder's saved config is the
    run's that trained, not the refused one's."""
    run_dir = tmp_path / "fixed"
    common = [f"hydra.run.dir={run_dir}", "debug=fast", *synthetic_overrides(synthetic_dir)]
    if resume:
        common.append(f"resume={resume}")
    refused = run_train("datamodule.batch_size=0", *common, check=False)
    assert refused.returncode == 2 and "datamodule.batch_size=0" in refused.stdout
    run_train("datamodule.batch_size=16", *common)
    assert OmegaConf.load(run_dir / ".hydra" / "config.yaml").datamodule.batch_size == 16
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    again = run_train("datamodule.batch_size=16", *common, check=False)
    if resume:  # the finished run is found, not trained again
        assert again.returncode == 0 and "the run in this folder has finished" in again.stdout
    else:
        assert again.returncode == 2 and "already holds a run" in again.stderr


def test_resume_of_a_missing_folder_creates_nothing(tmp_path):
    result = run_train(f"resume={tmp_path / 'none'}", check=False)
    assert result.returncode == 2 and "not a run folder" in result.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_a_folder_that_cannot_be_created_is_named(tmp_path, mode):
    """A file where the run or sweep folder should be: one line naming the key, exit 2 (was a
    FileExistsError or NotADirectoryError traceback from Hydra's launcher)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")
    key = f"hydra.{mode}.dir"
    args = [f"{key}={blocker}"] if mode == "run" else ["-m", "seed=1", f"{key}={blocker}/x"]
    result = run_train(*args, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    reason = "a file has that name" if mode == "run" else "Not a directory"
    assert f"the folder cannot be created ({reason}); choose another {key}" in output
    assert "Traceback" not in output and blocker.read_text() == "mine"


def test_ctrl_c_outside_training_is_one_line_and_exit_130(caplog):
    """Ctrl-C while the data loads or the records are written (StopOnSignal handles it during
    training): 'Stopped by Ctrl-C' and the status a shell gives SIGINT, not a traceback."""
    from goodfit.hydra_ext.entry import report_user_errors

    @report_user_errors
    def task() -> None:
        raise KeyboardInterrupt

    with caplog.at_level("ERROR"), pytest.raises(SystemExit) as stopped:
        try:
            task()
        except KeyboardInterrupt:  # would stop pytest itself
            pytest.fail("Ctrl-C escaped the task as a KeyboardInterrupt (a traceback)")
    assert stopped.value.code == 130
    assert [r.getMessage() for r in caplog.records] == ["Stopped by Ctrl-C"]


def _catches_sigint(pid: int) -> bool:
    """Whether the process has a handler of its own for SIGINT (`SigCgt` in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines()
                      if line.startswith("SigCgt:")), 16)  # fmt: skip
    return bool(caught & (1 << (signal.SIGINT - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc")
def test_ctrl_c_while_train_py_starts_stops_it_without_a_traceback(tmp_path):
    """Ctrl-C during the imports, before any task code runs: the process stops at once as
    SIGINT stops a program (no KeyboardInterrupt traceback from inside an import)."""
    # Python catches SIGINT from its start; train.py's first lines give it back. The pause keeps
    # the first state long enough to be seen, so the signal surely comes after train.py took over.
    code = ("import runpy, sys, time; time.sleep(0.3); sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(ROOT / "train.py"), f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _catches_sigint(child.pid) and time.monotonic() < deadline:
        time.sleep(0.001)  # Python's own handler, installed as it starts
    while _catches_sigint(child.pid) and time.monotonic() < deadline:
        time.sleep(0.001)  # given back by train.py's first lines: the imports go on
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGINT, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_two_runs_started_at_once_into_one_folder(synthetic_dir, tmp_path):
    run_dir = tmp_path / "shared"
    args = [sys.executable, str(ROOT / "train.py"), "experiment=good", "trainer.max_epochs=2",
            f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir)]  # fmt: skip
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run_dir / ".goodfit.lock").exists():
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.wait(timeout=300) == 0
    assert second.returncode == 2
    assert "is running in this folder" in second.stderr or "already holds" in second.stderr
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt",
                                                                           "last.ckpt"]  # fmt: skip
    assert (run_dir / "train.log").read_text().count("Run folder") == 1, "one run's log"


@pytest.mark.slow
def test_a_sweep_without_a_sweep_folder_writes_its_summary(synthetic_dir, tmp_path):
    run_train("-m", "optimizer=sgd,rmsprop", "debug=fast", f"paths.log_dir={tmp_path}",
              *synthetic_overrides(synthetic_dir))  # fmt: skip
    (table,) = tmp_path.glob("multiruns/*/summary.csv")
    assert table.read_text().count("completed") == 2


def test_a_full_disk_is_one_clear_line_and_a_failed_record(synthetic_dir, tmp_path):
    """A file-size limit makes the first checkpoint's write fail, as a full disk would."""
    run_dir = tmp_path / "full"
    limit = 1_000_000  # bytes: the config, the log and summary.json fit; a checkpoint does not

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "experiment=good", "trainer.max_epochs=1",
         f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=limited,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    log_lines = [line for line in (run_dir / "train.log").read_text().splitlines()
                 if "Could not write" in line]  # fmt: skip
    assert len(log_lines) == 1 and ".ckpt" in log_lines[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "Could not write" in summary["reason"]
    assert not [p for p in run_dir.rglob("*.tmp")], "no half-written file left"


def test_a_checkpoint_that_could_not_be_opened_stops_the_run_when_written(synthetic_dir, tmp_path):
    """A callback whose state holds a numpy number: the run stops at the first checkpoint that
    would hold it, naming the callback (it used to train to the end, then fail to open its own
    best checkpoint), and the checkpoints written before it still open."""
    run_dir = tmp_path / "numpy"
    result = run_train("experiment=good", "trainer.max_epochs=3", f"hydra.run.dir={run_dir}",
                       "+callbacks.numpy._target_=tests.plugins.NumpyStateAfterFirstEpoch",
                       *synthetic_overrides(synthetic_dir), check=False)  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "Traceback" not in output, output[-3000:]
    assert ("the state of callback NumpyStateAfterFirstEpoch holds objects other than tensors "
            "and plain values") in output  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and len(summary["history"]) == 2
    for name in ("best.ckpt", "last.ckpt"):
        assert load_checkpoint(run_dir / "checkpoints" / name)["epoch"] == 0
    assert not [p for p in run_dir.rglob("*.tmp")]


def test_the_write_time_check_clears_usual_states_without_saving_them_twice(monkeypatch, tmp_path):
    """An EMA-like callback state (an OrderedDict of tensors), sizes, dtypes and devices are
    cleared by their types alone, so large states cost no second save per checkpoint; a numpy
    number is refused by name."""
    import collections

    import numpy as np

    from goodfit.runtime import checkpoint_io

    usual = {"callbacks": {"EMA": {"shadow": collections.OrderedDict(w=torch.ones(3)),
                                   "shape": torch.Size([3]), "dtype": torch.float32,
                                   "device": torch.device("cpu")}},
             "epoch": 1, "state_dict": collections.OrderedDict(w=torch.ones(3))}  # fmt: skip
    with monkeypatch.context() as patched:
        patched.setattr(checkpoint_io, "_opens_as_data", lambda value: pytest.fail("saved"))
        checkpoint_io.check_opens_as_data(usual, tmp_path / "last.ckpt")
    usual["callbacks"]["Tracker"] = {"best": np.float64(0.5)}
    with pytest.raises(checkpoint_io.UnsafeCheckpointError, match="callback Tracker holds"):
        checkpoint_io.check_opens_as_data(usual, tmp_path / "last.ckpt")
