"""CIFAR-10 from its python batches (`cifar-10-batches-py/`), held in memory.

The batches are Python pickles. They are read by an unpickler that builds only plain values and
numpy arrays (and refuses anything else a file names), so a tampered file cannot run code.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goodfit.data.in_memory import InMemoryDataModule, RawData
from goodfit.runtime.errors import DataError, DataNotFoundError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

log = logging.getLogger(__name__)

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
# MD5 of the standard files (torchvision's list), checked for batches of the standard size.
STANDARD_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
STANDARD_BATCH = 10_000
FILE_LIST = ", ".join((*TRAIN_BATCHES, TEST_BATCH, META))


class _ArraysOnly(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays; refuses every other global.
    (`_codecs.encode` turns text back into bytes in protocol-2 pickles written by Python 3.)"""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):
            return codecs.encode
        if name == "_reconstruct" and module in ("numpy.core.multiarray",
                                                 "numpy._core.multiarray"):  # fmt: skip
            return _reconstruct  # numpy's own array rebuilder (a py2 pickle names numpy.core)
        raise pickle.UnpicklingError(f"refused to build {module}.{name}")


def read_batch(path: Path) -> dict[str, Any]:
    """One CIFAR python batch as a dict, read without running anything the file names."""
    try:
        with open(path, "rb") as file:
            data = _ArraysOnly(file, encoding="latin1").load()
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: missing (CIFAR-10's {FOLDER} has {FILE_LIST})") from None
    except Exception as err:  # damaged, truncated, or refused by the unpickler
        raise DataError(f"{path}: not a CIFAR-10 batch ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch (holds a {type(data).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in data.items()}


def _images_and_labels(path: Path, n_classes: int, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    batch = read_batch(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:  # fmt: skip
        raise DataError(f"{path}: `data` is not uint8 rows of 3×32×32 pixels")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {labels.size} labels for {len(data)} images")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < n_classes:
        raise DataError(f"{path}: labels outside 0..{n_classes - 1}")
    if verify and len(data) == STANDARD_BATCH and path.name in STANDARD_MD5:
        digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        if digest != STANDARD_MD5[path.name]:
            raise DataError(f"{path}: differs from the standard CIFAR-10 file (MD5 {digest}); "
                            "reinstall it, or set datamodule.verify_checksums=false")  # fmt: skip
    return data.reshape(-1, 3, 32, 32), labels


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10 (50,000 training and 10,000 test images, 3×32×32, ten classes) from
    `data_dir/cifar-10-batches-py/` (or `data_dir` itself), downloaded only when `download`.
    The rest of the arguments are InMemoryDataModule's."""

    title = "CIFAR-10"

    def __init__(self, data_dir: str | None = None, download: bool = False,
                 verify_checksums: bool = True, **common: Any) -> None:  # fmt: skip
        super().__init__(**common)
        self.data_dir, self.download, self.verify_checksums = data_dir, download, verify_checksums
        self.folder: Path | None = None

    def prepare_data(self) -> None:
        """Find the batches (or download them with torchvision when asked)."""
        if not self.data_dir:
            raise DataNotFoundError("datamodule.data_dir is not set: give the folder that holds "
                                    f"{FOLDER}/")  # fmt: skip
        root = Path(self.data_dir).expanduser()
        places = [root / FOLDER, root]
        for place in places:
            if (place / TRAIN_BATCHES[0]).is_file() or (place / META).is_file():
                self.folder = place
                return
        why = "no download: datamodule.download is false"
        if self.download:
            from torchvision.datasets import CIFAR10

            log.info("CIFAR-10 not found on disk; downloading into %s", root)
            try:
                CIFAR10(root=str(root), train=True, download=True)
                self.folder = root / FOLDER
                return
            except Exception as err:  # no network, a refused or broken archive: said with the rest
                why = f"download into {root} with torchvision failed: {err}"
        raise DataNotFoundError(
            "CIFAR-10 not found. Looked in:\n" + "\n".join(f"  {p}" for p in places)
            + f"\n  {why}\nPut CIFAR-10's python version ({FOLDER}/: {FILE_LIST}) in "
            "datamodule.data_dir" + ("" if self.download else ", or set datamodule.download=true")
        )  # fmt: skip

    def read(self) -> RawData:
        if self.folder is None:
            self.prepare_data()
        folder = self.folder
        meta = read_batch(folder / META)
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in meta.get("label_names") or []]  # fmt: skip
        if len(names) < 2:
            raise DataError(f"{folder / META}: no `label_names` (the class names)")
        parts = [_images_and_labels(folder / name, len(names), self.verify_checksums)
                 for name in TRAIN_BATCHES]  # fmt: skip
        test = _images_and_labels(folder / TEST_BATCH, len(names), self.verify_checksums)
        train = (torch.from_numpy(np.concatenate([p[0] for p in parts])),
                 torch.from_numpy(np.concatenate([p[1] for p in parts])))  # fmt: skip
        return RawData(train=train, test=(torch.from_numpy(test[0]), torch.from_numpy(test[1])),
                       class_names=names, source=str(folder))  # fmt: skip
