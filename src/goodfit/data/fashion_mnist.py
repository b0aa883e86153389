"""The Fashion-MNIST LightningDataModule: decode once, keep in memory, cut batches by index."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch
from torch import nn

from goodfit.data.batches import TensorBatches
from goodfit.data.contract import Split
from goodfit.data.idx import IDXError, read_idx
from goodfit.data.images import normalize_images
from goodfit.data.locate import SYSTEM_DIR, FoundFiles, locate

log = logging.getLogger(__name__)

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# SHA-256 of the decoded bytes (header excluded) of the standard files, so a gzip'd and a
# plain copy check alike. Only files with the standard number of samples are checked.
STANDARD_SHA256 = {
    "train_images": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
    "train_labels": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
    "test_images": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
    "test_labels": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
}
STANDARD_SIZES = {"train": 60_000, "test": 10_000}


def load_raw(found: FoundFiles, verify_checksums: bool = True) -> dict[str, torch.Tensor]:
    """Decode and check the four files: shapes, matching counts, label range, checksums."""
    raw = {
        key: read_idx(path, ndim=3 if key.endswith("images") else 1)
        for key, path in found.paths.items()
    }
    for part in ("train", "test"):
        images, labels = raw[f"{part}_images"], raw[f"{part}_labels"]
        img_path, lbl_path = found.paths[f"{part}_images"], found.paths[f"{part}_labels"]
        if tuple(images.shape[1:]) != (28, 28):
            raise IDXError(f"{img_path}: images are {tuple(images.shape[1:])}, expected (28, 28)")
        if len(images) != len(labels):
            raise IDXError(
                f"{lbl_path}: {len(labels)} labels for {len(images)} images in {img_path}"
            )
        if len(labels) and int(labels.max()) > 9:
            raise IDXError(f"{lbl_path}: label {int(labels.max())} outside 0..9")
        if verify_checksums and len(images) == STANDARD_SIZES[part]:
            for key, path in ((f"{part}_images", img_path), (f"{part}_labels", lbl_path)):
                digest = hashlib.sha256(raw[key].numpy().tobytes()).hexdigest()
                if digest != STANDARD_SHA256[key]:
                    raise IDXError(
                        f"{path}: content differs from the standard Fashion-MNIST file "
                        f"(SHA-256 {digest[:12]}…); reinstall the data, or set "
                        "datamodule.verify_checksums=false for a modified copy"
                    )
    return raw


def data_table(raw: dict[str, torch.Tensor]) -> str:
    """The report's first table: sizes and min/max of images and labels."""
    rows = []
    for part in ("train", "test"):
        images, labels = raw[f"{part}_images"], raw[f"{part}_labels"]
        rows += [
            f"{part.capitalize()} set:",
            f"  Sizes:               {', '.join(map(str, images.shape))}",
            f"  Image values min/max {int(images.min())} to {int(images.max())}",
            f"  Label values min/max {int(labels.min())} to {int(labels.max())}",
        ]
    return "\n".join(rows)


def split_indices(
    n: int, val_split: float, mode: Literal["tail", "random"], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation indices. `tail` is Keras's `validation_split`: the last
    fraction, unshuffled. `random` is a seeded random subset."""
    if not 0.0 < val_split < 1.0:
        raise ValueError(f"datamodule.val_split={val_split}: must be in (0, 1)")
    # Keras: split_at = floor(n * (1 - split)); the epsilon keeps 0.94 * 60000 at 56400.
    n_train = max(1, min(n - 1, math.floor(n * (1.0 - val_split) + 1e-9)))
    n_val = n - n_train
    if mode == "tail":
        order = torch.arange(n)
    elif mode == "random":
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    else:
        raise ValueError(f"datamodule.val_split_mode={mode!r}: must be 'tail' or 'random'")
    return order[: n - n_val], order[n - n_val :]


def per_class_subset(labels: torch.Tensor, indices: torch.Tensor, per_class: int,
                     seed: int) -> torch.Tensor:  # fmt: skip
    """`per_class` of `indices` for every class, chosen at random with `seed` (in data order)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in labels.unique().tolist():
        members = indices[labels == label]
        if len(members) < per_class:
            raise ValueError(
                f"datamodule.train_subset={per_class}: class {label} has only {len(members)} "
                "training images"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values


def check_classes(classes: Sequence[int] | None) -> tuple[int, ...] | None:
    """`datamodule.classes`: distinct class numbers in 0..9, or None for all ten."""
    if classes is None:
        return None
    classes = tuple(classes)
    valid = all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 9 for c in classes)
    if not classes or not valid or len(set(classes)) != len(classes):
        raise ValueError(
            f"datamodule.classes={list(classes)}: must be distinct class numbers in 0..9 "
            "(at least one), or null for all ten"
        )
    return classes


def relabel(labels: torch.Tensor, classes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels renumbered 0..len(classes)-1 in the order of `classes` (others -1), and the mask
    of the samples whose class is kept."""
    mapping = torch.full((10,), -1, dtype=labels.dtype)
    mapping[list(classes)] = torch.arange(len(classes), dtype=labels.dtype)
    new = mapping[labels]
    return new, new >= 0


class FashionMNISTDataModule(L.LightningDataModule):
    """Fashion-MNIST from IDX files, held in memory (on the accelerator when there is one)."""

    def __init__(
        self,
        data_dir: str | None = None,
        system_dir: str | None = str(SYSTEM_DIR),
        download: bool = True,
        verify_checksums: bool = True,
        batch_size: int = 32,
        eval_batch_size: int = 1000,
        val_split: float = 0.1,
        val_split_mode: Literal["tail", "random"] = "tail",
        normalize: Literal["scale", "standardize"] = "scale",
        seed: int = 42,
        train_subset: int | None = None,
        classes: Sequence[int] | None = None,
        augmentation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if normalize not in ("scale", "standardize"):
            raise ValueError(
                f"datamodule.normalize={normalize!r}: must be 'scale' or 'standardize'"
            )
        self.data_dir, self.system_dir, self.download = data_dir, system_dir, download
        self.verify_checksums = verify_checksums
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_split, self.val_split_mode = val_split, val_split_mode
        self.normalize, self.seed = normalize, seed
        if train_subset is not None and (isinstance(train_subset, bool) or train_subset < 1):
            raise ValueError(f"datamodule.train_subset={train_subset}: must be an integer >= 1")
        self.train_subset = train_subset
        self.classes = check_classes(classes)
        self.augmentation = augmentation
        # Training batches per Lightning batch: 1, or more under perf=fast (goodfit.perf).
        self.steps_per_batch = 1
        self.class_names = (
            CLASS_NAMES if self.classes is None else tuple(CLASS_NAMES[c] for c in self.classes)
        )
        self.train: Split | None = None
        self.val: Split | None = None
        self.test: Split | None = None
        self.files: FoundFiles | None = None
        self.mean: float | None = None  # of the scaled training pixels, when standardizing
        self.std: float | None = None

    def state_dict(self) -> dict[str, Any]:
        """The normalisation and the image shape, saved in checkpoints so that predictions
        prepare their images alike."""
        return {"normalize": self.normalize, "mean": self.mean, "std": self.std,
                "image_shape": list(self.image_shape)}  # fmt: skip

    def prepare_data(self) -> None:
        """Find (or download) the files once, before any process reads them."""
        self.files = locate(self.data_dir, self.system_dir, self.download)

    def load(self) -> None:
        """Decode, check, split and normalise the data on the CPU (once)."""
        if self.train is not None:
            return
        if self.files is None:
            self.files = locate(self.data_dir, self.system_dir, download=False)
        raw = load_raw(self.files, self.verify_checksums)
        log.info("Fashion-MNIST from %s\n%s", self.files.folder, data_table(raw))

        train_idx, val_idx = split_indices(
            len(raw["train_labels"]), self.val_split, self.val_split_mode, self.seed
        )
        images = normalize_images(raw["train_images"])
        if self.normalize == "standardize":
            self.mean = float(images[train_idx].mean())
            self.std = float(images[train_idx].std())
            images = normalize_images(raw["train_images"], self.mean, self.std)
        test_images = normalize_images(raw["test_images"], self.mean, self.std)
        labels, test_labels = raw["train_labels"].long(), raw["test_labels"].long()
        if self.classes is not None:
            labels, keep = relabel(labels, self.classes)
            train_idx, val_idx = train_idx[keep[train_idx]], val_idx[keep[val_idx]]
            test_labels, test_keep = relabel(test_labels, self.classes)
            test_images, test_labels = test_images[test_keep], test_labels[test_keep]
        if self.train_subset is not None:
            train_idx = per_class_subset(labels[train_idx], train_idx, self.train_subset, self.seed)
        self.train = Split(images[train_idx], labels[train_idx])
        self.val = Split(images[val_idx], labels[val_idx])
        self.test = Split(test_images, test_labels)

    def setup(self, stage: str | None = None) -> None:
        """Load once, then keep every split on the device the trainer computes on."""
        self.load()
        device = self._device()
        for split in (self.train, self.val, self.test):
            split.images, split.labels = split.images.to(device), split.labels.to(device)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches on the device they train on; never validation or test."""
        if self.augmentation is None or not self.trainer or not self.trainer.training:
            return batch
        images, labels = batch
        return self.augmentation(images), labels

    def _device(self) -> torch.device:
        """The accelerator's device when training on one, so no batch is copied per step."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.strategy.root_device.type != "cpu":
            return trainer.strategy.root_device
        return torch.device("cpu")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28)

    @property
    def sizes(self) -> dict[str, int]:
        assert self.train and self.val and self.test, "call setup() first"
        return {"n_train": len(self.train.labels), "n_val": len(self.val.labels),
                "n_test": len(self.test.labels)}  # fmt: skip

    def _shard(self) -> dict[str, int]:
        """This process's place among the trainer's processes (one process: rank 0 of 1)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": trainer.global_rank, "world_size": trainer.world_size}

    def train_dataloader(self) -> TensorBatches:
        assert self.train is not None
        return TensorBatches(self.train.images, self.train.labels, self.batch_size,
                             shuffle=True, seed=self.seed, steps_per_batch=self.steps_per_batch,
                             **self._shard())  # fmt: skip

    def val_dataloader(self) -> TensorBatches:
        assert self.val is not None
        return TensorBatches(self.val.images, self.val.labels, self.eval_batch_size, False,
                             **self._shard())  # fmt: skip

    def test_dataloader(self) -> TensorBatches:
        assert self.test is not None
        return TensorBatches(self.test.images, self.test.labels, self.eval_batch_size, False,
                             **self._shard())  # fmt: skip
