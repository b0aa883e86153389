"""Augmentation of whole training batches on the device, with random parameters per image.

torchvision.transforms.v2 draws one set of parameters per call, so on a batch every image
would get the same shift, rotation, flip and erased box. Here each image gets its own, in a
handful of batched tensor operations: one affine resampling (shift, rotation and flip together)
and one mask for random erasing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _uniform(n: int, low: float, high: float, device: torch.device) -> Tensor:
    return torch.rand(n, device=device) * (high - low) + low


class BatchAugment(nn.Module):
    """Random shifts, rotations, horizontal flips and erasing, per image of an (N, C, H, W) batch.

    Args:
        max_shift: largest shift, as a fraction of the image size (0.1 = 2.8 pixels at 28).
        max_rotation: largest rotation, in degrees, either way.
        hflip: probability of a horizontal flip.
        erase: probability of erasing one random rectangle (0 = never).
        erase_scale: the rectangle's area, as a range of fractions of the image.
        erase_ratio: the rectangle's aspect ratio range.
        erase_value: what the rectangle is filled with.
    """

    def __init__(
        self,
        max_shift: float = 0.0,
        max_rotation: float = 0.0,
        hflip: float = 0.0,
        erase: float = 0.0,
        erase_scale: tuple[float, float] = (0.02, 0.2),
        erase_ratio: tuple[float, float] = (0.3, 3.3),
        erase_value: float = 0.0,
    ) -> None:
        super().__init__()
        limits = {"max_shift": (max_shift, 1.0), "hflip": (hflip, 1.0), "erase": (erase, 1.0),
                  "max_rotation": (max_rotation, 180.0)}  # fmt: skip
        for name, (value, high) in limits.items():
            if not 0.0 <= value <= high:
                raise ValueError(f"augmentation.{name}={value}: must be in [0, {high}]")
        if not 0.0 < erase_scale[0] <= erase_scale[1] < 1.0:
            raise ValueError(
                f"augmentation.erase_scale={list(erase_scale)}: need 0 < low <= high < 1"
            )
        if not 0.0 < erase_ratio[0] <= erase_ratio[1]:
            raise ValueError(f"augmentation.erase_ratio={list(erase_ratio)}: need 0 < low <= high")
        self.max_shift, self.max_rotation, self.hflip = max_shift, max_rotation, hflip
        self.erase, self.erase_value = erase, erase_value
        self.erase_scale, self.erase_ratio = tuple(erase_scale), tuple(erase_ratio)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if self.max_shift or self.max_rotation or self.hflip:
            images = self._affine(images)
        if self.erase:
            images = self._erase(images)
        return images

    def _affine(self, images: Tensor) -> Tensor:
        n, device = images.shape[0], images.device
        angle = _uniform(n, -1.0, 1.0, device) * math.radians(self.max_rotation)
        shift = _uniform(2 * n, -1.0, 1.0, device).view(n, 2) * (2 * self.max_shift)
        flip = torch.where(torch.rand(n, device=device) < self.hflip, -1.0, 1.0)
        cos, sin = angle.cos(), angle.sin()
        # Output → input sampling grid: rotation, with the x column mirrored for flipped images.
        theta = torch.stack(
            [torch.stack([cos * flip, -sin, shift[:, 0]], 1),
             torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1,
        )  # fmt: skip
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)  # fmt: skip

    def _erase(self, images: Tensor) -> Tensor:
        n, _, height, width = images.shape
        device = images.device
        area = _uniform(n, *self.erase_scale, device) * height * width
        log_ratio = _uniform(
            n, math.log(self.erase_ratio[0]), math.log(self.erase_ratio[1]), device
        )
        ratio = log_ratio.exp()
        h = (area * ratio).sqrt().clamp(1, height)
        w = (area / ratio).sqrt().clamp(1, width)
        top = torch.rand(n, device=device) * (height - h)
        left = torch.rand(n, device=device) * (width - w)
        rows = torch.arange(height, device=device).view(1, height, 1)
        cols = torch.arange(width, device=device).view(1, 1, width)
        inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + h).view(n, 1, 1))
                  & (cols >= left.view(n, 1, 1)) & (cols < (left + w).view(n, 1, 1)))  # fmt: skip
        chosen = (torch.rand(n, device=device) < self.erase).view(n, 1, 1)
        mask = (inside & chosen).unsqueeze(1)
        return images.masked_fill(mask, self.erase_value)
