"""The networks: the report's exact parameter counts, and plain nn.Module behaviour."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from goodfit.models import MLP


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(("choice", "params"), [("mlp_good", 694_950), ("mlp_bad", 623_290)])
def test_report_parameter_counts(compose, choice, params):
    net = instantiate(compose(f"model={choice}").model)
    assert count(net) == params
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_dropout_only_in_training_mode():
    net = MLP(hidden=(64,), dropout=0.5)
    x = torch.rand(4, 1, 28, 28)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    torch.manual_seed(0)
    assert not torch.equal(net(x), net(x))


def test_glorot_init_zero_biases():
    net = MLP(hidden=(32,), init="glorot")
    biases = [m.bias for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert all(torch.count_nonzero(b) == 0 for b in biases)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"activation": "swish2"}, "model.activation"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"init": "he"}, "model.init"),
    ],  # fmt: skip
)
def test_bad_arguments_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        MLP(**kwargs)
