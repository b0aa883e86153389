"""Any data set of four IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST, your own): the file
names, class names and checksums come from the config (conf/datamodule/mnist.yaml)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from goodfit.data.idx import IDXError, read_idx
from goodfit.data.in_memory import InMemoryDataModule, RawData
from goodfit.data.locate import FILES, FoundFiles, IDXFiles, locate
from goodfit.runtime.errors import ConfigError


def content_sha256(array: torch.Tensor) -> str:
    """SHA-256 of a decoded file's bytes (header excluded): a gzip'd and a plain copy agree."""
    return hashlib.sha256(array.numpy().tobytes()).hexdigest()


def check_part(raw: dict[str, torch.Tensor], paths: Mapping[str, Path], part: str,
               n_classes: int, image_hw: Sequence[int] | None) -> None:  # fmt: skip
    """One split's images and labels agree: sizes, counts, label range."""
    images, labels = raw[f"{part}_images"], raw[f"{part}_labels"]
    img_path, lbl_path = paths[f"{part}_images"], paths[f"{part}_labels"]
    if image_hw is not None and tuple(images.shape[1:]) != tuple(image_hw):
        raise IDXError(
            f"{img_path}: images are {tuple(images.shape[1:])}, expected {tuple(image_hw)}"
        )
    if len(images) != len(labels):
        raise IDXError(f"{lbl_path}: {len(labels)} labels for {len(images)} images in {img_path}")
    if len(labels) and int(labels.max()) >= n_classes:
        raise IDXError(f"{lbl_path}: label {int(labels.max())} outside 0..{n_classes - 1}")


def load_raw(found: FoundFiles, spec: IDXFiles, class_names: Sequence[str],
             checksums: Mapping[str, str] | None = None,
             standard_sizes: Mapping[str, int] | None = None,
             image_hw: Sequence[int] | None = None,
             label_offset: int = 0) -> dict[str, torch.Tensor]:  # fmt: skip
    """Decode and check the four files: shapes, matching counts, label range, checksums (of the
    files whose number of samples is the standard one, when `standard_sizes` is given)."""
    raw = {
        key: read_idx(path, ndim=3 if key.endswith("images") else 1)
        for key, path in found.paths.items()
    }
    for key, expected in (checksums or {}).items():
        part = key.split("_")[0]
        if standard_sizes is not None and len(raw[key]) != standard_sizes.get(part):
            continue
        digest = content_sha256(raw[key])
        if digest != expected:
            raise IDXError(
                f"{found.paths[key]}: content differs from the standard {spec.name} file "
                f"(SHA-256 {digest[:12]}…); reinstall the data, or set "
                "datamodule.verify_checksums=false for a modified copy"
            )
    for part in ("train", "test"):
        labels, path = raw[f"{part}_labels"], found.paths[f"{part}_labels"]
        if label_offset and len(labels) and int(labels.min()) < label_offset:
            raise IDXError(f"{path}: label {int(labels.min())} below "
                           f"datamodule.label_offset={label_offset}")  # fmt: skip
        raw[f"{part}_labels"] = labels.long() - label_offset
        check_part(raw, found.paths, part, len(class_names), image_hw)
    if raw["train_images"].shape[1:] != raw["test_images"].shape[1:]:
        raise IDXError(f"{found.paths['test_images']}: images are "
                       f"{tuple(raw['test_images'].shape[1:])}, the training images "
                       f"{tuple(raw['train_images'].shape[1:])}")  # fmt: skip
    return raw


class IDXDataModule(InMemoryDataModule):
    """A data set of four IDX files, held in memory.

    Args:
        data_dir: the folder of the four files (or of torchvision's `<torchvision_name>/raw`).
        name: the data set's name, in messages.
        class_names: one name per label, in label order.
        files: the four file names (keys train_images, train_labels, test_images,
            test_labels), each found plain or with `.gz`.
        checksums: SHA-256 of each file's decoded bytes (header excluded), or None.
        standard_sizes: {"train": n, "test": n}: check only files of that many samples.
        torchvision_name / torchvision_kwargs: torchvision's class, for its folder layout and
            `download=true`.
        system_dir: a second folder to look in.
        transpose: swap height and width (EMNIST stores its images transposed).
        label_offset: subtracted from every label (EMNIST letters count from 1).
        image_hw: the (height, width) every image must have, or None for any.
        install_hint: the start of the message when the files are not found.
        The rest: see InMemoryDataModule.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        name: str = "MNIST",
        class_names: Sequence[str] = tuple(str(d) for d in range(10)),
        files: Mapping[str, str] | None = None,
        checksums: Mapping[str, str] | None = None,
        standard_sizes: Mapping[str, int] | None = None,
        torchvision_name: str | None = None,
        torchvision_kwargs: Mapping[str, Any] | None = None,
        system_dir: str | None = None,
        download: bool = False,
        verify_checksums: bool = True,
        transpose: bool = False,
        label_offset: int = 0,
        image_hw: Sequence[int] | None = None,
        install_hint: str = "Put the four IDX files (gzip or plain) in datamodule.data_dir: ",
        **common: Any,
    ) -> None:
        files = dict(files or FILES)
        if set(files) != set(FILES):
            raise ConfigError(
                f"datamodule.files: keys {sorted(files)}; must be exactly {sorted(FILES)}"
            )
        super().__init__(known_class_names=tuple(str(n) for n in class_names), **common)
        self.title = name
        self.spec = IDXFiles(
            name, files, torchvision_name, dict(torchvision_kwargs or {}), install_hint
        )
        self.data_dir, self.system_dir, self.download = data_dir, system_dir, download
        self.checksums = checksums if verify_checksums else None
        self.standard_sizes = standard_sizes
        self.verify_checksums = verify_checksums
        self.transpose, self.label_offset, self.image_hw = transpose, label_offset, image_hw
        self.files: FoundFiles | None = None

    def prepare_data(self) -> None:
        """Find (or download, when asked) the files once, before any process reads them."""
        self.files = locate(self.data_dir, self.system_dir, self.download, self.spec)

    def read(self) -> RawData:
        if self.files is None:
            self.files = locate(self.data_dir, self.system_dir, False, self.spec)
        raw = load_raw(self.files, self.spec, self.all_class_names, self.checksums,
                       self.standard_sizes, self.image_hw, self.label_offset)  # fmt: skip
        if self.transpose:
            for key in ("train_images", "test_images"):
                raw[key] = raw[key].transpose(1, 2).contiguous()
        return RawData(
            train=(raw["train_images"], raw["train_labels"]),
            test=(raw["test_images"], raw["test_labels"]),
            class_names=self.all_class_names,
            source=str(self.files.folder),
        )
