"""Checkpoints that are never half written, and finding one that loads."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from goodfit.errors import CheckpointLoadError

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, then renames it over the
    old one: a crash or a full disk mid-write leaves the previous checkpoint intact."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def check_loadable(path: Path) -> None:
    """Raise when `path` is not a complete Lightning checkpoint of a training run."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    missing = [key for key in ("state_dict", "loops", "optimizer_states") if key not in checkpoint]
    if missing:
        raise ValueError(f"not a training checkpoint (no {', '.join(missing)})")


def resumable_checkpoint(folder: Path) -> Path:
    """The checkpoint to resume from: `last.ckpt`, or when it fails to load, the newest other
    checkpoint in `folder` that loads. Each one that fails is reported."""
    others = sorted(
        (p for p in folder.glob("*.ckpt") if p.name != "last.ckpt"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    candidates = [folder / "last.ckpt", *others]
    failures = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            check_loadable(path)
        except Exception as err:  # any failure to read it means: try the previous one
            log.error("Checkpoint %s cannot be loaded (%s); trying the previous one", path, err)
            failures.append(f"{path}: {err}")
            continue
        if path != candidates[0]:
            log.warning("Resuming from %s instead", path)
        return path
    raise CheckpointLoadError(
        f"No checkpoint to resume from in {folder}"
        + ("".join(f"\n  {f}" for f in failures) if failures else " (the folder holds none)")
    )
