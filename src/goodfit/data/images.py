"""Pixels to model inputs, the same way for training data and for images given to predict."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from goodfit.data.decode import decode_image

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
    `size` (height, width) when it differs, as image folders are decoded for training. A file
    that is not an image raises DataError."""
    return torch.from_numpy(decode_image(path, channels, size))


def display_image(image: torch.Tensor) -> np.ndarray:
    """A normalised (C, H, W) image for matplotlib: (H, W) for one channel (shown with a gray
    colour map, which scales it), (H, W, 3) rescaled to [0, 1] for colour."""
    array = image.detach().float().cpu()
    if array.shape[0] == 1:
        return array[0].numpy()
    low, high = float(array.min()), float(array.max())
    array = (array - low) / (high - low) if high > low else torch.zeros_like(array)
    return array.permute(1, 2, 0).numpy()
