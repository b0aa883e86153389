"""Find the four Fashion-MNIST IDX files on disk, or download them as a last resort."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

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

INSTALL_HINT = (
    "Install the data with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
    "or put the four IDX files (gzip or plain) in datamodule.data_dir: " + ", ".join(FILES.values())
)


@dataclass(frozen=True)
class FoundFiles:
    folder: Path
    paths: dict[str, Path]


def _file_in(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def files_in(folder: Path) -> FoundFiles | None:
    """The four files in `folder`, None when none is there; an error when only some are."""
    paths = {key: _file_in(folder, stem) for key, stem in FILES.items()}
    missing = [FILES[key] for key, path in paths.items() if path is None]
    if len(missing) == len(FILES):
        return None
    if missing:
        raise DataNotFoundError(
            f"{folder}: incomplete Fashion-MNIST copy, missing {', '.join(missing)} "
            "(plain or .gz). Add the missing files or remove the folder."
        )
    return FoundFiles(folder, {key: path for key, path in paths.items() if path})


def candidate_folders(data_dir: Path | None, system_dir: Path | None) -> list[Path]:
    """The folders searched, in order: data_dir, its torchvision layout, the system package."""
    folders = []
    if data_dir is not None:
        folders += [data_dir, data_dir / "FashionMNIST" / "raw"]
    if system_dir is not None:
        folders.append(system_dir)
    return folders


def locate(
    data_dir: str | Path | None,
    system_dir: str | Path | None = SYSTEM_DIR,
    download: bool = True,
) -> FoundFiles:
    """Find the data: `data_dir` (plain or `FashionMNIST/raw`), then `system_dir`, then download.

    A damaged or incomplete copy where the user pointed is an error, never a reason to read
    another copy quietly (the caller validates the files it is given).
    """
    data_dir = Path(data_dir).expanduser() if data_dir else None
    system_dir = Path(system_dir) if system_dir else None
    tried = candidate_folders(data_dir, system_dir)
    for folder in tried:
        found = files_in(folder)
        if found is not None:
            return found

    download_error = ""
    if download and data_dir is not None:
        try:
            return _download(data_dir)
        except Exception as err:  # any failure of the last resort is reported with the rest
            download_error = f"\n  download into {data_dir} with torchvision failed: {err}"
    elif data_dir is None:
        download_error = "\n  no download: datamodule.data_dir is not set"
    else:
        download_error = "\n  no download: datamodule.download is false"
    places = "\n".join(f"  {folder}" for folder in tried)
    raise DataNotFoundError(
        f"Fashion-MNIST not found. Looked in:\n{places}{download_error}\n{INSTALL_HINT}"
    )


def _download(data_dir: Path) -> FoundFiles:
    from torchvision.datasets import FashionMNIST

    log.info("Fashion-MNIST not found on disk; downloading into %s", data_dir)
    FashionMNIST(root=str(data_dir), train=True, download=True)
    FashionMNIST(root=str(data_dir), train=False, download=True)
    found = files_in(data_dir / "FashionMNIST" / "raw")
    if found is None:
        raise DataNotFoundError(f"torchvision reported success but {data_dir} holds no files")
    return found
