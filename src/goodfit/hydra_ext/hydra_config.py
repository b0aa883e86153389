"""The one place goodfit reads Hydra's runtime config (HydraConfig). Outside a Hydra run (a test
calling a task directly) every function answers as for a run without Hydra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def hydra_cfg() -> Any | None:
    """Hydra's own config of the current run (`hydra.*`), or None outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def choices() -> dict[str, Any]:
    """The config-group choices (`model: mlp_good`, …) of the current run."""
    cfg = hydra_cfg()
    return dict(cfg.runtime.choices) if cfg is not None else {}


def task_overrides() -> list[str]:
    """The command-line overrides of the current job (`optimizer=sgd`, …), as typed."""
    cfg = hydra_cfg()
    return override_strings(cfg.overrides.task) if cfg is not None else []


def override_strings(overrides: Any) -> list[str]:
    """Hydra's saved list of overrides as they were typed. Reading the list itself would resolve
    each `${…}` in them, and `model.in_features=${data:in_features}` cannot be resolved before
    the data is loaded."""
    return [str(o) for o in OmegaConf.to_container(overrides, resolve=False)]


def searchpath_overrides(saved_run: Path | None = None) -> list[str]:
    """`hydra.searchpath=[…]` for composing a config again as the current job was composed (or,
    given `saved_run`, the run in that folder, with its `--config-dir` too, which a later
    process does not have): a user's config folders."""
    if saved_run is not None:
        saved = saved_run / ".hydra" / "hydra.yaml"
        hydra = OmegaConf.load(saved).get("hydra") if saved.is_file() else None
        hydra = hydra if hydra is not None else OmegaConf.create()
        entries = [str(e) for e in OmegaConf.select(hydra, "searchpath", default=None) or []]
        sources = OmegaConf.select(hydra, "runtime.config_sources", default=None) or []
        entries += [f"file://{s.path}" for s in sources if s.provider == "command-line"]
    else:
        cfg = hydra_cfg()
        entries = [str(e) for e in cfg.searchpath] if cfg is not None else []
    return [f"hydra.searchpath=[{','.join(entries)}]"] if entries else []


def in_multirun() -> bool:
    from hydra.types import RunMode

    cfg = hydra_cfg()
    return cfg is not None and cfg.mode == RunMode.MULTIRUN


def output_dir() -> str | None:
    cfg = hydra_cfg()
    return str(cfg.runtime.output_dir) if cfg is not None else None


def sweep_dir() -> str | None:
    """The sweep folder of a multirun; None in a single run."""
    cfg = hydra_cfg()
    return str(cfg.sweep.dir) if cfg is not None and in_multirun() else None


def launch_dir() -> str | None:
    """The folder the command was started in."""
    cfg = hydra_cfg()
    return str(cfg.runtime.cwd) if cfg is not None else None


def parallel_jobs() -> int | None:
    """`hydra.launcher.n_jobs` when this job runs under the joblib launcher, else None."""
    cfg = hydra_cfg()
    if cfg is None or not in_multirun():
        return None
    launcher = cfg.get("launcher") or {}
    if not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return None
    n_jobs = launcher.get("n_jobs", -1)
    return 1 if n_jobs is None else int(n_jobs)  # joblib reads None as one job
