"""Lightning callbacks that goodfit adds to every run."""

from goodfit.callbacks.config_in_checkpoint import ConfigInCheckpoint

__all__ = ["ConfigInCheckpoint"]
