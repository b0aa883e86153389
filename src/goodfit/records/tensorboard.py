"""TensorBoard: a logger whose tags keep the learning curves first, and the end of a run
(train and validation on one chart, the HParams entry, the pictures, the verdict).

TensorBoard's default tab (Time Series) lists every chart sorted by tag and groups them by the
part before the first `/`. The learning curves are `train/…` and `val/…` (with `train/lr`);
everything drawn once, at the end, sorts after them: `verdict/…` for the figures, `views/…` for
the pictures.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from goodfit.records.run_record import RunRecord
from goodfit.runtime.errors import UnknownArgumentError

CURVES_LAYOUT = {
    "Learning curves": {
        "loss (train vs val)": ["Multiline", ["train/loss", "train_eval/loss", "val/loss"]],
        "accuracy (train vs val)": ["Multiline", ["train/acc", "train_eval/acc", "val/acc"]],
    }
}
FIGURES = "verdict/"  # the final figures (and the HParams metrics)
PICTURES = "views/"  # the run folder's PNGs
VERDICT_TEXT = "diagnosis/verdict"  # Text tab


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoardLogger, with metric tags renamed by prefix (`renamed`, e.g.
    `{"test/": "verdict/test_"}`: `test/acc` is written as `verdict/test_acc`)."""

    def __init__(self, *args: Any, renamed: Mapping[str, str] | None = None, **kwargs: Any):
        _check_writer_keywords(kwargs)
        super().__init__(*args, **kwargs)
        self.renamed = dict(renamed or {})

    def tag(self, name: str) -> str:
        """The tag that metric `name` is written under."""
        for prefix, replacement in self.renamed.items():
            if name.startswith(prefix):
                return replacement + name[len(prefix) :]
        return name

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics({self.tag(k): v for k, v in metrics.items()}, step)


def _check_writer_keywords(kwargs: Mapping[str, Any]) -> None:
    """Lightning passes the keywords its logger does not take to TensorBoard's SummaryWriter, and
    only when the first event is written: a misspelt one (`nme=…`) would fail once fit has
    started. Refuse it here, when the logger is built, naming what is taken."""
    from torch.utils.tensorboard import SummaryWriter  # the writer Lightning uses with tensorboard

    own = _keywords(LightningTensorBoardLogger.__init__) | {"renamed"}
    writer = _keywords(SummaryWriter.__init__) - {"log_dir"}  # Lightning sets log_dir itself
    for name in kwargs:
        if name not in own | writer:
            raise UnknownArgumentError("TensorBoardLogger", name, own | writer)


def _keywords(function: Any) -> set[str]:
    parameters = inspect.signature(function).parameters.values()
    return {p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD} - {"self"}


def _tag(logger: Any, name: str) -> str:
    return logger.tag(name) if isinstance(logger, TensorBoardLogger) else name


def publish(logger: LightningTensorBoardLogger, record: RunRecord) -> None:
    """Curves layout, pictures, verdict text, and the HParams entry whose metrics are the final
    figures: best_val_acc written here, the test figures as the test stage logged them."""
    from matplotlib.image import imread
    from torch.utils.tensorboard.summary import hparams

    writer = logger.experiment
    writer.add_custom_scalars(CURVES_LAYOUT)
    for name, path in record.pictures.items():
        writer.add_image(f"{PICTURES}{name}", imread(path), record.step, dataformats="HWC")
    writer.add_text(VERDICT_TEXT, record.verdict_markdown, record.step)
    best = f"{FIGURES}best_val_acc"
    writer.add_scalar(best, record.figures["best_val_acc"], record.step)
    metrics = {best: record.figures["best_val_acc"]}
    for name in ("test_acc", "test_loss"):
        metrics[_tag(logger, name.replace("_", "/", 1))] = record.figures[name]
    # The HParams plugin reads each metric's last value from these tags; Lightning's own
    # log_hyperparams would also write every metric again, as one more point at its step.
    for summary in hparams(_sanitized(record.params), metrics):
        writer.file_writer.add_summary(summary, record.step)  # open again by the writes above
    writer.flush()


def _sanitized(params: dict[str, Any]) -> dict[str, Any]:
    """Values the HParams plugin accepts: numbers, strings and booleans; anything else as text."""
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in params.items()}
