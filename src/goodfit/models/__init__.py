"""Networks: plain `torch.nn.Module`s, no Lightning inside."""

from goodfit.models.build import build_network
from goodfit.models.cnn import CNN, ResNet
from goodfit.models.mlp import MLP
from goodfit.models.torchvision_resnet import TorchvisionResNet

__all__ = ["CNN", "MLP", "ResNet", "TorchvisionResNet", "build_network"]
