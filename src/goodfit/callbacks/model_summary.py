"""The model summary at the start of a run: the network's layers, not the module's metrics,
and what one image's forward pass costs."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchmetrics import Metric

from goodfit.runtime.errors import first_line
from goodfit.runtime.modes import eval_mode


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


def one_image_flops(trainer: L.Trainer, module: L.LightningModule) -> dict[str, int] | str:
    """The FLOPs of one image's forward pass through `module`, by submodule name ("" for the
    whole), as torch's FlopCounterMode counts them: a blank image of the data's shape, in eval
    mode, without gradients, in the run's precision, with the random streams left as they were.
    Or why it is not measured: no image shape, no forward, or a compiled network (the pass
    would compile it for a batch of one)."""
    shape = getattr(trainer.datamodule, "image_shape", None)
    if shape is None:
        return "the data gives no image shape"
    if type(module).forward is L.LightningModule.forward:
        return f"{type(module).__name__} defines no forward()"
    # goodfit compiles in place (nn.Module.compile), which only this attribute shows
    if any(getattr(sub, "_compiled_call_impl", None) is not None for sub in module.modules()):
        return "the network is compiled"
    precision, counter = trainer.precision_plugin, FlopCounterMode(display=False)
    devices = [module.device] if module.device.type == "cuda" else []
    try:
        image = precision.convert_input(torch.zeros(1, *shape, device=module.device))
        with (
            torch.random.fork_rng(devices=devices), torch.no_grad(), eval_mode(module),
            precision.forward_context(), counter,
        ):  # fmt: skip
            module(image)
    except Exception as err:  # a module of one's own may want other input: the summary goes on
        failed = f"{type(err).__name__}: {first_line(err, 200)}"
        return f"{type(module).__name__}(one image) failed: {failed}"
    root = type(module).__name__
    counts = {name.removeprefix(root).removeprefix("."): sum(by_op.values())
              for name, by_op in counter.get_flop_counts().items() if name != "Global"}  # fmt: skip
    return {**counts, "": counter.get_total_flops()}


class ModelSummary(RichModelSummary):
    """Lightning's RichModelSummary, less the rows of the metric holders (`metric_holders`):
    the table lists the network, and one line below it names what was left out. Parameter
    counts and sizes are Lightning's, unchanged; the FLOPs are one image's (`one_image_flops`),
    which Lightning counts only on a module's `example_input_array`."""

    def __init__(self, max_depth: int = 1, **summarize_kwargs: Any) -> None:
        super().__init__(max_depth, **summarize_kwargs)
        self.max_depth = max_depth
        self._left_out: list[str] = []
        self._flops: dict[str, int] | str = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.max_depth or not trainer.is_global_zero:
            return super().on_fit_start(trainer, pl_module)  # no table: nothing to measure
        self._left_out = metric_holders(pl_module)
        if getattr(pl_module, "example_input_array", None) is None:
            self._flops = one_image_flops(trainer, pl_module)
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
        flops, said = self._flops, None
        if isinstance(flops, dict) and flops:
            readable = [
                get_human_readable_count(flops.get(name, 0)) for name in dict(table)["Name"]
            ]
            table = [
                (column, readable if column == "FLOPs" else values) for column, values in table
            ]
            total_flops, said = flops[""], "FLOPs: one image's forward pass, in eval mode"
        elif isinstance(flops, str):
            said = f"FLOPs: not measured ({flops})"
        RichModelSummary.summarize(
            table, total_parameters, trainable_parameters, model_size, total_training_modes,
            total_flops, **summarize_kwargs,
        )  # fmt: skip
        if said:
            get_console().print(said)
        if self._left_out:
            get_console().print(f"Not listed (metrics): {', '.join(self._left_out)}")

    def summary_fields(self) -> dict[str, Any]:
        """What the run's summary.json records: `flops_per_image`, when measured."""
        measured = isinstance(self._flops, dict) and "" in self._flops
        return {"flops_per_image": self._flops[""]} if measured else {}

    def _hidden(self, name: str) -> bool:
        return any(name == held or name.startswith(f"{held}.") for held in self._left_out)
