"""eval.py reports the training run's own test figures; predict classifies image files."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from goodfit.data.idx import read_idx
from goodfit.hydra_ext.key_hints import typed_override
from goodfit.runtime.errors import CheckpointError, ConfigError
from goodfit.tasks import evaluate as goodfit_eval
from goodfit.tasks import predict
from goodfit.tasks.checkpoints import find_checkpoint, load_trained

from .conftest import ROOT, make_images, run_train, synthetic_overrides


@pytest.fixture(scope="module")
def trained(synthetic_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "trained"
    run_train("experiment=good", "trainer.max_epochs=2", "datamodule.normalize=standardize",
              f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir))  # fmt: skip
    return run_dir


def test_eval_of_a_run_folder_equals_the_training_test(trained):
    summary = json.loads((trained / "summary.json").read_text())
    cfg = OmegaConf.create({"ckpt_path": str(trained), "data_dir": None, "accelerator": "cpu"})
    result = goodfit_eval.run(cfg)
    assert result["checkpoint"] == summary["best_checkpoint"]
    assert (result["test_loss"], result["test_acc"]) == (summary["test_loss"], summary["test_acc"])


def test_trusted_code_that_does_not_import_here_is_named(trained, tmp_path):
    """A trusted checkpoint whose run used code of its own that this machine cannot import:
    the keys and the module named, with what to do (was Hydra's `Error locating target`)."""
    checkpoint = torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)
    checkpoint["goodfit_config"]["module"]["_target_"] = "my_project.lit.Smoothing"
    moved = tmp_path / "moved.ckpt"
    torch.save(checkpoint, moved)
    with pytest.raises(CheckpointError) as refused:
        load_trained(moved, trust=True)
    assert str(refused.value) == (
        f"ckpt_path={moved}: its config names code that does not import here (run from the "
        "folder that holds it, or add that folder to PYTHONPATH):\n"
        "  module._target_=my_project.lit.Smoothing: no module named my_project"
    )


def test_eval_command_line(trained):
    last = trained / "checkpoints" / "last.ckpt"
    result = subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), f"ckpt_path={last}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy" in result.stdout and "last.ckpt" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_eval_on_a_device_the_machine_lacks_says_what_to_give(trained):
    """A run trained on a GPU, tested where there is none: one line, exit 2 (was a traceback)."""
    cfg = OmegaConf.create({"ckpt_path": str(trained), "data_dir": None, "accelerator": "gpu"})
    with pytest.raises(ConfigError) as refused:
        goodfit_eval.run(cfg)
    assert str(refused.value).startswith("accelerator=gpu: Lightning refuses it on this machine")
    assert str(refused.value).endswith("give accelerator=cpu, or accelerator=auto")


def test_eval_refuses_a_missing_checkpoint(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), f"ckpt_path={tmp_path / 'none.ckpt'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert "none.ckpt: no such checkpoint file or run folder" in result.stdout + result.stderr


def test_eval_without_a_checkpoint_says_what_to_type():
    result = subprocess.run([sys.executable, str(ROOT / "eval.py")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-2000:]
    assert "ckpt_path has no value and is required: give it on the command line (ckpt_path=…)" in (
        output
    )
    assert "Traceback" not in output


def test_predict_classifies_images_and_reports_a_broken_one(trained, tmp_path, capsys):
    labels = np.array([7, 1])  # Sneaker, Trouser: the synthetic classes' templates
    images = make_images(labels, seed=3)
    Image.fromarray(images[0]).save(tmp_path / "sneaker.png")
    Image.fromarray(images[1]).resize((56, 56)).convert("RGB").save(tmp_path / "trouser.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    paths = [tmp_path / "sneaker.png", tmp_path / "broken.png", tmp_path / "trouser.jpg"]

    status = predict.main([str(trained / "checkpoints" / "best.ckpt"), *map(str, paths)])
    out, err = capsys.readouterr()
    assert status == 1, "one image could not be read"
    lines = out.splitlines()
    assert lines[0].startswith(f"{paths[0]}: Sneaker ")
    assert lines[1].startswith(f"{paths[2]}: Trouser ")
    assert f"{paths[1]}: cannot read image" in err


def test_predict_takes_a_run_folder_as_eval_does(trained, tmp_path, capsys):
    """A run folder stands for the checkpoint its own test used; a missing path is named."""
    image = tmp_path / "sneaker.png"
    Image.fromarray(make_images(np.array([7]), seed=4)[0]).save(image)
    assert predict.main([str(trained), str(image)]) == 0
    from_file = predict.main([str(trained / "checkpoints" / "best.ckpt"), str(image)])
    out = capsys.readouterr().out.splitlines()
    assert from_file == 0 and out[0] == out[1] and out[0].startswith(f"{image}: Sneaker ")
    assert predict.main([str(tmp_path / "nowhere"), str(image)]) == 2
    assert f"checkpoint={tmp_path / 'nowhere'}: no such checkpoint file or run folder" in (
        capsys.readouterr().err
    )


def test_a_folder_of_runs_given_as_one_names_the_argument_and_a_run(trained, tmp_path):
    """A sweep folder given where a run folder is wanted: the message names the argument (not
    a file name) and one of the runs inside."""
    sweep = tmp_path / "sweep"
    shutil.copytree(trained, sweep / "seed=1")
    with pytest.raises(ConfigError) as refused:
        find_checkpoint(sweep, name="ckpt_path")
    assert str(refused.value) == (
        f"ckpt_path={sweep}: the folder holds no checkpoints/best.ckpt or last.ckpt; it holds "
        f"runs: give one of them, e.g. {sweep / 'seed=1'}"
    )


def test_the_run_eval_suggests_in_a_folder_of_runs_is_typed_as_hydra_reads_it(trained, tmp_path):
    """A sweep's job folders hold '=' and ',' (optimizer=sgd,seed=1): the suggested command-line
    argument is quoted for Hydra, and typed as given it tests that run."""
    sweep = tmp_path / "sweep"
    shutil.copytree(trained, sweep / "optimizer=sgd,seed=1")
    command = [sys.executable, str(ROOT / "eval.py")]
    result = subprocess.run([*command, f"ckpt_path={sweep}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2
    suggested = (result.stdout + result.stderr).split("give one of them, e.g. ")[1].split("\n")[0]
    assert suggested == f"\"ckpt_path='{sweep / 'optimizer=sgd,seed=1'}'\""
    result = subprocess.run([*command, *shlex.split(suggested)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # the run's own test figure, with the interval its summary gives
    summary = json.loads((trained / "summary.json").read_text())
    low, high = summary["test_acc_ci95"]
    assert f"{summary['test_acc']:.4f}  (95% interval {low:.4f} to {high:.4f})" in result.stdout


@pytest.mark.parametrize(
    ("value", "typed"),
    [
        ("/runs/a", "ckpt_path=/runs/a"),
        ("/runs/optimizer=sgd", "\"ckpt_path='/runs/optimizer=sgd'\""),
        ("/runs/a,b", "\"ckpt_path='/runs/a,b'\""),  # unquoted: a sweep over two paths
        ("~/runs", "\"ckpt_path='~/runs'\""),
    ],
)
def test_typed_override_quotes_what_hydra_would_misread(value, typed):
    assert typed_override("ckpt_path", value) == typed


def test_predict_classifies_every_image_in_a_folder(trained, tmp_path, capsys):
    """A folder stands for the image files below it, in name order; hidden files and other
    files are left out; a folder without images is an error of its own."""
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    images = make_images(np.array([7, 1]), seed=5)
    Image.fromarray(images[0]).save(folder / "b_sneaker.png")
    Image.fromarray(images[1]).save(folder / "more" / "a_trouser.png")
    (folder / "notes.txt").write_text("not an image")
    Image.fromarray(images[0]).save(folder / ".hidden.png")
    assert predict.main([str(trained), str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        str(folder / "b_sneaker.png"),
        str(folder / "more" / "a_trouser.png"),
    ]
    (tmp_path / "empty").mkdir()
    assert predict.main([str(trained), str(tmp_path / "empty")]) == 2
    assert "no image files in" in capsys.readouterr().err


def test_predict_writes_a_csv_in_batches_as_one_by_one(trained, tmp_path, capsys, monkeypatch):
    """--csv FILE: one row per image read (class, probability, every class's probability), the
    same classes and probabilities (to rounding) whether images go through the network in
    batches or one at a time."""
    import csv

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(make_images(np.array([7, 1, 3, 7, 9]), seed=6)):
        Image.fromarray(image).save(folder / f"{i}.png")
    (folder / "9_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    table = tmp_path / "out" / "predictions.csv"
    assert predict.main([str(trained), str(folder), "--csv", str(table)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert "\r" not in table.read_text()  # plain lines
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert [row["image"] for row in rows] == [str(folder / f"{i}.png") for i in range(5)]
    assert [f"{r['image']}: {r['class']} {float(r['probability']):.3f}" for r in rows] == [
        line.split(" (")[0] for line in printed
    ]
    classes = list(rows[0])[3:]
    assert len(classes) == 10 and rows[0]["class"] == "Sneaker"
    assert all(abs(sum(float(r[c]) for c in classes) - 1) < 1e-4 for r in rows)

    monkeypatch.setattr(predict, "BATCH", 1)
    one_by_one = tmp_path / "one_by_one.csv"
    assert predict.main([str(trained), str(folder), "--csv", str(one_by_one)]) == 1
    with open(one_by_one) as f:
        alone = list(csv.DictReader(f))
    assert [r["class"] for r in alone] == [r["class"] for r in rows]
    for a, b in zip(alone, rows, strict=True):  # batched matrix products round differently
        assert all(abs(float(a[c]) - float(b[c])) < 1e-5 for c in classes)
    assert predict.main([str(trained), str(folder), "--csv", str(tmp_path)]) == 2
    assert f"--csv {tmp_path}: a folder" in capsys.readouterr().err


def test_predict_normalises_as_training_did(trained, synthetic_dir):
    """On the test files, predict's normalisation and network give the run's test accuracy."""
    run = load_trained(trained / "checkpoints" / "best.ckpt")
    prep = predict.input_preparation(run)
    assert prep["channels"] == 1 and prep["size"] == (28, 28) and prep["std"] > 0
    images = read_idx(synthetic_dir / "t10k-images-idx3-ubyte.gz", ndim=3)
    labels = read_idx(synthetic_dir / "t10k-labels-idx1-ubyte.gz", ndim=1).long()
    predicted = predict.classify(run.module, prep, images.unsqueeze(1)).argmax(dim=1)
    accuracy = (predicted == labels).float().mean().item()
    summary = json.loads((trained / "summary.json").read_text())
    assert accuracy == pytest.approx(summary["test_acc"], abs=1e-6)


def test_eval_says_how_to_read_data_that_has_moved(tmp_path, synthetic_dir):
    """The run's data folder is gone: the error says eval.py's data_dir= points elsewhere, and
    that works."""
    from goodfit.runtime.errors import DataNotFoundError
    from goodfit.tasks.evaluate import _test_data

    def run_config(data_dir):
        return OmegaConf.create({"datamodule": {
            "_target_": "goodfit.data.fashion_mnist.FashionMNISTDataModule",
            "data_dir": str(data_dir), "system_dir": str(tmp_path / "none"),
            "download": False, "verify_checksums": False,
        }})  # fmt: skip

    with pytest.raises(DataNotFoundError) as refused:
        _test_data(run_config(tmp_path / "gone"), None)
    assert str(tmp_path / "gone") in str(refused.value)
    assert "give eval.py data_dir=<the folder it is in now>" in str(refused.value)
    with pytest.raises(DataNotFoundError) as refused:  # a folder given that holds nothing
        _test_data(run_config(tmp_path / "gone"), str(tmp_path / "empty"))
    assert "eval.py data_dir" not in str(refused.value)
    datamodule = _test_data(run_config(tmp_path / "gone"), str(synthetic_dir))
    assert str(datamodule.data_dir) == str(synthetic_dir)
    # a folder given that does not exist, where a system copy would be read instead: refused
    config = run_config(tmp_path / "gone")
    config.datamodule.system_dir = str(synthetic_dir)
    with pytest.raises(ConfigError, match=r"data_dir=.*typo: no such folder\. Give the folder"):
        _test_data(config, str(tmp_path / "typo"))
