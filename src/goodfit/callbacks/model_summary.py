"""The model summary at the start of a run: the network's layers, not the module's metrics."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichModelSummary
from torch import nn
from torchmetrics import Metric


def metric_holders(module: nn.Module) -> list[str]:
    """The names of `module`'s outermost submodules that hold no parameters and keep metrics
    (a torchmetrics Metric, or a container with one inside): goodfit's Classifier keeps the
    figures of each stage so, and their rows would outnumber the network's in the summary."""
    holders: list[str] = []
    for name, sub in module.named_modules():
        if not name or any(name.startswith(f"{holder}.") for holder in holders):
            continue
        # parameters first: a layer that has one is answered at its first, without a walk
        if next(sub.parameters(), None) is None and any(
            isinstance(inner, Metric) for inner in sub.modules()
        ):
            holders.append(name)
    return holders


class ModelSummary(RichModelSummary):
    """Lightning's RichModelSummary, less the rows of the metric holders (`metric_holders`):
    the table lists the network, and one line below it names what was left out. Parameter
    counts and sizes are Lightning's, unchanged."""

    def __init__(self, max_depth: int = 1, **summarize_kwargs: Any) -> None:
        super().__init__(max_depth, **summarize_kwargs)
        self._left_out: list[str] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._left_out = metric_holders(pl_module)
        super().on_fit_start(trainer, pl_module)

    def summarize(  # an instance method here: Lightning calls it as self.summarize(...)
        self,
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from rich import get_console

        names = dict(summary_data)["Name"]
        kept = [i for i, name in enumerate(names) if not self._hidden(name)]
        table = [(column, [values[i] for i in kept]) for column, values in summary_data]
        table[0] = (table[0][0], [str(row) for row in range(len(kept))])  # renumbered
        RichModelSummary.summarize(
            table, total_parameters, trainable_parameters, model_size, total_training_modes,
            total_flops, **summarize_kwargs,
        )  # fmt: skip
        if self._left_out:
            get_console().print(f"Not listed (metrics): {', '.join(self._left_out)}")

    def _hidden(self, name: str) -> bool:
        return any(name == held or name.startswith(f"{held}.") for held in self._left_out)
