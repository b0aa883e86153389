"""IDX reading: gzip and plain, and refusals that name the file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from goodfit.data.idx import IDXError, read_idx, write_idx


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_round_trip_plain_and_gzip(tmp_path, name):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = write_idx(tmp_path / name, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    decoded = read_idx(path, ndim=3)
    assert decoded.dtype.is_floating_point is False
    assert tuple(decoded.shape) == (2, 28, 28)
    assert np.array_equal(decoded.numpy(), array)


def test_gzip_detected_by_content_not_name(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"  # no .gz, yet compressed
    write_idx(path, np.array([1, 2, 3], dtype=np.uint8), compress=True)
    assert read_idx(path, ndim=1).tolist() == [1, 2, 3]


def test_wrong_magic_number_names_the_file(tmp_path):
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))
    with pytest.raises(IDXError, match=r"labels-idx1-ubyte: wrong magic number 0x00000801"):
        read_idx(path, ndim=3)  # a label file where images were expected


def test_truncated_file_names_the_file(tmp_path):
    path = write_idx(tmp_path / "images-idx3-ubyte", np.zeros((4, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IDXError, match=r"images-idx3-ubyte: truncated"):
        read_idx(path, ndim=3)


def test_truncated_gzip_names_the_file(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((50, 28, 28), dtype=np.uint8))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IDXError, match=r"x\.gz: damaged gzip data"):
        read_idx(path, ndim=3)


def test_too_long_file_refused(tmp_path):
    path = tmp_path / "y"
    header = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big")
    path.write_bytes(gzip.compress(header + b"\x01\x02\x03\x04"))
    with pytest.raises(IDXError, match="longer than its header says"):
        read_idx(path, ndim=1)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(IDXError, match="nothere"):
        read_idx(tmp_path / "nothere", ndim=1)
