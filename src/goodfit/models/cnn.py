"""Convnets for small images (28×28 gray, 32×32 colour, any size): a small one, and a small
residual network with batch norm."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from goodfit.models.sizes import check_sizes


class CNN(nn.Module):
    """Few layers and filters, ReLU: [Conv 3×3 → ReLU → Conv 3×3 → ReLU → MaxPool] per width,
    then a small dense head. `features` is the backbone and `classifier` the head, so transfer
    learning can freeze or replace either.

    The head's input size follows the image's `height` and `width` (each stage halves them,
    rounding down); `image_size` gives both at once (square images, older configs)."""

    def __init__(
        self,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        dropout: float = 0.3,
        in_channels: int = 1,
        num_classes: int = 10,
        height: int | None = None,
        width: int | None = None,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout={dropout}: must be in [0, 1)")
        channels = check_sizes("channels", channels)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"model.hidden={hidden!r}: must be an integer >= 1")
        height = height or image_size or 28
        width = width or image_size or height
        shrink = 2 ** len(channels)
        if height < shrink or width < shrink:
            raise ValueError(
                f"model.channels={list(channels)}: {len(channels)} stages halve the image "
                f"{len(channels)} times, too often for {height}×{width} images (at least "
                f"{shrink}×{shrink}); use fewer stages or larger images (datamodule.image_size)"
            )
        stages: list[nn.Module] = []
        out_width = in_channels
        for out in channels:
            stages.append(nn.Sequential(
                nn.Conv2d(out_width, out, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(out, out, 3, padding=1), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ))  # fmt: skip
            out_width = out
        # One child per stage, so "the top block" of transfer learning is the last stage.
        self.features = nn.Sequential(*stages, nn.Flatten())
        cells = (height // shrink) * (width // shrink)  # per filter, after the last stage
        self.classifier = nn.Sequential(
            nn.Linear(out_width * cells, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and a shortcut (He et al., 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )  # fmt: skip
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet for small images of any size: a 3×3 stem, `blocks` BasicBlocks per stage
    (the first of each stage after the first halves the size), global average pooling, a linear
    head."""

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128),
        blocks: int = 2,
        in_channels: int = 1,
        num_classes: int = 10,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"model.blocks={blocks}: must be >= 1")
        widths = check_sizes("widths", widths, at_least=1)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
        ]  # fmt: skip
        width = widths[0]
        for stage, out in enumerate(widths):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(width, out, stride))
                width = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
