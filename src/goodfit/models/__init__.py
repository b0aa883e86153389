"""Networks: plain `torch.nn.Module`s, no Lightning inside."""

from goodfit.models.mlp import MLP

__all__ = ["MLP"]
