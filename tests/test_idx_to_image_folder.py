"""scripts/idx_to_image_folder.py: IDX files written as an image folder that goodfit reads back
to the same pixels, in the same order (so a tail validation split is the same images)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from goodfit.data import idx
from goodfit.data.fashion_mnist import CLASS_NAMES, FashionMNISTDataModule
from goodfit.data.idx_data import content_sha256
from goodfit.data.image_folder import ImageFolderDataModule

from .conftest import ROOT, write_fashion_like


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "idx_to_image_folder.py"),
                           *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_fashion_mnist_as_an_image_folder_reads_back_the_same(tmp_path):
    source = write_fashion_like(tmp_path / "idx", n_train=100, n_test=30)
    out = tmp_path / "folder"
    result = run_script(str(out), "--data-dir", str(source))
    assert result.returncode == 0, result.stderr
    assert "100 images" in result.stdout and "30 images" in result.stdout
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(
        n.replace("/", "_") for n in CLASS_NAMES
    )
    assert (out / "train" / "T-shirt_top").is_dir()

    split = {"val_split": 0.1, "val_split_mode": "tail"}
    folder = ImageFolderDataModule(str(out), num_workers=2, cache=False, **split)
    folder.setup()
    reference = FashionMNISTDataModule(str(source), system_dir=None, download=False, **split)
    reference.setup()
    assert folder.image_shape == reference.image_shape == (1, 28, 28)
    # the folder's classes are its sorted folder names: map them back to Fashion-MNIST's
    to_idx = torch.tensor([[n.replace("/", "_") for n in CLASS_NAMES].index(name)
                           for name in folder.class_names])  # fmt: skip
    for part in ("train", "val", "test"):
        mine, theirs = getattr(folder, part), getattr(reference, part)
        assert torch.equal(mine.images, theirs.images), part
        assert torch.equal(to_idx[mine.labels], theirs.labels), part


def test_missing_data_is_reported(tmp_path):
    result = run_script(str(tmp_path / "out"), "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 2
    assert "not found" in result.stderr and str(tmp_path / "none") in result.stderr


def test_idx_digest_command(tmp_path, capsys):
    source = write_fashion_like(tmp_path / "idx", n_train=20, n_test=10)
    path = source / "t10k-labels-idx1-ubyte.gz"
    assert idx.main([str(path)]) == 0
    expected = content_sha256(idx.read_idx(path, ndim=1))
    assert capsys.readouterr().out == f"{expected}  (10,)  {path}\n"
