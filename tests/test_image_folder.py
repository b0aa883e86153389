"""Image folders: layout, decoding (in worker processes), sizes and channels, bad images, the
cache and its safety."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from goodfit.data import decode, folder_cache
from goodfit.data.folder import list_folder
from goodfit.data.image_folder import ImageFolderDataModule
from goodfit.runtime.errors import ConfigError, DataError, DataNotFoundError

from .data_files import write_image_folder


def _module(root, **kwargs) -> ImageFolderDataModule:
    kwargs.setdefault("num_workers", 1)
    dm = ImageFolderDataModule(str(root), **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_classes_are_the_sorted_folder_names_and_files_keep_their_number_order(tmp_path):
    root = write_image_folder(tmp_path / "pool", classes=("zebra", "ant", "moth"), per_class=4)
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / "ant" / ".hidden.png").write_bytes(b"")
    listing = list_folder(root)
    assert listing.class_names == ("ant", "moth", "zebra")
    assert not listing.has_splits
    numbers = [int(os.path.basename(p)[:4]) for p in listing.paths]
    assert numbers == sorted(numbers) and len(numbers) == 12
    # written zebra, ant, moth, zebra, …: labels follow the sorted names
    assert listing.labels[:3] == [2, 0, 1]


def test_split_sub_folders_are_the_splits(tmp_path):
    root = write_image_folder(tmp_path / "f", splits=("train", "val", "test"), per_class=6,
                              some_gray=True)  # fmt: skip
    dm = _module(root, val_split=0.5)
    assert dm.class_names == ("cat", "dog", "owl")
    # the folder's own validation split, not a cut of training
    assert dm.sizes == {"n_train": 18, "n_val": 6, "n_test": 6}
    assert dm.image_shape == (3, 12, 10), "RGB (some images are gray), the most common size"
    assert dm.train.images.dtype == torch.float32


def test_without_split_folders_test_and_validation_are_seeded_cuts(tmp_path):
    root = write_image_folder(tmp_path / "pool", per_class=10, gray=True, size=(11, 13),
                              odd=(20, 20))  # fmt: skip
    a = _module(root, test_split=0.2, val_split=0.25, seed=1, cache=False)
    b = _module(root, test_split=0.2, val_split=0.25, seed=2, cache=False)
    assert a.image_shape == (1, 11, 13), "gray, non-square, the most common size"
    assert a.sizes == {"n_train": 18, "n_val": 6, "n_test": 6}
    # the test split depends on split_seed only: runs with other seeds test on the same images
    assert torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.val.images, b.val.images)
    c = _module(root, test_split=0.2, val_split=0.25, seed=1, split_seed=5, cache=False)
    assert not torch.equal(a.test.images, c.test.images)


def test_configured_size_and_channels(tmp_path):
    root = write_image_folder(tmp_path / "f", per_class=3)
    dm = _module(root, image_size=[7, 9], channels=1, cache=False)
    assert dm.image_shape == (1, 7, 9)
    assert _module(root, image_size=16, cache=False).image_shape == (3, 16, 16)


def test_parallel_decoding_equals_one_process(tmp_path):
    root = write_image_folder(tmp_path / "f", per_class=8, some_gray=True)
    one = _module(root, num_workers=1, cache=False)
    two = _module(root, num_workers=2, cache=False)
    assert torch.equal(one.train.images, two.train.images)
    assert torch.equal(one.test.labels, two.test.labels)


def test_decoding_matches_predict_reading(tmp_path):
    """Training data and images given to predict are converted and resized the same way."""
    from goodfit.data.images import read_image

    root = write_image_folder(tmp_path / "f", per_class=2, odd=(15, 9))
    listing = list_folder(root)
    odd = next(p for p in listing.paths if Image.open(root / p).size == (9, 15))
    batch, failed = decode.decode_chunk([str(root / odd)], 3, (12, 10))
    assert failed == []
    assert torch.equal(torch.from_numpy(batch[0]), read_image(root / odd, 3, (12, 10)))


# ---------------------------------------------------------------- refusals, naming the folder


def test_folder_without_class_sub_folders_refused(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match=f"{tmp_path / 'flat'}: no class sub-folders"):
        list_folder(tmp_path / "flat")


def test_class_without_images_refused(tmp_path):
    root = write_image_folder(tmp_path / "f", per_class=2)
    (root / "empty").mkdir()
    (root / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=f"{root / 'empty'}: class 'empty' has no images"):
        list_folder(root)


def test_split_with_other_classes_refused(tmp_path):
    root = write_image_folder(tmp_path / "f", splits=("train", "test"), per_class=3)
    shutil.rmtree(root / "test" / "owl")
    with pytest.raises(DataError, match=rf"{root / 'test'}: its classes differ .*'owl'"):
        list_folder(root)


def test_missing_folder_and_unset_folder_refused(tmp_path):
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "nope")):
        list_folder(tmp_path / "nope")
    with pytest.raises(ConfigError, match="datamodule.data_dir is not set"):
        ImageFolderDataModule(None).prepare_data()


# ----------------------------------------------------------------------------- bad images


def _with_bad_image(tmp_path):
    root = write_image_folder(tmp_path / "f", per_class=4)
    bad = root / "dog" / "0099.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    return root, bad


def test_undecodable_image_stops_with_its_path(tmp_path):
    root, bad = _with_bad_image(tmp_path)
    with pytest.raises(DataError, match=rf"(?s){bad}: cannot read image.*skip_bad_images=true"):
        _module(root)
    assert not (root / folder_cache.CACHE_NAME).exists()


@pytest.mark.parametrize("size", [None, 12], ids=["size found", "size given"])
def test_undecodable_image_skipped_logged_and_counted(tmp_path, caplog, size):
    root, bad = _with_bad_image(tmp_path)
    with caplog.at_level(logging.WARNING):
        dm = _module(root, skip_bad_images=True, image_size=size, channels=3)
    assert f"Skipped an image that cannot be decoded: {bad}" in caplog.text
    assert dm.summary_facts == {"skipped_images": 1, "skipped_paths": ["dog/0099.png"]}
    assert sum(dm.sizes.values()) == 12


def test_a_class_left_without_readable_images_is_refused(tmp_path):
    root = write_image_folder(tmp_path / "f", per_class=3)
    for path in (root / "owl").iterdir():
        path.write_bytes(b"broken")
    for settings in ({}, {"image_size": 8, "channels": 3}):  # found by a first pass, or not
        with pytest.raises(DataError, match=f"{root / 'owl'}: class 'owl' has no readable"):
            _module(root, skip_bad_images=True, **settings)


# ---------------------------------------------------------------------------------- the cache


def _decodes(monkeypatch) -> list[int]:
    """Count the calls that decode pixels."""
    calls = []
    original = decode.decode_chunk

    def counting(paths, *args):
        calls.append(len(paths))
        return original(paths, *args)

    monkeypatch.setattr("goodfit.data.image_folder.decode_chunk", counting)
    return calls


def test_cache_reused_then_rebuilt_when_a_file_or_a_setting_changes(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "f", per_class=4)
    calls = _decodes(monkeypatch)
    first = _module(root)
    assert (root / folder_cache.CACHE_NAME).is_file() and sum(calls) == 12
    second = _module(root)
    assert sum(calls) == 12, "the second start reads the cache"
    assert torch.equal(first.train.images, second.train.images)

    changed = root / "cat" / sorted(os.listdir(root / "cat"))[0]
    Image.fromarray(np.full((12, 10, 3), 255, np.uint8)).save(changed, format="PNG")
    os.utime(changed, ns=(1, 1))  # another modification time, even on a coarse clock
    third = _module(root)
    assert sum(calls) == 24, "a changed file rebuilds the cache"
    assert not torch.equal(torch.cat([first.train.images, first.val.images, first.test.images]),
                           torch.cat([third.train.images, third.val.images,
                                      third.test.images]))  # fmt: skip
    _module(root, image_size=8)
    assert sum(calls) == 36, "other settings rebuild it"
    _module(root, cache_dir=str(tmp_path / "elsewhere"))
    assert len(list((tmp_path / "elsewhere").glob("goodfit-images-*.npz"))) == 1


def test_no_cache_when_switched_off(tmp_path):
    root = write_image_folder(tmp_path / "f", per_class=2)
    _module(root, cache=False)
    assert not (root / folder_cache.CACHE_NAME).exists()


def _run_marker(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    return Payload()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickled", "foreign npz"])
def test_damaged_or_foreign_cache_is_rebuilt_never_trusted(tmp_path, monkeypatch, caplog, damage):
    root = write_image_folder(tmp_path / "f", per_class=3)
    good = _module(root)
    cache = root / folder_cache.CACHE_NAME
    if damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:-300])
    elif damage == "garbage":
        cache.write_bytes(b"\x00" * 100)
    elif damage == "pickled":
        cache.write_bytes(pickle.dumps(_run_marker(tmp_path)))
    else:  # the right format and key, but images that are pickled objects which would run code
        arrays = {"format": np.array(folder_cache.FORMAT), "key": np.array(good._key(good.listing)),
                  "images": np.array([_run_marker(tmp_path)], dtype=object)}  # fmt: skip
        with zipfile.ZipFile(cache, "w") as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w") as member:
                    np.save(member, array, allow_pickle=True)
    calls = _decodes(monkeypatch)
    with caplog.at_level(logging.INFO):
        again = _module(root)
    assert not (tmp_path / "pwned").exists(), "nothing in the cache ran"
    assert sum(calls) == 9, "rebuilt from the images"
    assert "rebuilding it" in caplog.text
    assert torch.equal(good.train.images, again.train.images)
    assert folder_cache.load(cache, "any key") is None  # the rebuilt one has another key
