"""Checkpoints: written atomically with the run's config inside, and opened only as data.

A checkpoint is a pickle, and a pickle can run any code when it is opened. goodfit opens every
checkpoint with `torch.load(weights_only=True)`, which reads tensors and plain containers and
refuses anything else, so a crafted file is refused before it can do anything. What goodfit
saves is kept to such types (a test loads a real run's checkpoints that way).
"""

from __future__ import annotations

import io
import logging
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from goodfit.runtime.atomic import atomic_path, storage_error
from goodfit.runtime.errors import CheckpointError, first_line

log = logging.getLogger(__name__)

CONFIG_KEY = "goodfit_config"  # the composed config of the run that wrote the checkpoint
TRAINING_KEYS = ("state_dict", "loops", "optimizer_states")


class UnsafeCheckpointError(CheckpointError):
    """The file holds Python objects that could run code when opened; it was not opened."""


class RunCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, with three changes:

    - each checkpoint goes to a temporary file in the same folder and is renamed over the old
      one, so a crash or a full disk mid-write leaves the previous checkpoint intact;
    - `run_config` (the run's composed config, plain containers) is stored in every checkpoint
      under `goodfit_config`, so a checkpoint can rebuild its own run (eval, predict, resume);
    - checkpoints are always loaded with `weights_only=True`, whatever the caller asked.
    """

    def __init__(self, run_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.run_config = run_config

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if self.run_config is not None:
            checkpoint[CONFIG_KEY] = self.run_config
        check_opens_as_data(checkpoint, Path(path))  # before writing: the older file stays
        with atomic_path(path) as tmp:
            try:
                super().save_checkpoint(checkpoint, tmp, storage_options)
            except RuntimeError as err:
                # torch's zip writer reports a failed write as a RuntimeError, not an OSError
                if not _write_failed(err):
                    raise
                raise storage_error(Path(path), err) from None

    def load_checkpoint(
        self, path: _PATH, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint(Path(path))


def _write_failed(err: RuntimeError) -> bool:
    text = str(err)
    return "inline_container" in text or "write" in text.lower()


def load_checkpoint(path: Path, name: str = "checkpoint") -> dict[str, Any]:
    """A checkpoint's contents, read as data only. Raises UnsafeCheckpointError for a file that
    holds code-carrying objects, CheckpointError for a missing or damaged one; `name` says
    which setting gave the path (`ckpt_path`, `resume`, …)."""
    if not path.is_file():
        raise CheckpointError(f"{name}={path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{name}={path}: refused. The file holds Python objects other than tensors and plain "
            "containers, which could run code when opened, so goodfit did not open it. "
            f"(torch: {first_line(err, 200)})"
        ) from None
    except Exception as err:  # truncated, not a zip, not a pickle: damaged or foreign
        raise CheckpointError(f"{name}={path}: damaged or not a checkpoint ({err})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{name}={path}: not a checkpoint (holds {type(checkpoint).__name__})"
        )
    return checkpoint


def check_opens_as_data(checkpoint: dict[str, Any], path: Path) -> None:
    """Raise, naming the parts to blame, when `checkpoint` (about to be written to `path`) could
    not be opened as data: a callback's state or a module's extra holding a numpy number or
    another object would otherwise surface only when the run tests its best checkpoint, or
    resumes. A walk over the parts' types clears the usual checkpoint in microseconds; only a
    part it cannot clear is saved and loaded back as torch would."""
    parts = {f"the state of callback {name}": state
             for name, state in (checkpoint.get("callbacks") or {}).items()}  # fmt: skip
    parts.update({f"`{key}`": value for key, value in checkpoint.items()
                  if key not in (*_CHECKED_ELSEWHERE, "callbacks")})  # fmt: skip
    refused = [name for name, value in parts.items()
               if not _plainly_data(value) and not _opens_as_data(value)]  # fmt: skip
    if refused:
        raise UnsafeCheckpointError(
            f"{path}: the run's checkpoint could not be opened as data (goodfit opens checkpoints "
            f"only so): {', '.join(refused)} holds objects other than tensors and plain values "
            "(a numpy number, say). Store tensors, Python numbers, strings, lists and dicts "
            "(e.g. float(x)); the previous checkpoint, if any, is kept"
        )


# Tensors from the network and the optimizer, and goodfit's own config (plain containers)
_CHECKED_ELSEWHERE = ("state_dict", "optimizer_states", CONFIG_KEY)
_PLAIN_TYPES = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    torch.Size,
    torch.dtype,
    torch.device,
)
_MAPPINGS = (dict, OrderedDict)  # a state_dict() is an OrderedDict


def _plainly_data(value: Any) -> bool:
    """True when `value` is built only of types that loading as data always takes; False when
    it may hold others (then torch decides)."""
    kind = type(value)
    if kind in _MAPPINGS:
        return all(type(k) in (str, int) and _plainly_data(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plainly_data(item) for item in value)
    return kind in _PLAIN_TYPES or isinstance(value, torch.Tensor)


def hparams_not_data(obj: Any) -> dict[str, str]:
    """The hyper-parameters `obj` (a LightningModule or LightningDataModule) saved with
    `save_hyperparameters()` that Lightning's checkpoints would hold but that cannot be opened
    as data, each with its type. One of them makes every checkpoint of the run unopenable."""
    refused = {}
    for key, value in dict(getattr(obj, "hparams", None) or {}).items():
        if not _plainly_data(value) and not _opens_as_data(value):
            refused[str(key)] = f"{type(value).__module__}.{type(value).__qualname__}"
    return refused


def _opens_as_data(value: Any) -> bool:
    """Whether `value`, saved as a checkpoint is, loads back with `weights_only=True`."""
    buffer = io.BytesIO()
    try:
        torch.save(value, buffer)
        buffer.seek(0)
        torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception:  # refused as code, or not even savable (a lambda): either way unusable
        return False
    return True


def check_resumable(path: Path) -> dict[str, Any]:
    """The contents of `path`; raise when it is not a complete, safe checkpoint of a training
    run."""
    checkpoint = load_checkpoint(path)
    missing = [key for key in TRAINING_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint (no {', '.join(missing)})")
    return checkpoint


def resumable_checkpoint(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint to resume from, and its contents: `last.ckpt`, or when it is damaged, the
    newest other checkpoint in `folder` that loads. Each damaged one is reported. An unsafe file
    is never passed over: it means the folder was tampered with, and the resume is refused."""
    others = sorted(
        (p for p in folder.glob("*.ckpt") if p.name != "last.ckpt"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    candidates = [p for p in (folder / "last.ckpt", *others) if p.is_file()]
    failures = []
    for path in candidates:
        try:
            checkpoint = check_resumable(path)
        except UnsafeCheckpointError:
            raise
        except CheckpointError as err:
            log.error("%s; trying the previous checkpoint", err)
            failures.append(str(err))
            continue
        if path.name != "last.ckpt":
            log.warning("Resuming from %s instead", path)
        return path, checkpoint
    raise CheckpointError(
        f"No checkpoint to resume from in {folder}"
        + ("".join(f"\n  {f}" for f in failures) if failures else " (the folder holds none)")
    )
