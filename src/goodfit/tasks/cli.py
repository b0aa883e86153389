"""`python train.py …`: one run, the fine-tuning study, or either of them resumed."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from goodfit.tasks import finetune, train
from goodfit.tasks.resume import load_resumed_run


def train_command(cfg: DictConfig) -> dict[str, Any]:
    """What `python train.py` does with its composed config; returns the run's summary."""
    choices = None
    resuming = bool(cfg.get("resume"))
    if resuming:
        resumed = load_resumed_run(cfg)
        cfg, choices = resumed.cfg, resumed.choices
    if cfg.get("transfer"):
        return finetune.run(cfg, choices, resuming=resuming)
    return train.run(cfg, choices, resuming=resuming)
