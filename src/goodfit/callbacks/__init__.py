"""Lightning callbacks that goodfit adds to every run."""

from goodfit.callbacks.augmentation_preview import AugmentationPreview
from goodfit.callbacks.config_in_checkpoint import ConfigInCheckpoint
from goodfit.callbacks.progress import ThrottledRichProgressBar

__all__ = ["AugmentationPreview", "ConfigInCheckpoint", "ThrottledRichProgressBar"]
