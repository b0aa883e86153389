"""Backbones for transfer learning: a network's `features`, its top blocks, and backbone.pt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from goodfit.runtime.atomic import atomic_path
from goodfit.runtime.errors import BackboneError

BACKBONE_FILE = "backbone.pt"


def backbone_of(net: nn.Module, key: str = "model") -> nn.Sequential:
    """The network's `features` (networks for transfer learning split into features and
    classifier, as goodfit's convnets and torchvision ResNets do)."""
    features = getattr(net, "features", None)
    if not isinstance(features, nn.Sequential) or not hasattr(net, "classifier"):
        raise BackboneError(
            f"{key}: {type(net).__name__} has no `features` and `classifier`; transfer learning "
            "needs a network split into the two (model=cnn, resnet or resnet18)"
        )
    return features


def top_blocks(net: nn.Module, count: int) -> list[nn.Module]:
    """The last `count` children of the backbone that hold parameters: a convnet's last
    stage, a ResNet's last residual block or stage."""
    blocks = [m for m in backbone_of(net) if any(True for _ in m.parameters())]
    if not 1 <= count <= len(blocks):
        raise BackboneError(
            f"transfer.unfreeze_top_blocks={count}: must be in 1..{len(blocks)} for this network"
        )
    return blocks[-count:]


def set_batch_norm_training(module: nn.Module, training: bool) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(training)


def save_backbone(net: nn.Module, model_cfg: dict[str, Any], path: Path) -> None:
    """Write the backbone's weights with the config of the network they came from."""
    with atomic_path(path) as tmp:
        torch.save({"features": backbone_of(net).state_dict(), "model": model_cfg}, tmp)


def load_backbone(net: nn.Module, path: Path, key: str = "transfer.backbone_path") -> None:
    """Load a backbone.pt into `net.features` (as data only); errors name `key` and the file."""
    if not path.is_file():
        raise BackboneError(
            f"{key}={path}: no such file. Give the backbone.pt of an `experiment=pretrain` run, "
            f"or {key}=null to pretrain one first"
        )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state = saved["features"]
    except Exception as err:
        raise BackboneError(f"{key}={path}: not a goodfit backbone file ({err})") from err
    try:
        backbone_of(net).load_state_dict(state)
    except RuntimeError as err:
        source = saved.get("model", {}).get("_target_", "another network")
        raise BackboneError(
            f"{key}={path}: saved from {source} with other layer shapes; this run builds "
            f"{type(net).__name__}. Use the same model (and model.* values) as the pretraining "
            f"run.\n{err}"
        ) from err
