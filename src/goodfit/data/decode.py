"""Decoding image files with Pillow, one file or many in worker processes (numpy and Pillow
only: no torch in the workers)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from goodfit.runtime.errors import DataError

log = logging.getLogger(__name__)

# Pillow modes without colour; a palette image counts as gray when every entry is gray.
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def decode_image(path: str | Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """An image file as uint8 (C, H, W): converted to `channels` (1 gray, 3 RGB) and resized to
    `size` (height, width) bilinearly when it differs. Raises DataError naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            converted = image.convert("L" if channels == 1 else "RGB")
            if converted.size != (size[1], size[0]):
                converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.array(converted, dtype=np.uint8)  # a writable copy
    except Exception as err:  # Pillow raises many kinds (OSError, SyntaxError, ValueError, …)
        raise DataError(f"{path}: cannot read image ({err})") from None
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def _has_colour(image: Any) -> bool:
    if image.mode in GRAY_MODES:
        return False
    if image.mode == "P":
        palette = image.getpalette() or []
        return any(palette[i] != palette[i + 1] or palette[i] != palette[i + 2]
                   for i in range(0, len(palette) - 2, 3))  # fmt: skip
    return True


def probe_chunk(paths: Sequence[str]) -> list[tuple[int, int, bool] | str]:
    """(height, width, has colour) of each file from its header, or why it cannot be read."""
    from PIL import Image

    found: list[tuple[int, int, bool] | str] = []
    for path in paths:
        try:
            with Image.open(path) as image:
                found.append((image.height, image.width, _has_colour(image)))
        except Exception as err:  # noqa: BLE001 (reported with the path by the caller)
            found.append(f"{path}: cannot read image ({err})")
    return found


def decode_chunk(paths: Sequence[str], channels: int,
                 size: tuple[int, int]) -> tuple[np.ndarray, list[tuple[int, str]]]:  # fmt: skip
    """The files decoded as uint8 (n, C, H, W), and (index, message) for those that failed
    (their slots hold zeros)."""
    out = np.zeros((len(paths), channels, *size), dtype=np.uint8)
    failed = []
    for k, path in enumerate(paths):
        try:
            out[k] = decode_image(path, channels, size)
        except DataError as err:
            failed.append((k, str(err)))
    return out, failed


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def map_chunks(function: Callable[..., Any], paths: Sequence[str], workers: int,
               *args: Any) -> list[Any]:  # fmt: skip
    """`function(chunk, *args)` over chunks of `paths`, in `workers` processes (in this one
    when `workers` is 1), in order."""
    if not paths:
        return []
    chunk = max(1, min(2000, -(-len(paths) // (workers * 4))))
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    if workers <= 1 or len(chunks) == 1:
        return [function(c, *args) for c in chunks]
    import multiprocessing

    # `fork` where there is one: `spawn` and `forkserver` import the main script again in each
    # worker, which runs a user's unguarded script twice. The workers touch only Pillow and
    # numpy, never a lock of the parent's threads (torch's, logging's), so forking is safe.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(function, chunks, *([a] * len(chunks) for a in args)))
