"""The model summary at a run's start lists the network, not the module's metric holders."""

from __future__ import annotations

import functools

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from goodfit.callbacks import ModelSummary
from goodfit.callbacks.model_summary import metric_holders
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
