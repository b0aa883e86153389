"""An image folder's layout: its classes (sub-folders), its splits, its files, checked.

`data_dir/<class>/<image>` is one pool of images; `data_dir/{train,test[,val]}/<class>/<image>`
gives the splits. Classes are the sub-folders' names, sorted; every split must have the
training split's classes. Files are ordered by their path inside their class folder, then by
class, so files numbered across the classes (`00001.png`, …) keep their order.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from goodfit.runtime.errors import DataError, DataNotFoundError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif",
                    ".tiff", ".webp")  # fmt: skip
SPLITS = ("train", "val", "test")  # split codes 0, 1, 2
LAYOUT_EXAMPLE = "e.g. data_dir/cat/1.png, data_dir/dog/2.jpg; or data_dir/train/cat/1.png, …"


@dataclass
class Listing:
    """The folder's classes and image files (paths relative to `root`), with their label and
    split code (0 train, 1 val, 2 test) and the (size, mtime) that key the cache."""

    root: Path
    class_names: tuple[str, ...]
    paths: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    splits: list[int] = field(default_factory=list)
    stats: list[tuple[int, int]] = field(default_factory=list)
    has_splits: bool = False

    def folder_of(self, split: int, label: int) -> Path:
        """The class folder of a split (for messages)."""
        base = self.root / SPLITS[split] if self.has_splits else self.root
        return base / self.class_names[label]

    def fingerprint(self) -> str:
        """SHA-256 of every file's path, label, split, size and modification time."""
        digest = hashlib.sha256()
        for item in zip(self.paths, self.labels, self.splits, self.stats, strict=True):
            digest.update(f"{item}\n".encode())
        return digest.hexdigest()


def _visible_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder)
                  if e.is_dir() and not e.name.startswith("."))  # fmt: skip


def _images_in(folder: Path, extensions: tuple[str, ...],
               prefix: str = "") -> list[tuple[str, tuple[int, int]]]:  # fmt: skip
    """Image files below `folder` (any depth), as paths relative to it (`prefix` + name), with
    (size, mtime_ns). Hidden files and folders are left out."""
    found, folders = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                folders.append(entry.name)
            elif entry.name.lower().endswith(extensions):
                stat = entry.stat()
                found.append((prefix + entry.name, (stat.st_size, stat.st_mtime_ns)))
    for name in sorted(folders):
        found += _images_in(folder / name, extensions, f"{prefix}{name}/")
    return found


def image_files(folder: str | Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """The image files below `folder` (any depth, hidden ones left out), in name order."""
    folder = Path(folder)
    return [folder / name for name, _ in sorted(_images_in(folder, extensions))]


def _classes_of(folder: Path) -> list[str]:
    classes = _visible_dirs(folder)
    if not classes:
        raise DataError(
            f"{folder}: no class sub-folders. Put each class's images in a folder of its own "
            f"({LAYOUT_EXAMPLE})"
        )
    return classes


def list_folder(root: str | Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> Listing:
    """The classes and image files of `root`; refuses a folder without class sub-folders, a
    class without images, and a split whose classes differ from training's."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"datamodule.data_dir={root}: no such folder ({LAYOUT_EXAMPLE})")
    top = _visible_dirs(root)
    has_splits = "train" in top and "test" in top
    split_dirs = [(code, root / name) for code, name in enumerate(SPLITS) if name in top]
    if not has_splits:
        split_dirs = [(0, root)]
    class_names = tuple(_classes_of(split_dirs[0][1]))
    listing = Listing(root, class_names, has_splits=has_splits)
    entries = []
    for code, split_dir in split_dirs:
        classes = tuple(_classes_of(split_dir))
        if classes != class_names:
            missing = sorted(set(class_names) - set(classes))
            extra = sorted(set(classes) - set(class_names))
            raise DataError(
                f"{split_dir}: its classes differ from those of {split_dirs[0][1]} "
                f"(missing: {missing or 'none'}; not in training: {extra or 'none'})"
            )
        for label, name in enumerate(class_names):
            images = _images_in(split_dir / name, extensions)
            if not images:
                raise DataError(f"{split_dir / name}: class '{name}' has no images "
                                f"({', '.join(extensions)})")  # fmt: skip
            prefix = f"{SPLITS[code]}/{name}/" if has_splits else f"{name}/"
            entries += [(code, rel, label, prefix + rel, stat) for rel, stat in images]
    entries.sort(key=lambda e: (e[0], e[1], e[2]))  # split, path in its class folder, class
    for code, _, label, path, stat in entries:
        listing.paths.append(path)
        listing.labels.append(label)
        listing.splits.append(code)
        listing.stats.append(stat)
    return listing
