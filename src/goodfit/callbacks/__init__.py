"""Lightning callbacks that goodfit adds to every run."""

from goodfit.callbacks.augmentation_preview import AugmentationPreview
from goodfit.callbacks.config_in_checkpoint import ConfigInCheckpoint
from goodfit.callbacks.divergence import DivergedError, StopOnDivergence
from goodfit.callbacks.interruption import RunInterrupted, StopOnSignal
from goodfit.callbacks.progress import ThrottledRichProgressBar
from goodfit.callbacks.random_state import RandomStateInCheckpoint

__all__ = [
    "AugmentationPreview",
    "ConfigInCheckpoint",
    "DivergedError",
    "RandomStateInCheckpoint",
    "RunInterrupted",
    "StopOnDivergence",
    "StopOnSignal",
    "ThrottledRichProgressBar",
]
