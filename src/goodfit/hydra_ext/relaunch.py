"""DDP inside Hydra: each extra process is relaunched as this job alone, in this job's folder.

Lightning's subprocess launcher starts every extra DDP process by re-running the script. Under
Hydra it builds that command with `_hydra_subprocess_cmd`, which re-runs `sys.argv`: inside a
multirun that holds `-m` and the whole sweep, so each child would start a sweep of its own (and
re-train finished jobs in their folders), and it points the child at `hydra.run.dir`, which in a
multirun is not the job's folder. Lightning has no public setting for this command, so
`job_relaunch()` replaces the function in the module that calls it, for one run only, checks
that the replacement took, and restores Lightning's own afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from goodfit.hydra_ext.hydra_config import hydra_cfg, override_strings
from goodfit.hydra_ext.overrides import override_key
from goodfit.runtime.errors import ConfigError

# The module whose global Lightning's Trainer calls (the fabric module holds another copy,
# bound at import, which the Trainer never uses).
LAUNCHER_MODULE = "lightning.pytorch.strategies.launchers.subprocess_script"
COMMAND_FUNCTION = "_hydra_subprocess_cmd"
# Overrides that would turn a child into a sweep or search of its own.
_SWEEP_GROUPS = ("hparams_search",)
# Hydra overrides the child does not inherit: those it sets itself (below), and the sweeper's
# (the child runs one job; a search's keys do not exist without its sweeper).
_NOT_INHERITED = ("hydra.run.dir", "hydra.job.name", "hydra.output_subdir", "hydra.mode",
                  "hydra/sweeper", "hydra.sweeper")  # fmt: skip


def _hydra_overrides(cfg: Any) -> list[str]:
    """The job's own Hydra overrides (`hydra.searchpath=[…]`, `hydra/launcher=…`, …): a child
    composed without a user's config folder would not find the user's config files."""
    return [
        override for override in cfg.overrides.hydra
        if not any(override_key(override) == key or override_key(override).startswith(key + ".")
                   for key in _NOT_INHERITED)
    ]  # fmt: skip


def _config_flags(cfg: Any) -> list[str]:
    """`--config-path`, `--config-dir` and `--config-name` as the job was started with: they
    are not overrides, so Hydra keeps them only in its config sources and the job's name."""
    flags = [f"--config-name={cfg.job.config_name}"]
    for source in cfg.runtime.config_sources:
        if source.provider == "main" and source.schema == "file":
            flags.append(f"--config-path={source.path}")
        elif source.provider == "command-line":
            flags.append(f"--config-dir={source.path}")
    return flags


def child_command(local_rank: int) -> tuple[Sequence[str], str]:
    """The command and folder for DDP process `local_rank` of the current Hydra job."""
    cfg = hydra_cfg()
    assert cfg is not None, "the relaunch is only installed inside a Hydra run"
    script = Path(cfg.runtime.cwd, sys.argv[0]).resolve()
    overrides = [
        o for o in override_strings(cfg.overrides.task) if override_key(o) not in _SWEEP_GROUPS
    ]
    command = [
        sys.executable,
        str(script),
        *_config_flags(cfg),
        *overrides,
        *_hydra_overrides(cfg),
        f'hydra.run.dir="{cfg.runtime.output_dir}"',  # quoted: folder names hold = and ,
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",  # rank 0 already wrote .hydra/
        "hydra.mode=RUN",  # a search config may set MULTIRUN
    ]
    return command, str(cfg.runtime.cwd)


def _launcher_module():  # -> module
    import importlib

    import lightning

    try:
        module = importlib.import_module(LAUNCHER_MODULE)
    except ImportError as err:
        raise ConfigError(_moved(lightning.__version__)) from err
    if not callable(getattr(module, COMMAND_FUNCTION, None)):
        raise ConfigError(_moved(lightning.__version__))
    return module


def _moved(version: str) -> str:
    return (
        f"Lightning {version} has no {LAUNCHER_MODULE}.{COMMAND_FUNCTION}, which goodfit "
        "replaces so that DDP processes inside a Hydra run relaunch this job alone. Install the "
        "Lightning release pyproject.toml names (lightning>=2.6,<2.7)."
    )


@contextmanager
def job_relaunch() -> Iterator[None]:
    """Inside a Hydra run: DDP children relaunch this job alone while the block runs."""
    if hydra_cfg() is None:  # Lightning re-runs a plain script as it is: nothing to fix
        yield
        return
    module = _launcher_module()
    original = getattr(module, COMMAND_FUNCTION)
    setattr(module, COMMAND_FUNCTION, child_command)
    if getattr(module, COMMAND_FUNCTION) is not child_command:  # a read-only or proxied module
        raise ConfigError(_moved(__import__("lightning").__version__))
    try:
        yield
    finally:
        setattr(module, COMMAND_FUNCTION, original)
