"""The networks: the report's exact parameter counts, and plain nn.Module behaviour."""

from __future__ import annotations

import re

import pytest
import torch

from goodfit.models import MLP, build_network
from goodfit.runtime.errors import ConfigError


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(("choice", "params"), [("mlp_good", 694_950), ("mlp_bad", 623_290)])
def test_report_parameter_counts(compose, choice, params):
    net = build_network(compose(f"model={choice}").model)
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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model=mlp_good", "model.hidden=[784,0]"), "model.hidden=[784, 0]: must be a list of "),
        (("model=mlp_good", "model.hidden=100"), "model.hidden=100: must be a list of integers"),
        (("model=cnn", "model.channels=[32,-1]"), "model.channels=[32, -1]: must be a list"),
        (("model=cnn", "model.hidden=0"), "model.hidden=0: must be an integer >= 1"),
        (("model=resnet", "model.widths=[]"), "model.widths=[]: needs at least 1"),
    ],  # fmt: skip
)
def test_layer_sizes_below_one_are_refused_by_key(compose, overrides, message):
    """torch builds a layer of 0 units without a word; the run would then learn nothing."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_network(compose(*overrides).model)


def test_compile_option_keeps_state_dict_keys(compose, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append(self))
    cfg = compose("model=mlp_good", "model.compile=true")
    net = build_network(cfg.model)
    assert compiled == [net]
    plain = build_network(compose("model=mlp_good").model)
    assert net.state_dict().keys() == plain.state_dict().keys()


def test_compiled_network_computes_the_same(compose):
    torch.manual_seed(0)
    net = build_network(compose("model=mlp_bad").model).eval()
    x = torch.rand(4, 1, 28, 28)
    expected = net(x)
    net.compile(backend="eager")  # the real torch.compile path, without a C++ build
    assert torch.allclose(net(x), expected)
