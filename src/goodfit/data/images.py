"""Pixels to model inputs, the same way for training data and for images given to predict."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from goodfit.runtime.errors import DataError

Stat = float | Sequence[float] | None  # one value, or one per channel


def normalize_images(images: torch.Tensor, mean: Stat = None, std: Stat = None) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, C, H, W) → float32 (N, C, H, W): pixels / 255, then, when
    `mean` and `std` are given (datamodule.normalize=standardize), minus the mean, over the std
    (per channel when they are sequences)."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    scaled = images.float().mul_(1.0 / 255.0)
    if mean is None or std is None:
        return scaled
    shape = (1, -1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(shape)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(shape)
    return (scaled - mean_t) / std_t


def read_image(path: Path, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """An image file as uint8 (C, H, W): converted to `channels` (1 gray, 3 RGB) and resized to
    `size` (height, width) when it differs. A file that is not an image raises DataError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            converted = image.convert("L" if channels == 1 else "RGB")
            if converted.size != (size[1], size[0]):
                converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from None
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()
