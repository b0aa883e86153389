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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model.num_classes=5",), "model (goodfit.models.MLP) gives (2, 5) for 2 images of "
                                   "1×28×28, not one score per class (2, 10)"),
        (("model.in_features=100",), "model (goodfit.models.MLP) fails on the data's 1×28×28 "
                                     "images: mat1 and mat2 shapes cannot be multiplied"),
        (("model=cnn", "model.in_channels=3"), "model (goodfit.models.CNN) fails on the data's "
                                               "1×28×28 images: Given groups=1"),
    ],
)  # fmt: skip
def test_a_network_that_does_not_fit_the_data_is_refused_before_training(
    compose, overrides, message
):
    """Without the check, cross-entropy fails at the first batch (IndexError: Target 8 is out of
    bounds) or the first forward pass fails inside fit."""
    with pytest.raises(ConfigError) as refused:
        build_network(compose(*overrides).model, fits=((1, 28, 28), 10))
    assert str(refused.value).startswith(message)


def test_the_fit_check_leaves_the_network_as_it_was(compose):
    torch.manual_seed(0)
    net = build_network(compose("model=cnn").model, fits=((1, 28, 28), 10))
    assert net.training
    torch.manual_seed(0)
    plain = build_network(compose("model=cnn").model)
    pairs = zip(net.state_dict().values(), plain.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_a_network_with_lazy_layers_is_not_probed():
    """Its lazy layers take their shapes and random weights at the first batch, as in a plain
    Trainer; a probe would initialise them earlier, from other random numbers."""
    from goodfit.models.build import check_fits_data

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10))
    check_fits_data(net, (1, 28, 28), num_classes=5, target="lazy")  # 10 scores: not looked at
    assert isinstance(net[1].weight, torch.nn.parameter.UninitializedParameter)


def test_the_fit_check_leaves_a_part_kept_in_eval_mode_so():
    """A network that keeps a part in eval mode from its constructor (a frozen BatchNorm) keeps
    it so after the probe, which runs in eval mode: not all switched back to training mode."""
    from goodfit.models.build import check_fits_data

    frozen = torch.nn.BatchNorm1d(784).eval()
    net = torch.nn.Sequential(torch.nn.Flatten(), frozen, torch.nn.Linear(784, 10))
    check_fits_data(net, (1, 28, 28), num_classes=10, target="frozen")
    assert [m.training for m in net] == [True, False, True]


def test_bottleneck_features_leave_each_part_of_the_backbone_in_its_mode():
    from goodfit.tasks.feature_head import bottleneck_features

    frozen = torch.nn.BatchNorm1d(4).eval()
    backbone = torch.nn.Sequential(torch.nn.Linear(3, 4), frozen)
    features = bottleneck_features(backbone, torch.rand(5, 3), batch_size=2)
    assert features.shape == (5, 4)
    assert [m.training for m in backbone] == [True, False]
