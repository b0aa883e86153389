"""The model summary at a run's start lists the network, not the module's metric holders."""

from __future__ import annotations

import functools

import lightning as L
import torch
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchmetrics import MeanMetric

from goodfit.callbacks import ModelSummary
from goodfit.callbacks.model_summary import metric_holders, one_image_flops
from goodfit.data.batches import TensorBatches
from goodfit.lit import Classifier
from goodfit.models import MLP


class _Buffers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kept", torch.zeros(3))


class _Module(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())  # ReLU: no parameters, no metric
        self.mean = MeanMetric()
        self.figures = nn.ModuleDict({"loss": MeanMetric(), "kept": _Buffers()})
        self.scaled = nn.ModuleDict({"scale": nn.Linear(1, 1), "mean": MeanMetric()})


def test_metric_holders_are_the_outermost_parameter_free_modules_that_keep_metrics():
    # `scaled` holds a parameter: it stays, its metric inside goes
    assert metric_holders(_Module()) == ["mean", "figures", "scaled.mean"]


def test_the_summary_lists_the_network_and_names_the_metrics_it_leaves_out(capsys):
    """Through a real fit: the Classifier's 16 metric rows are gone, the network's rows are
    numbered from 0, the parameter count is Lightning's, and one line names what is not listed."""
    model = Classifier(MLP(hidden=(16,)), functools.partial(torch.optim.SGD, lr=0.1),
                       class_names=list("0123456789"))  # fmt: skip
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", callbacks=[ModelSummary(max_depth=2)], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, TensorBatches(x, y, 4, shuffle=True), TensorBatches(x, y, 8, shuffle=False))
    printed = capsys.readouterr().out
    rows = [line.split("│")[1:3] for line in printed.splitlines() if line.startswith("│")]
    assert [(n.strip(), name.strip()) for n, name in rows] == [("0", "net"), ("1", "net.layers")]
    assert "train_metrics" not in printed.split("Not listed")[0]
    assert f"Total params: {sum(p.numel() for p in model.parameters()) / 1000:.1f} K" in printed
    # one line, within a log's 80 columns
    [said] = [line for line in printed.splitlines() if line.startswith("Not listed")]
    assert said == "Not listed (metrics): train_metrics, val_metrics, test_metrics, test_evaluation"


class _ImageData(L.LightningDataModule):
    """Eight images in memory, with the image shape goodfit's datamodules give."""

    image_shape = (1, 28, 28)

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.x = torch.rand(8, 1, 28, 28, generator=generator)
        self.y = torch.randint(0, 10, (8,), generator=generator)

    def train_dataloader(self) -> TensorBatches:
        return TensorBatches(self.x, self.y, 4, shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        return TensorBatches(self.x, self.y, 8, shuffle=False)


class _Noisy(Classifier):
    """A module of one's own whose forward draws random numbers even in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + 0.01 * torch.rand(len(x), 10)


def _fit(summary: bool, module: type[Classifier] = Classifier) -> Classifier:
    torch.manual_seed(0)
    model = module(MLP(hidden=(16,), dropout=0.5), functools.partial(torch.optim.SGD, lr=0.1),
                   class_names=list("0123456789"))  # fmt: skip
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", callbacks=[ModelSummary(max_depth=2)] if summary else [],
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=_ImageData())
    return model


def test_the_summary_gives_one_images_flops_per_layer(capsys):
    """The FLOPs column and total are those of one image's forward pass, as torch's counter
    gives them for the network by hand (Lightning alone prints 0 without an example input)."""
    model = _fit(summary=True)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.net.eval()(torch.zeros(1, 1, 28, 28))
    total = counter.get_total_flops()
    assert total == 2 * (784 * 16 + 16 * 10)  # two linear layers, one multiply-add a weight
    printed = capsys.readouterr().out
    flops = [line.split("│")[6].strip() for line in printed.splitlines() if line.startswith("│")]
    assert flops == [get_human_readable_count(total)] * 2  # net, net.layers
    assert f"Total FLOPs: {get_human_readable_count(total)}" in printed
    assert "FLOPs: one image's forward pass, in eval mode" in printed.splitlines()


def test_measuring_the_flops_leaves_the_training_as_it_was():
    """The measuring pass neither draws from the run's random streams (this module's forward
    draws even in eval mode) nor leaves the module in eval mode: same weights as without."""
    with_summary, without = _fit(summary=True, module=_Noisy), _fit(summary=False, module=_Noisy)
    assert with_summary.net.training
    for (name, a), (_, b) in zip(
        with_summary.state_dict().items(), without.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_flops_are_not_measured_where_the_pass_would_cost_or_fail():
    from types import SimpleNamespace

    from lightning.pytorch.plugins.precision import Precision

    trainer = SimpleNamespace(datamodule=_ImageData(), precision_plugin=Precision())
    compiled = Classifier(MLP(hidden=(16,)), class_names=list("0123456789"))
    compiled.net.compile()  # in place, as model.compile=true does; never called here
    assert one_image_flops(trainer, compiled) == "the network is compiled"
    bare = L.LightningModule()
    assert one_image_flops(trainer, bare) == "LightningModule defines no forward()"
    other_input = Classifier(torch.nn.Bilinear(3, 3, 10), class_names=list("0123456789"))
    assert one_image_flops(trainer, other_input) == (
        "Classifier(one image) failed: TypeError: Bilinear.forward() missing 1 required "
        "positional argument: 'input2'"
    )
    no_shape = SimpleNamespace(datamodule=None, precision_plugin=Precision())
    assert one_image_flops(no_shape, _Noisy(MLP(), class_names="ab")) == (
        "the data gives no image shape"
    )
