"""What goodfit asks of a datamodule, written once and checked when a run starts.

Any LightningDataModule with these attributes works with the train task, the callbacks and the
records; the in-memory ones (goodfit's own) also serve the augmentation preview and the transfer
study. After `prepare_data()` and `setup("fit")` (which must be safe to call twice: the task calls
them before the Trainer does, to learn the classes and the image shape):
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from goodfit.runtime.errors import ConfigError


@dataclass
class Split:
    """One split held in memory."""

    images: torch.Tensor  # float32 (N, C, H, W), normalised
    labels: torch.Tensor  # int64 (N,)


@runtime_checkable
class ImageClassificationData(Protocol):
    """The contract of every datamodule."""

    class_names: Sequence[str]  # one name per class, in label order
    image_shape: tuple[int, int, int]  # (channels, height, width) of the model's input
    sizes: Mapping[str, int]  # {"n_train": …, "n_val": …, "n_test": …}

    def prepare_data(self) -> None: ...

    def setup(self, stage: str) -> None: ...


@runtime_checkable
class InMemoryImageData(ImageClassificationData, Protocol):
    """Also holds its splits in memory (previews, bottleneck features of the transfer study)."""

    train: Split
    val: Split
    test: Split
    augmentation: Any  # an nn.Module applied to training batches, or None


# Optional: `summary_facts`, a dict that summary.json's `data` entry takes in (e.g. the images an
# image folder skipped).
CONTRACT_ATTRIBUTES = ("class_names", "image_shape", "sizes")
IN_MEMORY_ATTRIBUTES = ("train", "val", "test", "augmentation")


def check_contract(datamodule: Any, needs: Sequence[str] = CONTRACT_ATTRIBUTES,
                   purpose: str = "goodfit") -> None:  # fmt: skip
    """Raise ConfigError naming the first attribute `datamodule` lacks (after setup)."""
    for name in needs:
        try:
            getattr(datamodule, name)
        except AttributeError:
            raise ConfigError(
                f"datamodule: {type(datamodule).__name__} has no `{name}`, which {purpose} needs. "
                f"A datamodule provides {', '.join(CONTRACT_ATTRIBUTES)} after setup() "
                "(goodfit.data.contract.ImageClassificationData)."
            ) from None
    shape = datamodule.image_shape if "image_shape" in needs else (1, 1, 1)
    if len(tuple(shape)) != 3 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ConfigError(
            f"datamodule: {type(datamodule).__name__}.image_shape={shape!r}: must be "
            "(channels, height, width), positive integers"
        )
    if "class_names" in needs and len(datamodule.class_names) < 2:
        raise ConfigError(
            f"datamodule: {type(datamodule).__name__} has {len(datamodule.class_names)} class(es); "
            "a classifier needs at least two"
        )


def data_facts(datamodule: ImageClassificationData) -> dict[str, Any]:
    """What `${data:…}` resolves to in the model and module configs."""
    channels, height, width = datamodule.image_shape
    return {
        "class_names": list(datamodule.class_names),
        "num_classes": len(datamodule.class_names),
        "channels": channels,
        "height": height,
        "width": width,
        "in_features": channels * height * width,
    }
