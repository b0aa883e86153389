"""The end of a run, as every logger receives it (its own module, so that the publishers and
the loggers' modules can both import it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunRecord:
    """The end of a run, as every logger receives it."""

    params: dict[str, Any]  # group choices (`choice/model`) and main numbers (`optimizer.lr`)
    figures: dict[str, float]  # best_val_acc, test_acc, test_loss
    verdict: str  # the verdict's label, e.g. "good fit"
    verdict_markdown: str  # the verdict and its reasons
    step: int  # epochs run: the x position of anything drawn once, at the end
    pictures: dict[str, Path] = field(default_factory=dict)  # name -> PNG in the run folder
    summary_path: Path | None = None  # summary.json
