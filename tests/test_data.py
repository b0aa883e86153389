"""Locating the data, checking it, splitting it, and cutting batches from memory."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from goodfit.data import fashion_mnist as fm
from goodfit.data.batches import TensorBatches
from goodfit.data.idx import IDXError, write_idx
from goodfit.data.locate import DataNotFoundError, locate

from .conftest import write_fashion_like


def test_locate_prefers_data_dir(tmp_path):
    mine = write_fashion_like(tmp_path / "mine", 20, 10)
    system = write_fashion_like(tmp_path / "system", 20, 10)
    assert locate(mine, system).folder == mine


def test_locate_torchvision_raw_layout(tmp_path):
    write_fashion_like(tmp_path / "FashionMNIST" / "raw", 20, 10, gz=False)
    found = locate(tmp_path, None, download=False)
    assert found.folder == tmp_path / "FashionMNIST" / "raw"


def test_locate_falls_back_to_system_dir(tmp_path):
    system = write_fashion_like(tmp_path / "system", 20, 10)
    assert locate(tmp_path / "empty", system, download=False).folder == system


def test_not_found_lists_every_place_and_how_to_install(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        locate(tmp_path / "a", tmp_path / "sys", download=False)
    message = str(err.value)
    for place in (tmp_path / "a", tmp_path / "a" / "FashionMNIST" / "raw", tmp_path / "sys"):
        assert str(place) in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_failed_download_is_reported_with_the_places(tmp_path, monkeypatch):
    def offline(data_dir, spec=None):
        raise OSError("no network")

    monkeypatch.setattr("goodfit.data.locate._download", offline)
    with pytest.raises(DataNotFoundError, match="download into .* failed: no network"):
        locate(tmp_path / "a", None, download=True)


def test_incomplete_copy_is_an_error_not_skipped(tmp_path):
    mine = write_fashion_like(tmp_path / "mine", 20, 10)
    (mine / "t10k-labels-idx1-ubyte.gz").unlink()
    system = write_fashion_like(tmp_path / "system", 20, 10)
    with pytest.raises(DataNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        locate(mine, system)


def _module(data_dir, **kwargs) -> fm.FashionMNISTDataModule:
    return fm.FashionMNISTDataModule(str(data_dir), system_dir=None, download=False, **kwargs)


def test_damaged_file_in_data_dir_is_an_error(tmp_path):
    mine = write_fashion_like(tmp_path / "mine", 20, 10)
    path = mine / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:50])
    dm = _module(mine)
    dm.prepare_data()
    with pytest.raises(IDXError, match="train-images-idx3-ubyte.gz"):
        dm.load()


def test_labels_out_of_range_refused(tmp_path):
    mine = write_fashion_like(tmp_path / "mine", 20, 10)
    write_idx(mine / "t10k-labels-idx1-ubyte.gz", np.full(10, 11, dtype=np.uint8))
    dm = _module(mine)
    dm.prepare_data()
    with pytest.raises(IDXError, match="t10k-labels-idx1-ubyte.gz: label 11 outside 0..9"):
        dm.load()


def test_count_mismatch_refused(tmp_path):
    mine = write_fashion_like(tmp_path / "mine", 20, 10)
    write_idx(mine / "train-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    dm = _module(mine)
    dm.prepare_data()
    with pytest.raises(IDXError, match="19 labels for 20 images"):
        dm.load()


def test_checksum_mismatch_on_standard_sized_file(tmp_path, monkeypatch):
    mine = write_fashion_like(tmp_path / "mine", 20, 10)
    monkeypatch.setitem(fm.STANDARD_SIZES, "train", 20)  # treat the toy file as standard-sized
    dm = _module(mine)
    dm.prepare_data()
    with pytest.raises(IDXError, match="differs from the standard Fashion-MNIST"):
        dm.load()
    _module(mine, verify_checksums=False).load()  # the documented way out


def test_data_table_and_normalisation(tmp_path, caplog):
    mine = write_fashion_like(tmp_path / "mine", 100, 30)
    dm = _module(mine, val_split=0.1, val_split_mode="tail")
    with caplog.at_level("INFO"):
        dm.prepare_data()
        dm.setup("fit")
    assert "Sizes:               100, 28, 28" in caplog.text
    assert "Label values min/max 0 to 9" in caplog.text
    assert dm.sizes == {"n_train": 90, "n_val": 10, "n_test": 30}
    assert dm.train.images.dtype == torch.float32
    assert dm.train.images.shape[1:] == (1, 28, 28)
    assert float(dm.train.images.min()) >= 0.0 and float(dm.train.images.max()) <= 1.0

    std = _module(mine, normalize="standardize")
    std.setup()
    assert abs(float(std.train.images.mean())) < 1e-4
    assert abs(float(std.train.images.std()) - 1.0) < 1e-3


def test_tail_split_is_keras_validation_split():
    train, val = fm.split_indices(60_000, 0.06, "tail", seed=0)
    assert len(val) == 3_600 and len(train) == 56_400
    assert val.tolist() == list(range(56_400, 60_000))  # the last fraction, unshuffled
    _, val_bad = fm.split_indices(60_000, 0.01, "tail", seed=0)
    assert len(val_bad) == 600


def test_random_split_is_seeded():
    a = fm.split_indices(1000, 0.2, "random", seed=1)
    b = fm.split_indices(1000, 0.2, "random", seed=1)
    c = fm.split_indices(1000, 0.2, "random", seed=2)
    assert torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])
    assert sorted(a[0].tolist() + a[1].tolist()) == list(range(1000))


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1])
def test_val_split_outside_unit_interval_refused(bad):
    with pytest.raises(ValueError, match=f"datamodule.val_split={bad}"):
        fm.split_indices(100, bad, "tail", seed=0)


def test_batches_cover_every_sample_once_in_a_seeded_order():
    images = torch.arange(103, dtype=torch.float32).view(103, 1, 1, 1).expand(103, 1, 2, 2)
    labels = torch.arange(103)
    loader = TensorBatches(images, labels, batch_size=10, shuffle=True, seed=3)
    assert len(loader) == 11
    epoch0 = torch.cat([y for _, y in loader])
    assert sorted(epoch0.tolist()) == list(range(103))
    for x, y in loader:  # images stay aligned with their labels
        assert torch.equal(x[:, 0, 0, 0], y.float())
    assert torch.equal(epoch0, torch.cat([y for _, y in loader]))  # same epoch, same order
    loader.sampler.set_epoch(1)
    epoch1 = torch.cat([y for _, y in loader])
    assert not torch.equal(epoch0, epoch1)
    again = TensorBatches(images, labels, batch_size=10, shuffle=True, seed=3)
    again.sampler.set_epoch(1)
    assert torch.equal(epoch1, torch.cat([y for _, y in again]))  # order = f(seed, epoch)


def test_eval_batches_keep_natural_order_and_drop_last():
    labels = torch.arange(25)
    loader = TensorBatches(torch.zeros(25, 1, 2, 2), labels, 10, shuffle=False)
    assert torch.equal(torch.cat([y for _, y in loader]), labels)
    assert len(TensorBatches(torch.zeros(25, 1), labels, 10, False, drop_last=True)) == 2


def test_real_files_pass_the_checks(real_data_dir, tmp_path):
    # the system copy, also in torchvision's layout under a data_dir
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for path in real_data_dir.iterdir():
        shutil.copy(path, raw / path.name)
    dm = _module(tmp_path, val_split=0.06, val_split_mode="tail")
    dm.prepare_data()
    dm.setup()
    assert dm.sizes == {"n_train": 56_400, "n_val": 3_600, "n_test": 10_000}
