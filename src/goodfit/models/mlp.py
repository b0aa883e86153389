"""A multilayer perceptron: the report's good and bad models are two settings of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from goodfit.models.sizes import check_sizes

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
}


class MLP(nn.Module):
    """Flatten → [Linear → activation → Dropout] per hidden size → Linear to logits.

    `init="glorot"` mirrors Keras's Dense defaults (Glorot-uniform weights, zero biases), as the
    report used; `init="torch"` keeps PyTorch's own initialisation.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (784, 100),
        dropout: float = 0.2,
        activation: str = "relu",
        in_features: int = 28 * 28,
        num_classes: int = 10,
        init: Literal["glorot", "torch"] = "glorot",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"model.activation={activation!r}: must be one of {sorted(ACTIVATIONS)}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout={dropout}: must be in [0, 1)")
        if init not in ("glorot", "torch"):
            raise ValueError(f"model.init={init!r}: must be 'glorot' or 'torch'")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in check_sizes("hidden", hidden):
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)
        if init == "glorot":
            for layer in self.layers:
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
                    nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
