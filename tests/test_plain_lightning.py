"""The default path is plain Lightning: a user's LightningModule and callbacks, given to train.py
by config alone, behave exactly as in a plain lightning.Trainer, also after a perf=fast job in
the same process. perf=fast announces itself and refuses what it would change the meaning of."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from PIL import Image

from goodfit.data.fashion_mnist import CLASS_NAMES, FashionMNISTDataModule
from goodfit.models import MLP
from goodfit.tasks import predict

from .conftest import run_train, synthetic_overrides
from .plugins import StepRecorder, UserModule

EPOCHS = 2


def user_config_dir(root: Path) -> Path:
    """A config folder of the user's own, added to Hydra's search path: their module, and two
    cases for a multirun (perf=fast with goodfit's Classifier; perf=default with the user's
    module and step checkpoints)."""
    (root / "module").mkdir(parents=True)
    (root / "module" / "user.yaml").write_text(
        "_target_: tests.plugins.UserModule\noptimizer: ${optimizer}\n"
    )
    (root / "case").mkdir()
    (root / "case" / "fast.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /perf: fast\n"
    )
    (root / "case" / "plain.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /perf: default\n  - override /module: user\n"
        "callbacks:\n  every5:\n    _target_: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "    dirpath: ${paths.output_dir}/every5\n    filename: '{step}'\n"
        "    every_n_train_steps: 5\n    save_top_k: -1\n"
    )
    return root


def recorder_overrides(out: Path) -> list[str]:
    return ["+callbacks.recorder._target_=tests.plugins.StepRecorder",
            f"+callbacks.recorder.out={out}"]  # fmt: skip


def every5_overrides(folder: Path) -> list[str]:
    return ["+callbacks.every5._target_=lightning.pytorch.callbacks.ModelCheckpoint",
            f"+callbacks.every5.dirpath={folder}", "+callbacks.every5.filename='{step}'",
            "+callbacks.every5.every_n_train_steps=5",
            "+callbacks.every5.save_top_k=-1"]  # fmt: skip


@pytest.fixture(scope="module")
def plain_lightning(synthetic_dir, tmp_path_factory) -> tuple[dict, list[str], Path]:
    """The same module, data and callbacks in a plain lightning.Trainer, in this process."""
    folder = tmp_path_factory.mktemp("plain")
    L.seed_everything(42, workers=True, verbose=False)
    data = FashionMNISTDataModule(str(synthetic_dir), system_dir=None, download=False,
                                  batch_size=32, eval_batch_size=100, val_split=0.06,
                                  val_split_mode="tail", seed=42)  # fmt: skip
    module = UserModule(MLP(), functools.partial(torch.optim.SGD, lr=0.01))
    recorder = StepRecorder(str(folder / "recorder.json"))
    every5 = ModelCheckpoint(dirpath=folder / "every5", filename="{step}",
                             every_n_train_steps=5, save_top_k=-1)  # fmt: skip
    trainer = L.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        callbacks=[recorder, every5],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    return json.loads(recorder.out.read_text()), checkpoint_names(folder / "every5"), folder


def checkpoint_names(folder: Path) -> list[str]:
    return sorted((p.name for p in folder.glob("*.ckpt")), key=lambda n: int(n[5:-5]))


def test_user_module_and_callbacks_behave_as_in_plain_lightning(
    synthetic_dir, tmp_path, plain_lightning, capsys
):
    expected_recorder, expected_checkpoints, plain_folder = plain_lightning
    steps = expected_recorder["optimizer_steps"]
    assert steps == EPOCHS * 18  # 564 training images in batches of 32
    assert expected_recorder["batch_end_steps"] == list(range(1, steps + 1))
    assert expected_checkpoints == [f"step={s}.ckpt" for s in range(5, steps + 1, 5)]

    conf = user_config_dir(tmp_path / "conf")
    run_dir = tmp_path / "run"
    run_train(
        "experiment=good", f"trainer.max_epochs={EPOCHS}", f"hydra.searchpath=[file://{conf}]",
        "module=user", *recorder_overrides(tmp_path / "recorder.json"),
        *every5_overrides(tmp_path / "every5"), f"hydra.run.dir={run_dir}",
        *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    assert json.loads((tmp_path / "recorder.json").read_text()) == expected_recorder
    assert checkpoint_names(tmp_path / "every5") == expected_checkpoints
    # the same weights, bit for bit, though goodfit's default callbacks also measured the
    # training images through the module's forward after each validation (callbacks.train_eval)
    last = expected_checkpoints[-1]
    ours = torch.load(tmp_path / "every5" / last, weights_only=True)["state_dict"]
    theirs = torch.load(plain_folder / "every5" / last, weights_only=True)["state_dict"]
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["module"] == "user" and 0 <= summary["test_acc"] <= 1
    # what the user's module logs per epoch is the run's record: curves and a real verdict
    assert summary["epochs_run"] == EPOCHS
    for row in summary["history"]:
        assert row["train_loss"] > 0 and row["val_loss"] > 0 and 0 <= row["val_acc"] <= 1
        assert row["train_acc"] is None  # the module does not log it
        assert row["train_eval_loss"] > 0  # its forward gives class scores
    assert "No validation loss was recorded" not in " ".join(summary["verdict_reasons"])
    assert (run_dir / "learning_curves.png").is_file()

    # eval and predict on the user's run (their own code, so trusted): the run's own test
    # figures; the classes from the data, the scores from the network (the module saves no
    # hyper-parameters)
    from omegaconf import OmegaConf

    from goodfit.tasks import evaluate, predict

    cfg = {"ckpt_path": str(run_dir), "data_dir": None, "accelerator": "cpu",
           "trust_checkpoint": True}  # fmt: skip
    result = evaluate.run(OmegaConf.create(cfg))
    assert (result["test_loss"], result["test_acc"]) == (summary["test_loss"], summary["test_acc"])
    image = tmp_path / "image.png"
    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(image)
    assert predict.main(["--trust", str(run_dir), str(image)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert any(line.startswith(f"{image}: {name} ") for name in CLASS_NAMES), line


def test_a_perf_fast_job_leaves_the_next_job_plain(synthetic_dir, tmp_path, plain_lightning):
    """One process, two jobs: perf=fast (goodfit's steps, 8 per Lightning batch, the faster
    dispatch), then perf=default with a user's callback and step checkpoints."""
    expected_recorder, expected_checkpoints, _ = plain_lightning
    conf = user_config_dir(tmp_path / "conf")
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m", "+case=fast,plain", "experiment=good", f"trainer.max_epochs={EPOCHS}",
        f"hydra.searchpath=[file://{conf}]",
        *recorder_overrides(Path("${paths.output_dir}") / "recorder.json"),
        f"hydra.sweep.dir={sweep}", *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    assert "perf: opt-in speed work" in result.stdout + result.stderr
    fast_dir, plain_dir = sweep / "+case=fast", sweep / "+case=plain"
    fast = json.loads((fast_dir / "recorder.json").read_text())
    assert fast["optimizer_steps"] == expected_recorder["optimizer_steps"]
    assert len(fast["batch_end_steps"]) == 3 * EPOCHS, "18 steps in Lightning batches of 8"
    assert "perf: opt-in speed work" in (fast_dir / "train.log").read_text()
    assert json.loads((plain_dir / "recorder.json").read_text()) == expected_recorder
    assert checkpoint_names(plain_dir / "every5") == expected_checkpoints
    assert "perf: opt-in" not in (plain_dir / "train.log").read_text()


def test_a_users_datamodule_plugs_in_by_config(tmp_path):
    """A LightningDataModule of DataLoaders, in the user's own config folder: the run trains,
    records its epochs and tests; an augmentation it cannot take is refused by name."""
    conf = tmp_path / "conf"
    (conf / "datamodule").mkdir(parents=True)
    (conf / "datamodule" / "user.yaml").write_text("_target_: tests.plugins.UserData\nn: 256\n")
    run_dir = tmp_path / "run"
    common = [f"hydra.searchpath=[file://{conf}]", "datamodule=user", "trainer.max_epochs=2"]
    run_train(*common, f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (128, 64, 64)
    assert summary["epochs_run"] == 2 and summary["data"]["class_names"] == ["dark", "bright"]
    assert summary["data"]["image_shape"] == [1, 8, 8] and 0 <= summary["test_acc"] <= 1
    refused = run_train(*common, "augmentation=light", f"hydra.run.dir={tmp_path / 'aug'}",
                        check=False)  # fmt: skip
    assert refused.returncode == 2
    assert ("augmentation: the datamodule (tests.plugins.UserData) takes no `augmentation` "
            "argument; choose augmentation=none") in refused.stdout + refused.stderr  # fmt: skip


def test_predict_with_a_users_datamodule_says_what_it_must_save(tmp_path, capsys):
    """predict prepares images as the run's datamodule saved in the checkpoint: a datamodule that
    saves nothing is told what to save; one that saves it gets its images classified."""
    conf = tmp_path / "conf"
    (conf / "datamodule").mkdir(parents=True)
    for name in ("UserData", "UserDataWithState"):
        (conf / "datamodule" / f"{name}.yaml").write_text(f"_target_: tests.plugins.{name}\n")
    Image.fromarray(np.full((8, 8), 230, np.uint8)).save(tmp_path / "bright.png")
    outcomes = {}
    for name in ("UserData", "UserDataWithState"):
        run_train(f"hydra.searchpath=[file://{conf}]", f"datamodule={name}",
                  "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / name}")  # fmt: skip
        capsys.readouterr()
        status = predict.main([str(tmp_path / name), str(tmp_path / "bright.png"), "--trust"])
        outcomes[name] = (status, " ".join(capsys.readouterr().err.split()))
    status, error = outcomes["UserData"]
    assert status == 2 and "tests.plugins.UserData saved no image_shape in the checkpoint" in error
    assert 'state_dict() returning {"image_shape": [channels, height, width]' in error
    assert outcomes["UserDataWithState"] == (0, "")


def test_hyper_parameters_no_checkpoint_could_be_opened_with_are_refused_first(tmp_path):
    """save_hyperparameters() with no `ignore` puts the network, a partial or a transform object
    into every checkpoint, which goodfit opens as data only: refused before any work, naming
    them and the fix, instead of failing to test the best checkpoint after training."""
    conf = tmp_path / "conf"
    (conf / "module").mkdir(parents=True)
    (conf / "datamodule").mkdir()
    (conf / "module" / "saving.yaml").write_text(
        "_target_: tests.plugins.UserModuleSavingEverything\noptimizer: ${optimizer}\n"
    )
    (conf / "datamodule" / "user.yaml").write_text("_target_: tests.plugins.UserData\n")
    (conf / "datamodule" / "transformed.yaml").write_text(
        "_target_: tests.plugins.UserDataWithTransform\ntransform:\n"
        "  _target_: torchvision.transforms.Normalize\n  mean: [0.5]\n  std: [0.5]\n"
    )
    cases = {
        ("module=saving", "datamodule=user"): "module: UserModuleSavingEverything saves `net` "
        "(goodfit.models.mlp.MLP), `optimizer` (",
        ("datamodule=transformed",): "datamodule: UserDataWithTransform saves `transform` "
        "(torchvision.transforms.transforms.Normalize) with save_hyperparameters()",
    }
    for choices, expected in cases.items():
        run_dir = tmp_path / choices[0].replace("=", "_")
        result = run_train(f"hydra.searchpath=[file://{conf}]", *choices, "trainer.max_epochs=1",
                           f"hydra.run.dir={run_dir}", check=False)  # fmt: skip
        output = " ".join((result.stdout + result.stderr).split())
        assert result.returncode == 2 and "Traceback" not in output, output[-2000:]
        assert expected in output and "self.save_hyperparameters(ignore=[" in output
        assert not (run_dir / "checkpoints").exists(), "refused before training"


def test_a_module_that_logs_no_test_figures_is_told_so(synthetic_dir, tmp_path):
    conf = tmp_path / "conf"
    (conf / "module").mkdir(parents=True)
    (conf / "module" / "quiet.yaml").write_text(
        "_target_: tests.plugins.UserModuleWithoutTestFigures\noptimizer: ${optimizer}\n"
    )
    run_dir = tmp_path / "run"
    result = run_train("debug=fast", f"hydra.searchpath=[file://{conf}]", "module=quiet",
                       f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir),
                       check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    assert ("module: UserModuleWithoutTestFigures logged no test/loss and no test/acc in its test "
            f"step, which the run's record needs (summary.json, the verdict); its checkpoints are "
            f"kept in {run_dir / 'checkpoints'}") in " ".join(output.split())  # fmt: skip
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_lightnings_distributed_logging_warning_reaches_a_users_module():
    """goodfit logs its own figures with sync_dist (already synced, so exact): Lightning's
    warning that an epoch figure logged without it under DDP is one process's is not silenced
    for a module of the user's, as it was by a process-wide filter."""
    import warnings

    from lightning.fabric.utilities.warnings import PossibleUserWarning

    from goodfit.tasks.assemble import quiet_library_noise

    message = (
        "It is recommended to use `self.log('val/acc', ..., sync_dist=True)` when logging "
        "on epoch level in distributed setting to accumulate the metric across devices."
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_library_noise()
        warnings.warn(message, PossibleUserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [message]


@pytest.mark.parametrize("own", [False, True])
def test_the_logging_interval_warning_is_quiet_for_classifier_only(own, tmp_path):
    """An epoch of 4 batches under log_every_n_steps=50: Lightning warns that per-step logs
    will be sparse. Classifier logs per epoch only, so its fit is quiet; a user's module that
    may log per step hears the warning, as in plain Lightning (it was filtered for every
    module, for the rest of the process)."""
    import functools
    import warnings

    from goodfit.data.batches import TensorBatches
    from goodfit.lit import Classifier
    from goodfit.lit.classifier import logging_interval_quiet
    from goodfit.tasks.assemble import quiet_library_noise

    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    module = (UserModule(MLP(hidden=(8,)), optimizer) if own else
              Classifier(MLP(hidden=(8,)), optimizer, class_names=list("0123456789")))  # fmt: skip
    from lightning.pytorch.loggers import CSVLogger

    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=CSVLogger(tmp_path),
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_noise()  # what a run sets for the whole process
        with logging_interval_quiet(module):
            trainer.fit(module, train_dataloaders=TensorBatches(x, y, 4, shuffle=False),
                        val_dataloaders=TensorBatches(x, y, 16, shuffle=False))  # fmt: skip
    warned = [w for w in caught if "smaller than the logging interval" in str(w.message)]
    assert len(warned) == (1 if own else 0)
