"""Read IDX files (the format of MNIST and Fashion-MNIST), gzip-compressed or plain.

`python -m goodfit.data.idx FILE …` prints each file's shape and the SHA-256 of its decoded
bytes (header excluded), the value `checksums` in conf/datamodule/mnist.yaml takes."""

from __future__ import annotations

import gzip
import hashlib
import math
import sys
from pathlib import Path

import numpy as np
import torch

from goodfit.runtime.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08


class IDXError(DataError):
    """An IDX file is missing, damaged, or not what was expected. The message names the file."""


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise IDXError(f"{path}: cannot be read ({err.strerror or err})") from err
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise IDXError(
            f"{path}: damaged gzip data ({err}); delete it and reinstall the data"
        ) from err


def read_idx(path: str | Path, ndim: int) -> torch.Tensor:
    """Decode an unsigned-byte IDX file with `ndim` dimensions into a uint8 tensor.

    The header is checked (magic number, dtype, number of dimensions) and so is the length
    of the data: a truncated or padded file is refused with the file named.
    """
    path = Path(path)
    data = _read_bytes(path)
    header_len = 4 + 4 * ndim
    if len(data) < 4:
        raise IDXError(f"{path}: only {len(data)} bytes, too short for an IDX header")
    zero, dtype, file_ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype != _UBYTE or file_ndim != ndim:
        magic = int.from_bytes(data[:4], "big")
        expected = (_UBYTE << 8) | ndim
        raise IDXError(
            f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected:08x} "
            f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''}); is this the right file?"
        )
    if len(data) < header_len:
        raise IDXError(f"{path}: only {len(data)} bytes, too short for an IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_len = header_len + math.prod(shape)
    if len(data) != expected_len:
        what = "truncated" if len(data) < expected_len else "longer than its header says"
        raise IDXError(
            f"{path}: {what}: header says shape {shape} ({expected_len} bytes), "
            f"file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)
    return torch.from_numpy(array.copy())


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write a uint8 array as an IDX file (gzip when the name ends in .gz or `compress`)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=1)
    path.write_bytes(payload)
    return path


def main(argv: list[str]) -> int:
    """Print `<sha256>  <shape>  <file>` for each IDX file named (images: 3 dimensions)."""
    for name in argv:
        path = Path(name)
        try:
            data = _read_bytes(path)
            ndim = data[3] if len(data) > 3 else 0
            array = read_idx(path, ndim=ndim)
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        digest = hashlib.sha256(array.numpy().tobytes()).hexdigest()
        print(f"{digest}  {tuple(array.shape)}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
