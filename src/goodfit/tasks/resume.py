"""`python train.py resume=<run folder>`: continue a run with the config it was started with."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from goodfit.hydra_ext import hydra_config
from goodfit.hydra_ext.overrides import override_key
from goodfit.hydra_ext.run_folder import auto_resume_state
from goodfit.hydra_ext.targets import targets
from goodfit.runtime.checkpoint_io import CONFIG_KEY
from goodfit.runtime.errors import ConfigError

log = logging.getLogger(__name__)

# Limits a resumed run may change; anything else would make it another run.
RESUME_OVERRIDABLE = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time")
# How a run is displayed, which does not change its figures.
RESUME_DISPLAY = ("callbacks.rich_progress_bar",)
# Where the same data is read from (moved, or staged to another disk for this job); data that
# is not the same is refused when the checkpoint is restored (its classes and image shape).
RESUME_LOCATIONS = ("datamodule.data_dir", "paths.data_dir")


@dataclass
class ResumedRun:
    cfg: DictConfig  # the run's own config, with the allowed overrides applied
    choices: dict[str, Any]  # its config-group choices (model: mlp_good, …)
    run_dir: Path


def _saved_overrides(run_dir: Path) -> list[str]:
    saved = run_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(saved)] if saved.is_file() else []


def load_resumed_run(cfg: DictConfig, run_dir: Path | None = None,
                     auto: bool = False) -> ResumedRun:  # fmt: skip
    """The config of the run in `run_dir` (default: `cfg.resume`), checked: a run folder, its
    saved config naming only known classes (unless `trust_checkpoint`), and no override changed
    but the limits. `auto`: `resume=auto` found this run in its own folder (also in a multirun,
    where a requeued job continues itself)."""
    from goodfit.tasks.checkpoints import check_saved_config

    run_dir = (run_dir or Path(cfg.resume)).expanduser().resolve()
    saved_config = run_dir / ".hydra" / "config.yaml"
    if hydra_config.in_multirun() and not auto:
        raise ConfigError("resume=… continues one run; it cannot be combined with -m/--multirun")
    if not saved_config.is_file():
        raise ConfigError(f"resume={cfg.resume}: not a run folder (no .hydra/config.yaml there)")
    allowed = ("resume", "trust_checkpoint", *RESUME_OVERRIDABLE, *RESUME_DISPLAY,
               *RESUME_LOCATIONS)  # fmt: skip
    changed = [o for o in hydra_config.task_overrides() if o not in _saved_overrides(run_dir)]
    refused = [override_key(o) for o in changed if override_key(o) not in allowed]
    if refused:
        raise ConfigError(
            f"resume={cfg.resume} continues the run in {run_dir} with the config it was started "
            f"with; only {', '.join(RESUME_OVERRIDABLE)} and where the data is read "
            f"({', '.join(RESUME_LOCATIONS)}) may be changed, not: {', '.join(refused)}"
        )
    run_cfg = OmegaConf.load(saved_config)
    assert isinstance(run_cfg, DictConfig)
    # Classes this command builds anyway (resume=auto repeats the command that started the
    # run, e.g. a requeued cluster job of the user's own module) run nothing new.
    own = {target for _, target in targets(OmegaConf.to_container(cfg))}
    check_saved_config(OmegaConf.to_container(run_cfg), f"resume={run_dir}",
                       bool(cfg.get("trust_checkpoint")), also_trusted=own)  # fmt: skip
    for key in {override_key(o) for o in changed} - {"resume"}:
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


def settle_limits(cfg: DictConfig, checkpoint: dict[str, Any], ckpt_name: str,
                  run_dir: Path) -> None:  # fmt: skip
    """A resumed run's limits: those given on the command line, else those of the session that
    wrote the checkpoint `ckpt_name` (a run resumed once with trainer.max_epochs=30 and stopped
    again keeps 30). A completed run with no epoch left to train is refused before any work."""
    written_by = OmegaConf.create(checkpoint.get(CONFIG_KEY) or {})
    given = {override_key(o) for o in hydra_config.task_overrides()}
    for key in RESUME_OVERRIDABLE:
        value = OmegaConf.select(written_by, key, default=None)
        if key in given or value is None or value == OmegaConf.select(cfg, key, default=None):
            continue
        log.info("resume: %s=%s, as in the session that wrote %s", key, value, ckpt_name)
        OmegaConf.update(cfg, key, value, force_add=True)
    done = epochs_done(checkpoint)
    max_epochs = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    finished = auto_resume_state(run_dir) == "completed"
    if finished and max_epochs not in (None, -1) and done >= max_epochs:
        raise ConfigError(
            f"resume={run_dir}: the run has completed, and its {done} epochs reach "
            f"trainer.max_epochs={max_epochs}: nothing is left to train. To train it further, "
            f"give a larger limit (e.g. trainer.max_epochs={2 * done}); to test it again, "
            f"python eval.py ckpt_path={run_dir}"
        )


def epochs_done(checkpoint: dict[str, Any]) -> int:
    """Training epochs a Lightning checkpoint has finished (the current one not counted when it
    was written mid-epoch, by a stop)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    processed = progress.get("current", {}).get("processed")
    return int(processed) if processed is not None else int(checkpoint.get("epoch", 0))


def check_same_data(datamodule: Any, checkpoint: dict[str, Any]) -> None:
    """Data that is not the run's (see InMemoryDataModule.check_same_data) is refused before
    any work: Lightning restores the datamodule's state only once the run has started, and a
    run stopped then would be recorded as failed."""
    check = getattr(datamodule, "check_same_data", None)
    state = checkpoint.get(type(datamodule).__qualname__)
    if callable(check) and isinstance(state, dict):
        check(state)
