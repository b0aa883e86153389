"""Opening a trained run: the one path eval, predict and resume take to a checkpoint's module.

A checkpoint (or a run folder) may come from anyone. Its contents are read as data only
(`goodfit.runtime.checkpoint_io.load_checkpoint`), and the config saved inside it is checked
before anything in it is built: every `_target_` must name a class of goodfit, torch,
torchvision or Lightning that builds a network, a module, data, an optimizer, a scheduler, a
Trainer, a callback or a logger. Anything else (a function, another package's class) is refused
unless the user says they trust the file (`trust_checkpoint=true`, `--trust`).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from goodfit.hydra_ext.targets import check_targets, targets
from goodfit.runtime.checkpoint_io import CONFIG_KEY, load_checkpoint
from goodfit.runtime.errors import CheckpointError, ConfigError, first_line

TRUSTED_PACKAGES = ("goodfit", "torch", "torchvision", "lightning")
TRUSTED_VALUES = ("datetime.timedelta",)  # plain values a config may build (a DDP timeout)


def _base_classes() -> tuple[type, ...]:
    import lightning as L
    import torch
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.strategies import Strategy
    from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

    return (torch.nn.Module, L.LightningDataModule, torch.optim.Optimizer, LRScheduler,
            ReduceLROnPlateau, L.Trainer, L.Callback, Logger, Strategy)  # fmt: skip


def untrusted_target(target: str) -> str | None:
    """Why `target` may not be built from a file's config, or None when it may."""
    if target in TRUSTED_VALUES:
        return None
    module_name, _, name = target.rpartition(".")
    if module_name.split(".")[0] not in TRUSTED_PACKAGES:
        return f"{target} is not a class of {', '.join(TRUSTED_PACKAGES)}"
    try:  # importing goodfit's, torch's or Lightning's own modules runs nothing of the file's
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return f"{target} does not exist"
    if not (isinstance(found, type) and issubclass(found, _base_classes())):
        return f"{target} is not a network, module, data, optimizer, scheduler or trainer class"
    return None


def untrusted_targets(config: Any, also_trusted: Collection[str] = ()) -> list[str]:
    """`key: why` for each `_target_` of `config` that may not be built from a file's config;
    `also_trusted`: targets the user's own command builds anyway (nothing new runs)."""
    return [f"{key}: {why}" for key, target in targets(config) if target not in also_trusted
            and (why := untrusted_target(target)) is not None]  # fmt: skip


def check_saved_config(
    config: dict[str, Any], source: str, trust: bool, also_trusted: Collection[str] = ()
) -> None:
    """Refuse a saved config that would build anything but known classes (unless trusted)."""
    if trust:
        return
    problems = untrusted_targets(config, also_trusted)
    if problems:
        raise CheckpointError(
            f"{source}: refused. Its saved config would build:\n  "
            + "\n  ".join(problems)
            + "\nBuilding what a file names can run code. If you trust this file, say so: "
            "trust_checkpoint=true (eval.py, train.py resume=…) or --trust (predict)."
        )


@dataclass
class TrainedRun:
    """A checkpoint's module (in eval mode, on the CPU), its run's config and its contents."""

    module: Any
    config: DictConfig
    checkpoint: dict[str, Any]


def saved_config(checkpoint: dict[str, Any], path: Path, name: str) -> DictConfig:
    config = checkpoint.get(CONFIG_KEY)
    if not isinstance(config, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{name}={path}: not a goodfit checkpoint (no {CONFIG_KEY})")
    return OmegaConf.create(config)


def load_trained(path: Path, trust: bool = False, name: str = "ckpt_path") -> TrainedRun:
    """Open a goodfit checkpoint safely and rebuild its module with the trained weights."""
    from hydra.utils import get_class

    from goodfit.models import build_network

    checkpoint = load_checkpoint(path, name)
    config = saved_config(checkpoint, path, name)
    check_saved_config(OmegaConf.to_container(config), f"{name}={path}", trust)
    try:
        check_targets(config)
    except ConfigError as err:  # a trusted run's own code, not importable from here
        raise CheckpointError(
            f"{name}={path}: its config names code that does not import here (run from the "
            "folder that holds it, or add that folder to PYTHONPATH):\n  "
            + "\n  ".join(str(err).splitlines())
        ) from None
    net = build_network({**OmegaConf.to_container(config.model), "compile": False})
    module_class = get_class(config.module._target_)
    try:
        # A module's __init__ takes the optimizer and scheduler partials, which stay out of
        # its saved hyper-parameters; testing and predicting use neither.
        module = module_class.load_from_checkpoint(path, map_location="cpu", net=net,
                                                   optimizer=None, scheduler=None,
                                                   weights_only=True)  # fmt: skip
    except RuntimeError as err:  # weights whose shapes do not fit the saved config
        raise CheckpointError(
            f"{name}={path}: its weights do not fit the network its config describes "
            f"({first_line(err)})"
        ) from None
    except TypeError as err:  # an __init__ argument that save_hyperparameters left out
        raise CheckpointError(
            f"{name}={path}: {config.module._target_} cannot be rebuilt from its checkpoint "
            f"({err}); its __init__ arguments other than net, optimizer and scheduler must be "
            "saved with self.save_hyperparameters()"
        ) from None
    module.eval()
    return TrainedRun(module, config, checkpoint)


def find_checkpoint(path: Path, name: str, typed: Callable[[Path], str] = str) -> Path:
    """A checkpoint file as given; for a run folder, the checkpoint its own test used. `name`:
    the argument that gave `path`, for the message; `typed`: how to type another path for it."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"{name}={path}: no such checkpoint file or run folder")
    best = _best_of_summary(path)
    if best is not None:
        return best
    for file in ("best.ckpt", "last.ckpt"):
        if (path / "checkpoints" / file).is_file():
            return path / "checkpoints" / file
    runs = sorted(p.parent.parent for p in path.glob("*/checkpoints/*.ckpt"))
    hint = f"; it holds runs: give one of them, e.g. {typed(runs[0])}" if runs else ""
    raise ConfigError(f"{name}={path}: the folder holds no checkpoints/best.ckpt or last.ckpt"
                      f"{hint}")  # fmt: skip


def _best_of_summary(run_dir: Path) -> Path | None:
    """The checkpoint the run's summary.json names as tested, found in `run_dir` when the run
    wrote it there (the folder may have been moved or copied since: the file there, not the one
    at the old place); None when there is none."""
    summary = run_dir / "summary.json"
    if not summary.is_file():
        return None
    record = json.loads(summary.read_text())
    best, written_in = record.get("best_checkpoint"), record.get("run_dir")
    if not best:
        return None
    # Lightning names the file by its real path; the record has the folder as configured.
    for folder in {written_in, str(Path(written_in).resolve())} if written_in else ():
        if Path(best).is_relative_to(folder):
            best = run_dir / Path(best).relative_to(folder)
            break
    return Path(best) if Path(best).is_file() else None
