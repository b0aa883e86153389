"""Find the four IDX files of a data set on disk, or download them when asked."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goodfit.runtime.errors import DataNotFoundError

log = logging.getLogger(__name__)

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's `dataset-fashion-mnist` package installs the files."""

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""The four files' names (MNIST's, which Fashion-MNIST and KMNIST keep), plain or with .gz."""


@dataclass(frozen=True)
class IDXFiles:
    """What to look for: the files' names (keys of FILES), the data set's name, and its
    torchvision class (whose `<name>/raw` folder is searched and which can download it)."""

    name: str = "Fashion-MNIST"
    files: Mapping[str, str] = field(default_factory=lambda: dict(FILES))
    torchvision_name: str | None = "FashionMNIST"
    torchvision_kwargs: Mapping[str, Any] = field(default_factory=dict)
    install_hint: str = (
        "Install the data with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
        "or put the four IDX files (gzip or plain) in datamodule.data_dir: "
    )

    def hint(self) -> str:
        return self.install_hint + ", ".join(self.files.values())


FASHION_MNIST = IDXFiles()
INSTALL_HINT = FASHION_MNIST.hint()


@dataclass(frozen=True)
class FoundFiles:
    folder: Path
    paths: dict[str, Path]


def _file_in(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def files_in(folder: Path, spec: IDXFiles = FASHION_MNIST) -> FoundFiles | None:
    """The four files in `folder`, None when none is there; an error when only some are."""
    paths = {key: _file_in(folder, stem) for key, stem in spec.files.items()}
    missing = [spec.files[key] for key, path in paths.items() if path is None]
    if len(missing) == len(spec.files):
        return None
    if missing:
        raise DataNotFoundError(
            f"{folder}: incomplete {spec.name} copy, missing {', '.join(missing)} "
            "(plain or .gz). Add the missing files or remove the folder."
        )
    return FoundFiles(folder, {key: path for key, path in paths.items() if path})


def candidate_folders(data_dir: Path | None, system_dir: Path | None,
                      spec: IDXFiles = FASHION_MNIST) -> list[Path]:  # fmt: skip
    """The folders searched, in order: data_dir, its torchvision layout, the system package."""
    folders = []
    if data_dir is not None:
        folders.append(data_dir)
        if spec.torchvision_name:
            folders.append(data_dir / spec.torchvision_name / "raw")
    if system_dir is not None:
        folders.append(system_dir)
    return folders


def locate(
    data_dir: str | Path | None,
    system_dir: str | Path | None = SYSTEM_DIR,
    download: bool = True,
    spec: IDXFiles = FASHION_MNIST,
) -> FoundFiles:
    """Find the data: `data_dir` (plain or `<torchvision name>/raw`), then `system_dir`, then
    download (when `download`).

    A damaged or incomplete copy where the user pointed is an error, never a reason to read
    another copy quietly (the caller validates the files it is given).
    """
    data_dir = Path(data_dir).expanduser() if data_dir else None
    system_dir = Path(system_dir) if system_dir else None
    tried = candidate_folders(data_dir, system_dir, spec)
    for folder in tried:
        found = files_in(folder, spec)
        if found is not None:
            return found

    download_error = ""
    if download and data_dir is not None and spec.torchvision_name:
        try:
            return _download(data_dir, spec)
        except Exception as err:  # any failure of the last resort is reported with the rest
            download_error = f"\n  download into {data_dir} with torchvision failed: {err}"
    elif data_dir is None:
        download_error = "\n  no download: datamodule.data_dir is not set"
    elif not spec.torchvision_name:
        download_error = "\n  no download: torchvision does not know this data set"
    else:
        download_error = "\n  no download: datamodule.download is false"
    places = "\n".join(f"  {folder}" for folder in tried)
    raise DataNotFoundError(
        f"{spec.name} not found. Looked in:\n{places}{download_error}\n{spec.hint()}"
    )


def _download(data_dir: Path, spec: IDXFiles = FASHION_MNIST) -> FoundFiles:
    import torchvision.datasets

    log.info("%s not found on disk; downloading into %s", spec.name, data_dir)
    dataset = getattr(torchvision.datasets, str(spec.torchvision_name))
    for train in (True, False):
        dataset(root=str(data_dir), train=train, download=True, **spec.torchvision_kwargs)
    found = files_in(data_dir / str(spec.torchvision_name) / "raw", spec)
    if found is None:
        raise DataNotFoundError(f"torchvision reported success but {data_dir} holds no files")
    return found
