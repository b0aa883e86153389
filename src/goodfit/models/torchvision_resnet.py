"""torchvision's ResNets (resnet18, …) for gray or colour images, weights from a local file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet split into `features` (stem and the four stages, pooled and
    flattened) and a new `classifier` for `num_classes`.

    `weights_path` is a state_dict file of the torchvision network (for example ImageNet
    weights saved from `torchvision.models.resnet18(weights="DEFAULT").state_dict()` on a
    machine with network): nothing is downloaded. For grayscale input (`in_channels=1`) the
    first convolution's RGB filters are summed, which gives a gray image the response its
    RGB copy would get.
    """

    def __init__(
        self,
        arch: str = "resnet18",
        weights_path: str | None = None,
        in_channels: int = 1,
        num_classes: int = 10,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        import torchvision

        if arch not in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
            raise ValueError(f"model.arch={arch!r}: must be one of torchvision's resnet18 … 152")
        net = getattr(torchvision.models, arch)(weights=None)
        if weights_path is not None:
            load_weights(net, Path(weights_path))
        conv = net.conv1
        if in_channels != conv.in_channels:
            stem = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                             conv.padding, bias=False)  # fmt: skip
            with torch.no_grad():
                summed = conv.weight.sum(dim=1, keepdim=True)
                stem.weight.copy_(summed.repeat(1, in_channels, 1, 1) / in_channels)
            conv = stem
        self.features = nn.Sequential(
            conv, net.bn1, net.relu, net.maxpool,
            net.layer1, net.layer2, net.layer3, net.layer4,
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(net.fc.in_features, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def load_weights(net: nn.Module, path: Path) -> None:
    """Load a torchvision state_dict into `net`; errors name `model.weights_path`."""
    if not path.is_file():
        raise FileNotFoundError(
            f"model.weights_path={path}: no such file (a state_dict of the torchvision "
            "network; nothing is downloaded)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        net.load_state_dict(state)
    except Exception as err:
        raise ValueError(f"model.weights_path={path}: not weights of this network: {err}") from err
