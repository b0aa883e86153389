"""OmegaConf resolvers the configs use; registered when goodfit's entry points import this."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

# Drawn once per process: two runs started in the same second get different folders.
RUN_UID = secrets.token_hex(3)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def swept_keys(sweep_dir: Path) -> set[str] | None:
    """Keys given several values on the command line, read from the sweep's multirun.yaml
    (written by Hydra's basic sweeper before it launches); None when it cannot be known."""
    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file():
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = list(OmegaConf.load(saved).hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(overrides)
    return {o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()}


def job_dirname(sweep_dir: str, task_overrides: Sequence[str], job_num: int | str) -> str:
    """A multirun job's folder, named after the overrides its sweep varies (`optimizer=sgd`).

    Overrides shared by every job (a data folder, a number of epochs) stay out of the name.
    When the swept keys are unknown, every override is used, with `/` replaced so the name
    stays one folder; `job<N>` when there is nothing to name it by.
    """
    overrides = [str(o) for o in task_overrides]
    swept = swept_keys(Path(sweep_dir))
    if swept is not None:
        overrides = [o for o in overrides if _key(o) in swept]
    name = ",".join(overrides).replace("/", "_")
    return name or f"job{job_num}"


def resume_or(resume: str | None, new_run_dir: str) -> str:
    """The run folder: the one being resumed (`resume=<folder>`), else a new one."""
    return resume if resume else new_run_dir


def unless_resuming(resume: str | None, value: str) -> str | None:
    """`value`, or None when resuming (the resumed folder keeps its original `.hydra/`)."""
    return None if resume else value


def register() -> None:
    if not OmegaConf.has_resolver("goodfit.uid"):
        OmegaConf.register_new_resolver("goodfit.uid", lambda: RUN_UID)
    if not OmegaConf.has_resolver("goodfit.job_dir"):
        OmegaConf.register_new_resolver("goodfit.job_dir", job_dirname)
    if not OmegaConf.has_resolver("goodfit.resume_or"):
        OmegaConf.register_new_resolver("goodfit.resume_or", resume_or)
    if not OmegaConf.has_resolver("goodfit.unless_resuming"):
        OmegaConf.register_new_resolver("goodfit.unless_resuming", unless_resuming)


register()
