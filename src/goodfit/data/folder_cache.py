"""The decoded images of an image folder in one file, so a second start skips the decoding.

The file is a numpy .npz archive read with `allow_pickle=False`: only plain arrays, nothing in it
can run code. It holds the key it was built for (the file list, sizes, modification times and
settings); a cache with another key, a damaged one or a foreign file is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from goodfit.runtime.atomic import atomic_path

log = logging.getLogger(__name__)

CACHE_NAME = ".goodfit-cache.npz"
FORMAT = "goodfit-image-cache-1"


@dataclass
class Decoded:
    """Every decoded image of a folder, in listing order, less the skipped ones."""

    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)
    splits: np.ndarray  # int8 (N,): 0 train, 1 val, 2 test
    class_names: tuple[str, ...]
    skipped: tuple[str, ...]  # paths (relative to the folder) of images that could not be read


def cache_path(root: Path, cache_dir: str | Path | None) -> Path:
    """`root/.goodfit-cache.npz`, or a file in `cache_dir` named after the folder's path."""
    if cache_dir is None:
        return root / CACHE_NAME
    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / f"goodfit-images-{name}.npz"


def _strings(values: tuple[str, ...]) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")


def save(path: Path, key: str, decoded: Decoded) -> bool:
    """Write the cache atomically; False (with a warning) when the folder is not writable."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.savez(file, format=np.array(FORMAT), key=np.array(key), images=decoded.images,
                     labels=decoded.labels, splits=decoded.splits,
                     class_names=_strings(decoded.class_names),
                     skipped=_strings(decoded.skipped))  # fmt: skip
    except OSError as err:
        log.warning("Could not write the image cache %s (%s); the next start decodes the images "
                    "again. Set datamodule.cache_dir to a writable folder.", path, err)  # fmt: skip
        return False
    return True


def load(path: Path, key: str) -> Decoded | None:
    """The cache at `path` when it was built for `key` and is whole; None otherwise (a damaged,
    foreign or stale file is reported and left to be rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            if str(archive["format"]) != FORMAT or str(archive["key"]) != key:
                log.info("The image cache %s is for other files or settings; rebuilding it", path)
                return None
            decoded = Decoded(
                images=archive["images"], labels=archive["labels"], splits=archive["splits"],
                class_names=tuple(str(n) for n in archive["class_names"]),
                skipped=tuple(str(p) for p in archive["skipped"]),
            )  # fmt: skip
    except Exception as err:  # any unreadable file (not an archive, truncated, pickled, …)
        log.warning("The image cache %s cannot be read (%s); rebuilding it", path, err)
        return None
    n = len(decoded.labels)
    whole = (decoded.images.dtype == np.uint8 and decoded.images.ndim == 4
             and len(decoded.images) == n == len(decoded.splits))  # fmt: skip
    if not whole:
        log.warning("The image cache %s is damaged; rebuilding it", path)
        return None
    return decoded
