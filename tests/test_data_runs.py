"""train.py end to end on data a user brings: image folders (with and without split folders),
MNIST-like IDX files and CIFAR-10 batches, each with an MLP and the CNN; predict names a
folder's class; bad folders are refused before training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from goodfit.data.folder_cache import CACHE_NAME
from goodfit.tasks import predict

from .conftest import run_train
from .data_files import CIFAR_NAMES, write_cifar, write_idx_set, write_image_folder
from .test_refusals import assert_refused_without_record

QUICK = ["trainer.max_epochs=4", "trainer.accelerator=cpu", "callbacks.rich_progress_bar=null",
         "optimizer=adam", "datamodule.batch_size=8", "datamodule.eval_batch_size=100",
         "logger=csv"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("data")
    # RGB with some gray images, PNG and JPEG, two sizes (12×10 and 15×9), one file broken
    split = write_image_folder(base / "split", splits=("train", "val", "test"), per_class=10,
                               some_gray=True)  # fmt: skip
    (split / "train" / "dog" / "0999.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken" * 3)
    # gray, non-square 11×13 with some 9×9, no split folders
    pool = write_image_folder(base / "pool", classes=("left", "right"), per_class=16,
                              gray=True, size=(11, 13), odd=(9, 9))  # fmt: skip
    return {"split": split, "pool": pool, "mnist": write_idx_set(base / "mnist"),
            "cifar": write_cifar(base / "cifar")}  # fmt: skip


DATA_ARGS = {
    "split": ["datamodule=image_folder", "datamodule.skip_bad_images=true",
              "datamodule.num_workers=2"],
    "pool": ["datamodule=image_folder", "datamodule.num_workers=1"],
    "mnist": ["datamodule=mnist"],
    "cifar": ["datamodule=cifar10"],
}  # fmt: skip
EXPECTED = {
    "split": (["cat", "dog", "owl"], [3, 12, 10]),
    "pool": (["left", "right"], [1, 11, 13]),
    "mnist": ([str(d) for d in range(10)], [1, 28, 28]),
    "cifar": (CIFAR_NAMES, [3, 32, 32]),
}


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory) -> dict[tuple[str, str], tuple[Path, str]]:
    """Every data set through both kinds of network: each image folder with mlp_good, then cnn
    (the second run finds the cache); the IDX set with mlp_good, CIFAR-10 with cnn."""
    folder = tmp_path_factory.mktemp("runs")
    done = {}
    for name, model in RUNS:
        run_dir = folder / f"{name}-{model}"
        result = run_train(f"model={model}", *DATA_ARGS[name], f"datamodule.data_dir={data[name]}",
                           *QUICK, f"hydra.run.dir={run_dir}")  # fmt: skip
        done[name, model] = (run_dir, result.stdout + result.stderr)
    return done


RUNS = [("split", "mlp_good"), ("split", "cnn"), ("pool", "mlp_good"), ("pool", "cnn"),
        ("mnist", "mlp_good"), ("cifar", "cnn")]  # fmt: skip


@pytest.mark.parametrize(("name", "model"), RUNS)
def test_each_data_set_trains_with_its_own_classes_and_shape(runs, name, model):
    run_dir, _ = runs[name, model]
    summary = json.loads((run_dir / "summary.json").read_text())
    class_names, shape = EXPECTED[name]
    assert summary["status"] == "completed"
    assert list(summary["per_class"]) == class_names
    assert summary["data"]["class_names"] == class_names
    assert summary["data"]["image_shape"] == shape
    for picture in ("confusion_matrix.png", "misclassified.png"):
        assert (run_dir / picture).stat().st_size > 0


def test_skipped_image_is_logged_and_counted(runs, data):
    run_dir, output = runs["split", "mlp_good"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["data"]["skipped_images"] == 1
    assert summary["data"]["skipped_paths"] == ["train/dog/0999.png"]
    broken = data["split"] / "train" / "dog" / "0999.png"
    assert f"Skipped an image that cannot be decoded: {broken}" in output


def test_the_second_run_reads_the_cache(runs, data):
    for name in ("split", "pool"):
        _, first = runs[name, "mlp_good"]
        _, second = runs[name, "cnn"]
        cache = data[name] / CACHE_NAME
        assert f"Decoded images cached in {cache}" in first
        assert f"Images loaded from the cache {cache}" in second
        assert "Decoding" not in second


def test_predict_names_the_folders_class(runs, data, capsys):
    run_dir, _ = runs["split", "mlp_good"]
    images = [sorted((data["split"] / "test" / name).iterdir())[0]
              for name in ("cat", "dog", "owl")]  # fmt: skip
    status = predict.main([str(run_dir / "checkpoints" / "best.ckpt"), *map(str, images)])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    predicted = [line.split(": ", 1)[1].split(" ")[0] for line in out]
    assert predicted == ["cat", "dog", "owl"], out


def test_eval_tests_a_folder_run_as_its_training_did(runs):
    from omegaconf import OmegaConf

    from goodfit.tasks import evaluate

    run_dir, _ = runs["pool", "cnn"]
    summary = json.loads((run_dir / "summary.json").read_text())
    cfg = OmegaConf.create({"ckpt_path": str(run_dir), "data_dir": None, "accelerator": "cpu"})
    result = evaluate.run(cfg)
    assert (result["test_acc"], result["n_test"]) == (summary["test_acc"], summary["n_test"])


# ------------------------------------------------------------------ refusals before training


def _no_class_folders(root: Path) -> Path:
    for folder in [p for p in root.iterdir() if p.is_dir()]:
        for image in folder.iterdir():
            image.rename(root / f"{folder.name}-{image.name}")
        folder.rmdir()
    return root


def _empty_class(root: Path) -> Path:
    for image in (root / "right").iterdir():
        image.unlink()
    return root / "right"


def _broken_image(root: Path) -> Path:
    broken = root / "left" / "0003.png"
    broken.write_bytes(b"GIF89a" + b"\x00" * 20)
    return broken


@pytest.mark.parametrize(
    ("damage", "message"),
    [(_no_class_folders, "no class sub-folders"),
     pytest.param(_empty_class, "class 'right' has no images", marks=pytest.mark.slow),
     (_broken_image, "cannot read image")],
    ids=["no class folders", "empty class", "undecodable image"],
)  # fmt: skip
def test_bad_folder_refused_before_training(data, tmp_path, damage, message):
    root = tmp_path / "images"
    shutil.copytree(data["pool"], root, ignore=shutil.ignore_patterns(CACHE_NAME))
    named = damage(root)
    run_dir = tmp_path / "run"
    result = run_train("datamodule=image_folder", f"datamodule.data_dir={root}", *QUICK,
                       f"hydra.run.dir={run_dir}", check=False)  # fmt: skip
    assert_refused_without_record(result, run_dir, f"{named}", message)


def test_split_with_other_classes_refused_before_training(data, tmp_path):
    root = tmp_path / "images"
    shutil.copytree(data["split"], root, ignore=shutil.ignore_patterns(CACHE_NAME))
    (root / "val" / "owl").rename(root / "val" / "bird")
    run_dir = tmp_path / "run"
    result = run_train("datamodule=image_folder", f"datamodule.data_dir={root}", *QUICK,
                       f"hydra.run.dir={run_dir}", check=False)  # fmt: skip
    assert_refused_without_record(result, run_dir, f"{root / 'val'}: its classes differ")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["datamodule=image_folder"], "datamodule.data_dir is not set"),
     pytest.param(["datamodule=image_folder", "datamodule.data_dir=/no/such/folder"],
                  "/no/such/folder", marks=pytest.mark.slow),
     pytest.param(["datamodule=image_folder", "datamodule.data_dir=/tmp", "datamodule.channels=2"],
                  "datamodule.channels=2 is not allowed", marks=pytest.mark.slow),
     (["datamodule=cifar10", "datamodule.data_dir=/no/such/folder"], "CIFAR-10 not found"),
     pytest.param(["datamodule=mnist", "datamodule.data_dir=/no/such/folder"], "MNIST not found",
                  marks=pytest.mark.slow)],
    ids=["folder not set", "no such folder", "bad channels", "no cifar", "no mnist"],
)  # fmt: skip
def test_missing_data_or_bad_values_refused(tmp_path, args, message):
    run_dir = tmp_path / "run"
    result = run_train(*args, *QUICK, f"hydra.run.dir={run_dir}", check=False)
    assert_refused_without_record(result, run_dir, message)
