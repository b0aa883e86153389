"""Interruption and resume in real subprocesses, reproducibility, and atomic checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from goodfit.runtime.checkpoint_io import RunCheckpointIO, check_resumable, load_checkpoint
from goodfit.tasks.checkpoints import find_checkpoint
from goodfit.tasks.resume import epochs_done

from .conftest import ROOT, run_train, synthetic_overrides, write_fashion_like
from .tensorboard_read import load_events, scalars

FIGURES = ("test_loss", "test_acc", "best_val_acc", "epochs_run", "history", "eval_mode_gap")


@pytest.fixture(scope="module")
def larger_synthetic_dir(tmp_path_factory) -> Path:
    """Enough batches per epoch (75) that a signal lands inside an epoch."""
    return write_fashion_like(tmp_path_factory.mktemp("fashion2400"), n_train=2400, n_test=200)


def seven(data_dir: Path, epochs: int = 3) -> list[str]:
    return ["experiment=good", "seed=7", f"trainer.max_epochs={epochs}",
            *synthetic_overrides(data_dir)]  # fmt: skip


def figures(run_dir: Path) -> dict:
    """The run's figures; wall times (each epoch's `seconds`) differ between any two runs."""
    summary = json.loads((run_dir / "summary.json").read_text())
    result = {key: summary[key] for key in FIGURES}
    result["history"] = [{k: v for k, v in h.items() if k not in ("seconds", "cpu_seconds")}
                         for h in result["history"]]  # fmt: skip
    # epoch, train/val loss and accuracy, and the training figures measured as validation's
    assert all(len(h) == 7 for h in result["history"]), "every figure of every epoch compared"
    return result


@pytest.fixture(scope="module")
def uninterrupted(larger_synthetic_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "uninterrupted"
    run_train(*seven(larger_synthetic_dir), f"hydra.run.dir={run_dir}")
    return run_dir


def start_and_signal(args: list[str], run_dir: Path, signum: int) -> tuple[int, str]:
    """Start train.py, send `signum` once its first checkpoint exists, return (status, output)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None, f"ended before its first checkpoint:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    proc.send_signal(signum)
    signalled = time.monotonic()
    output = proc.communicate(timeout=240)[0]
    STOP_SECONDS.append(time.monotonic() - signalled)
    return proc.returncode, output


STOP_SECONDS: list[float] = []  # from each signal to the process's exit


def test_sigterm_then_resume_equals_uninterrupted(larger_synthetic_dir, uninterrupted, tmp_path):
    run_dir = tmp_path / "interrupted"
    status, output = start_and_signal(seven(larger_synthetic_dir), run_dir, signal.SIGTERM)
    assert status == 143, output[-3000:]
    assert "Interrupted by SIGTERM" in output and f"resume={run_dir}" in output
    assert not (run_dir / "summary.json").exists()
    check_resumable(run_dir / "checkpoints" / "last.ckpt")

    run_train(f"resume={run_dir}")
    assert figures(run_dir) == figures(uninterrupted)
    # The same TensorBoard run continues: one point per epoch, none twice.
    assert [step for step, _ in scalars(load_events(run_dir), "train/loss")] == [1, 2, 3]
    assert "Resuming" in (run_dir / "train.log").read_text()


def test_a_signal_after_the_last_batch_stops_before_testing(
    larger_synthetic_dir, uninterrupted, tmp_path
):
    """A stop after the last batch resumes to testing alone. The run builds a class of its own
    (a test's callback): the command the stop prints trusts it, `resume=<folder>` alone is
    refused, and the command that started the run, with `resume=auto` (a requeued job), builds
    that class anyway and continues without being told to trust it."""
    run_dir = tmp_path / "late"
    late = "+callbacks.late._target_=tests.plugins.SignalAtLastValidation"
    command = [*seven(larger_synthetic_dir), late, f"hydra.run.dir={run_dir}", "resume=auto"]
    result = run_train(*command, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 143, output[-3000:]
    assert "Interrupted by SIGTERM at the end of training" in output
    assert f"Resume with: python train.py resume={run_dir} trust_checkpoint=true" in output
    assert "test/acc" not in output and not (run_dir / "summary.json").exists()
    check_resumable(run_dir / "checkpoints" / "last.ckpt")
    refused = run_train(f"resume={run_dir}", check=False)
    assert refused.returncode == 2
    assert "tests.plugins.SignalAtLastValidation is not a class of" in refused.stdout
    run_train(*command)  # with training done, the resumed run only tests
    assert figures(run_dir) == figures(uninterrupted)


def test_a_run_resumed_only_to_test_keeps_the_count_of_images_it_validated(
    larger_synthetic_dir, tmp_path
):
    """Validation cut to 2 batches of 50 (of 240 images), then stopped after the last one: the
    resumed session validates nothing, and its record still rests on the 100 images validated
    (the interval's width depends on it), without blaming the module for keeping no count."""
    run_dir = tmp_path / "cut"
    late = "+callbacks.late._target_=tests.plugins.SignalAtLastValidation"
    command = [*seven(larger_synthetic_dir, epochs=1), "+trainer.limit_val_batches=2",
               "datamodule.eval_batch_size=50", late, f"hydra.run.dir={run_dir}"]  # fmt: skip
    assert run_train(*command, check=False).returncode == 143
    result = run_train(f"resume={run_dir}", "trust_checkpoint=true")
    assert "keeps no count" not in result.stdout + result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["n_val"] == 100


def test_two_runs_with_the_same_seed_are_identical(larger_synthetic_dir, uninterrupted, tmp_path):
    run_dir = tmp_path / "again"
    run_train(*seven(larger_synthetic_dir), f"hydra.run.dir={run_dir}")
    assert figures(run_dir) == figures(uninterrupted)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_130(larger_synthetic_dir, tmp_path):
    run_dir = tmp_path / "ctrl-c"
    status, output = start_and_signal(seven(larger_synthetic_dir, 50), run_dir, signal.SIGINT)
    assert status == 130, output[-3000:]
    assert "Interrupted by SIGINT" in output
    check_resumable(run_dir / "checkpoints" / "last.ckpt")


def test_damaged_last_checkpoint_is_reported_and_the_previous_one_used(uninterrupted, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(uninterrupted, run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # as a crash mid-write would leave it
    result = run_train(f"resume={run_dir}")
    log = result.stdout + result.stderr
    assert f"{last}: damaged" in log and "Resuming from" in log
    # best.ckpt holds an earlier epoch: its state replays the later epochs exactly, and the
    # copied folder's best checkpoint is tested as the original's was.
    assert figures(run_dir) == figures(uninterrupted)


def test_last_checkpoint_follows_every_epoch_when_the_best_does_not(larger_synthetic_dir, tmp_path):
    """With a monitor, Lightning writes save_last's file only in epochs that write a best
    checkpoint; goodfit's last.ckpt is rewritten after every epoch (val/acc flat here)."""
    run_dir = tmp_path / "flat"
    run_train(*seven(larger_synthetic_dir), "optimizer.lr=1e-12", f"hydra.run.dir={run_dir}")
    folder = run_dir / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert epochs_done(load_checkpoint(folder / "last.ckpt")) == 3
    assert epochs_done(load_checkpoint(folder / "best.ckpt")) == 1


def test_a_run_folder_moved_with_its_checkpoints_resumes_and_tests_as_in_place(
    larger_synthetic_dir, tmp_path
):
    """A run folder copied elsewhere (from a cluster's scratch disk, say) and resumed there
    keeps its best score: a later epoch that is no better (val/acc flat here) does not become
    the best, and testing reads the moved folder's best.ckpt, also in eval.py, not the file
    at the old place."""
    first, moved = tmp_path / "first", tmp_path / "moved"
    run_train(*seven(larger_synthetic_dir), "optimizer.lr=1e-12", f"hydra.run.dir={first}")
    shutil.copytree(first, moved)
    assert find_checkpoint(moved, "ckpt_path") == moved / "checkpoints" / "best.ckpt"
    run_train(f"resume={moved}", "trainer.max_epochs=4")
    folder = moved / "checkpoints"
    assert epochs_done(load_checkpoint(folder / "last.ckpt")) == 4
    assert epochs_done(load_checkpoint(folder / "best.ckpt")) == 1
    summary = json.loads((moved / "summary.json").read_text())
    assert summary["best_checkpoint"] == str((folder / "best.ckpt").resolve())
    assert epochs_done(load_checkpoint(first / "checkpoints" / "last.ckpt")) == 3  # untouched


def test_resume_with_sparse_validation_keeps_limits_and_refuses_a_finished_run(
    larger_synthetic_dir, tmp_path
):
    """Validated every second epoch, a run resumed to a higher limit ends as the run trained
    that long at once; resumed again without a limit it keeps the limit its last session had,
    and having nothing left to train it is refused (it used to retest and crash)."""
    every_2nd = "trainer.check_val_every_n_epoch=2"
    whole, run_dir = tmp_path / "whole", tmp_path / "run"
    run_train(*seven(larger_synthetic_dir, epochs=4), every_2nd, f"hydra.run.dir={whole}")
    run_train(*seven(larger_synthetic_dir, epochs=3), every_2nd, f"hydra.run.dir={run_dir}")
    run_train(f"resume={run_dir}", "trainer.max_epochs=4")
    history = figures(run_dir)["history"]
    assert history == figures(whole)["history"]
    assert [h["epoch"] for h in history if h["val_acc"] is not None] == [2, 4]
    again = run_train(f"resume={run_dir}", check=False)
    output = again.stdout + again.stderr
    assert again.returncode == 2, output[-3000:]
    assert "trainer.max_epochs=4, as in the session that wrote last.ckpt" in output
    assert "its 4 epochs reach trainer.max_epochs=4: nothing is left to train" in output
    assert figures(run_dir)["history"] == history


def test_resume_changes_only_limits(uninterrupted, tmp_path):
    result = run_train(f"resume={uninterrupted}", "optimizer.lr=0.5", check=False)
    assert result.returncode == 2
    assert "only trainer.max_epochs" in result.stdout + result.stderr
    assert "optimizer.lr" in result.stdout + result.stderr


def test_resume_reads_the_same_data_from_where_it_is_now(
    uninterrupted, larger_synthetic_dir, tmp_path
):
    """Data moved (or staged to another disk for this job): datamodule.data_dir may change on
    resume; the run goes on as if it had not moved, without Lightning's warning that its
    checkpoint folder is not empty."""
    run_dir, moved = tmp_path / "copy", tmp_path / "moved"
    shutil.copytree(uninterrupted, run_dir)
    shutil.copytree(larger_synthetic_dir, moved)
    result = run_train(f"resume={run_dir}", f"datamodule.data_dir={moved}", "trainer.max_epochs=4")
    output = result.stdout + result.stderr
    assert "exists and is not empty" not in output
    history = figures(run_dir)["history"]
    assert len(history) == 4 and history[:3] == figures(uninterrupted)["history"]


def test_resume_on_other_data_is_refused_before_any_work(tmp_path):
    """Another folder of images with other classes: refused before the run starts, so the
    completed run's record is left as it was (not recorded as a failed continuation)."""
    from .data_files import write_image_folder

    images = write_image_folder(tmp_path / "images")
    run_dir = tmp_path / "run"
    run_train("datamodule=image_folder", f"datamodule.data_dir={images}", "model=mlp_bad",
              "datamodule.batch_size=8",
              "trainer.max_epochs=1", "trainer.accelerator=cpu",
              "callbacks.rich_progress_bar=null", f"hydra.run.dir={run_dir}")  # fmt: skip
    before = (run_dir / "summary.json").read_text()
    other = write_image_folder(tmp_path / "other", classes=("ant", "bee", "cow"))
    result = run_train(f"resume={run_dir}", f"datamodule.data_dir={other}",
                       "trainer.max_epochs=2", check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert ("not the data the checkpoint was trained on: class_names ['ant', 'bee', 'cow'] "
            "here, ['cat', 'dog', 'owl'] in the checkpoint") in output  # fmt: skip
    assert (run_dir / "summary.json").read_text() == before


def test_a_checkpoint_refuses_other_data(synthetic_dir):
    """The datamodule's state in a checkpoint names its classes and image shape; restored onto
    data with others (another folder given on resume or to eval), it is refused."""
    from goodfit.data.fashion_mnist import FashionMNISTDataModule
    from goodfit.runtime.errors import DataError

    datamodule = FashionMNISTDataModule(data_dir=str(synthetic_dir), system_dir=None,
                                        download=False, verify_checksums=False)  # fmt: skip
    datamodule.load_state_dict({"class_names": ["a"]})  # before the data is read: nothing to say
    datamodule.setup("fit")
    state = datamodule.state_dict()
    datamodule.load_state_dict(state)  # the same data
    other_shape = r"trained on: image_shape \[1, 28, 28\] here, \[3, 32, 32\]"
    with pytest.raises(DataError, match=other_shape):
        datamodule.load_state_dict({**state, "image_shape": [3, 32, 32]})
    names = ["x", *state["class_names"][1:]]
    with pytest.raises(DataError, match=r"class_names .* in the checkpoint"):
        datamodule.load_state_dict({**state, "class_names": names})


def test_resume_needs_a_run_folder(tmp_path):
    result = run_train(f"resume={tmp_path}", check=False)
    assert result.returncode == 2
    assert "not a run folder" in result.stdout + result.stderr


def test_checkpoint_write_that_fails_leaves_the_old_one(tmp_path):
    path = tmp_path / "last.ckpt"
    io = RunCheckpointIO()
    io.save_checkpoint({"weights": torch.ones(3)}, path)
    with pytest.raises(Exception):  # noqa: B017  (pickling a lambda fails mid-write)
        io.save_checkpoint({"weights": torch.zeros(3), "bad": lambda: None}, path)
    assert torch.equal(torch.load(path)["weights"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"], "no temporary file left"


@pytest.mark.slow
def test_resume_auto_starts_then_continues_in_the_same_folder(
    larger_synthetic_dir, uninterrupted, tmp_path
):
    """What a requeued SLURM job does: the same command, resume=auto, in the same folder."""
    run_dir = tmp_path / "requeued"
    command = [*seven(larger_synthetic_dir), "resume=auto"]
    status, output = start_and_signal(command, run_dir, signal.SIGTERM)
    assert status == 143, output[-3000:]
    config = (run_dir / ".hydra" / "config.yaml").read_bytes()
    result = run_train(*command, f"hydra.run.dir={run_dir}")
    assert "continuing the run in" in result.stdout + result.stderr
    assert figures(run_dir) == figures(uninterrupted)
    assert (run_dir / ".hydra" / "config.yaml").read_bytes() == config, "its record kept"
    again = run_train(*command, f"hydra.run.dir={run_dir}")
    assert "has finished" in again.stdout + again.stderr


@pytest.mark.slow
def test_ddp_sigterm_to_one_process_stops_all_at_one_step(larger_synthetic_dir, tmp_path):
    """`kill <pid>` reaches the first process only: all processes stop at the same step with
    one checkpoint, exit non-zero within a minute, and resume gives the uninterrupted figures."""
    ddp = ["trainer=ddp_sim", *seven(larger_synthetic_dir, 2)]
    expected = tmp_path / "ddp_uninterrupted"
    run_train(*ddp, f"hydra.run.dir={expected}")
    run_dir = tmp_path / "ddp_interrupted"
    status, output = start_and_signal(ddp, run_dir, signal.SIGTERM)
    assert status == 143, output[-3000:]
    assert STOP_SECONDS[-1] < 60 and "Interrupted by SIGTERM" in output
    check_resumable(run_dir / "checkpoints" / "last.ckpt")
    assert not (run_dir / "summary.json").exists()
    run_train(f"resume={run_dir}")
    assert figures(run_dir) == figures(expected)


@pytest.mark.slow
def test_resume_is_exact_on_the_fast_path_too(larger_synthetic_dir, tmp_path):
    fast = [*seven(larger_synthetic_dir), "perf=fast"]
    expected = tmp_path / "fast_uninterrupted"
    run_train(*fast, f"hydra.run.dir={expected}")
    run_dir = tmp_path / "fast_interrupted"
    status, output = start_and_signal(fast, run_dir, signal.SIGTERM)
    assert status == 143, output[-3000:]
    run_train(f"resume={run_dir}")
    assert figures(run_dir) == figures(expected)
