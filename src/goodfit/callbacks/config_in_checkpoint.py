"""Store the composed config in every checkpoint, so a checkpoint rebuilds its own run."""

from __future__ import annotations

from typing import Any

import lightning as L


class ConfigInCheckpoint(L.Callback):
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["goodfit_config"] = self.config
