"""`python train.py resume=<run folder>`: continue a run with the config it was started with."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from goodfit.hydra_ext import hydra_config
from goodfit.runtime.errors import ConfigError

log = logging.getLogger(__name__)

# Limits a resumed run may change; anything else would make it another run.
RESUME_OVERRIDABLE = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time")
# How a run is displayed, which does not change its figures.
RESUME_DISPLAY = ("callbacks.rich_progress_bar",)


@dataclass
class ResumedRun:
    cfg: DictConfig  # the run's own config, with the allowed overrides applied
    choices: dict[str, Any]  # its config-group choices (model: mlp_good, …)
    run_dir: Path


def _override_keys() -> list[str]:
    return [o.split("=", 1)[0] for o in hydra_config.task_overrides()]


def load_resumed_run(cfg: DictConfig) -> ResumedRun:
    """The config of the run in `cfg.resume`, checked: a run folder, and only limits changed."""
    run_dir = Path(cfg.resume).expanduser().resolve()
    saved_config = run_dir / ".hydra" / "config.yaml"
    if hydra_config.in_multirun():
        raise ConfigError("resume=… continues one run; it cannot be combined with -m/--multirun")
    if not saved_config.is_file():
        raise ConfigError(f"resume={cfg.resume}: not a run folder (no .hydra/config.yaml there)")
    allowed = ("resume", *RESUME_OVERRIDABLE, *RESUME_DISPLAY)
    refused = [key for key in _override_keys() if key.lstrip("+~") not in allowed]
    if refused:
        raise ConfigError(
            f"resume={cfg.resume} continues that run with the config it was started with; "
            f"only {', '.join(RESUME_OVERRIDABLE)} may be changed, not: {', '.join(refused)}"
        )
    run_cfg = OmegaConf.load(saved_config)
    assert isinstance(run_cfg, DictConfig)
    for key in set(_override_keys()) - {"resume"}:
        OmegaConf.update(run_cfg, key, OmegaConf.select(cfg, key), force_add=True)
    run_cfg.resume = str(run_dir)
    if OmegaConf.select(run_cfg, "callbacks.optuna_pruning") is not None:
        # The search has moved on (its study never hears of this run); it trains alone.
        log.info("Resuming a search trial outside its search: callbacks.optuna_pruning is off")
        run_cfg.callbacks.optuna_pruning = None
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    choices: dict[str, Any] = {}
    if hydra_yaml.is_file():
        saved = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.choices")
        choices = dict(saved) if saved is not None else {}
    return ResumedRun(run_cfg, choices, run_dir)
