"""What goodfit's datamodules share: decode once, keep every split in memory, cut batches by index.

A subclass only reads its files (`read()`, returning uint8 images and labels per split) and says
what its classes are called; splitting, class subsets, normalisation, batching, augmentation,
device placement and DDP sharding are done here, the same way for every data set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import lightning as L
import torch
from torch import nn

from goodfit.data.batches import TensorBatches
from goodfit.data.contract import Split
from goodfit.data.images import normalize_images
from goodfit.data.splits import check_classes, per_class_subset, relabel, split_indices
from goodfit.runtime.errors import DataError

log = logging.getLogger(__name__)

Pair = tuple[torch.Tensor, torch.Tensor]  # uint8 images (N, H, W) or (N, C, H, W), labels (N,)


@dataclass
class RawData:
    """Decoded data, before splitting and normalisation. Without `val`, validation is cut from
    `train` by `val_split`."""

    train: Pair
    test: Pair
    class_names: Sequence[str]
    source: str  # where it was read from, for the log
    val: Pair | None = None


def data_table(raw: RawData) -> str:
    """The report's first table: sizes and min/max of images and labels, per split."""
    rows = []
    parts = [("train", raw.train)] + ([("val", raw.val)] if raw.val else []) + [("test", raw.test)]
    for part, (images, labels) in parts:
        if images.dim() == 4 and images.shape[1] == 1:
            images = images[:, 0]
        rows += [
            f"{part.capitalize()} set:",
            f"  Sizes:               {', '.join(map(str, images.shape))}",
            f"  Image values min/max {int(images.min())} to {int(images.max())}",
            f"  Label values min/max {int(labels.min())} to {int(labels.max())}",
        ]
    return "\n".join(rows)


def channel_stats(images: torch.Tensor, indices: torch.Tensor) -> tuple[Any, Any]:
    """Mean and std of `images[indices]` (scaled pixels): one float for one channel, else a
    list with one value per channel."""
    if images.shape[1] == 1:
        chosen = images[indices]
        return float(chosen.mean()), float(chosen.std())
    means, stds = [], []
    for c in range(images.shape[1]):
        chosen = images[indices, c]
        means.append(float(chosen.mean()))
        stds.append(float(chosen.std()))
    return means, stds


class InMemoryDataModule(L.LightningDataModule):
    """A data set held in memory (on the accelerator when there is one). Subclasses implement
    `read()` and may override `prepare_data()`; `class_names` may be known before reading."""

    title = "data"  # the data set's name in the log

    def __init__(
        self,
        batch_size: int = 32,
        eval_batch_size: int = 1000,
        val_split: float = 0.1,
        val_split_mode: Literal["tail", "random"] = "tail",
        normalize: Literal["scale", "standardize"] = "scale",
        seed: int = 42,
        train_subset: int | None = None,
        classes: Sequence[int] | None = None,
        augmentation: nn.Module | None = None,
        hflip: float = 0.5,
        known_class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if normalize not in ("scale", "standardize"):
            raise ValueError(
                f"datamodule.normalize={normalize!r}: must be 'scale' or 'standardize'"
            )
        if train_subset is not None and (isinstance(train_subset, bool) or train_subset < 1):
            raise ValueError(f"datamodule.train_subset={train_subset}: must be an integer >= 1")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_split, self.val_split_mode = val_split, val_split_mode
        self.normalize, self.seed, self.train_subset = normalize, seed, train_subset
        self.augmentation = augmentation
        # The probability of a horizontal flip that conf/augmentation/*.yaml takes from here
        # (`${datamodule.hflip}`): the data set's own default (0 for digits and letters).
        self.hflip = hflip
        self.all_class_names = tuple(known_class_names) if known_class_names else None
        self.classes = classes
        if self.all_class_names is not None:
            self.classes = check_classes(classes, self.all_class_names)
        # Training batches per Lightning batch: 1, or more under perf=fast (goodfit.perf).
        self.steps_per_batch = 1
        self.train: Split | None = None
        self.val: Split | None = None
        self.test: Split | None = None
        self.mean: Any = None  # of the scaled training pixels, when standardizing
        self.std: Any = None
        # Facts summary.json keeps about the data beyond its sizes (e.g. skipped images).
        self.summary_facts: dict[str, Any] = {}

    # ------------------------------------------------------------------ what a subclass provides

    def read(self) -> RawData:
        """Decode the data set's files (called once, by `load()`)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ the contract

    @property
    def class_names(self) -> tuple[str, ...]:
        if self.all_class_names is None:
            raise AttributeError("class_names: the data is not loaded yet (call setup() first)")
        if self.classes is None:
            return self.all_class_names
        return tuple(self.all_class_names[c] for c in self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if self.train is None:
            raise AttributeError("image_shape: the data is not loaded yet (call setup() first)")
        channels, height, width = self.train.images.shape[1:]
        return (int(channels), int(height), int(width))

    @property
    def sizes(self) -> dict[str, int]:
        assert self.train and self.val and self.test, "call setup() first"
        return {"n_train": len(self.train.labels), "n_val": len(self.val.labels),
                "n_test": len(self.test.labels)}  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """The normalisation, the image shape and the class names, saved in checkpoints so that
        predictions prepare their images alike and name what they find, whatever the module."""
        return {"normalize": self.normalize, "mean": self.mean, "std": self.std,
                "image_shape": list(self.image_shape),
                "class_names": list(self.class_names)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Lightning restores a checkpoint's datamodule state: its data facts are checked."""
        self.check_same_data(state)

    def check_same_data(self, state: dict[str, Any]) -> None:
        """A checkpoint's data facts against the data read now: a run resumed (or tested) on
        other data, e.g. another folder given as datamodule.data_dir, is refused."""
        if self.train is None or not isinstance(state, dict):
            return  # not read yet: nothing to compare
        now = {"class_names": list(self.class_names), "image_shape": list(self.image_shape)}
        differ = [f"{key} {now[key]} here, {list(state[key])} in the checkpoint" for key in now
                  if state.get(key) is not None and list(state[key]) != now[key]]  # fmt: skip
        if differ:
            raise DataError(
                f"datamodule.data_dir={getattr(self, 'data_dir', None)}: not the data the "
                f"checkpoint was trained on: {'; '.join(differ)}"
            )

    # ------------------------------------------------------------------------------- loading

    def load(self) -> None:
        """Read, split, select classes and normalise the data on the CPU (once)."""
        if self.train is not None:
            return
        raw = self.read()
        if self.all_class_names is None:
            self.all_class_names = tuple(raw.class_names)
            self.classes = check_classes(self.classes, self.all_class_names)
        log.info("%s from %s\n%s", self.title, raw.source, data_table(raw))
        images, labels = raw.train
        if raw.val is None:
            train_idx, val_idx = split_indices(
                len(labels), self.val_split, self.val_split_mode, self.seed
            )
        else:  # a validation set of its own: normalised with the training images, kept apart
            n_train, n_val = len(labels), len(raw.val[1])
            images, labels = torch.cat([images, raw.val[0]]), torch.cat([labels, raw.val[1]])
            train_idx, val_idx = torch.arange(n_train), torch.arange(n_train, n_train + n_val)
        images = normalize_images(images)
        if self.normalize == "standardize":
            self.mean, self.std = channel_stats(images, train_idx)
            shape = (1, -1, 1, 1)
            images.sub_(torch.as_tensor(self.mean, dtype=torch.float32).reshape(shape))
            images.div_(torch.as_tensor(self.std, dtype=torch.float32).reshape(shape))
        test_images = normalize_images(raw.test[0], self.mean, self.std)
        labels, test_labels = labels.long(), raw.test[1].long()
        if self.classes is not None:
            n = len(self.all_class_names)
            labels, keep = relabel(labels, self.classes, n)
            train_idx, val_idx = train_idx[keep[train_idx]], val_idx[keep[val_idx]]
            test_labels, test_keep = relabel(test_labels, self.classes, n)
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

    # ---------------------------------------------------------------------- batches and devices

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
