"""What the GPU check records about the machine, and the data it runs on."""

from __future__ import annotations

import importlib.metadata as metadata
import subprocess
from pathlib import Path
from typing import Any

from bench.gpu_env import GPU_DIR, ROOT, wheels_dir


def _command(cmd: list[str]) -> str | None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict[str, Any]:
    """The GPU, its driver, CUDA, and the versions of what runs on it."""
    import torch

    from bench.loop import machine

    facts: dict[str, Any] = machine()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        smi = _command(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
        facts.update({
            "gpu": props.name, "gpu_count": torch.cuda.device_count(),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "compute_capability": f"{props.major}.{props.minor}",
            "driver": smi.splitlines()[0] if smi else None,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
        })  # fmt: skip
    for name in ("torchvision", "torchmetrics", "hydra-core", "omegaconf", "numpy"):
        facts[name] = _version(name)
    facts["commit"] = _command(["git", "rev-parse", "--short", "HEAD"])
    return facts


def data_candidates() -> list[Path]:
    """Where the real data is looked for: the project's data folder (plain or torchvision's
    layout), Debian's package, and the folders that travel with the wheels."""
    from goodfit.data.locate import SYSTEM_DIR, candidate_folders

    folders = candidate_folders(ROOT / "data", SYSTEM_DIR)
    return [*folders, GPU_DIR / "data", wheels_dir().parent / "data", wheels_dir()]


def find_real_data() -> Path | None:
    from goodfit.data.locate import files_in
    from goodfit.runtime.errors import DataError

    for folder in data_candidates():
        try:
            if folder.is_dir() and files_in(folder) is not None:
                return folder
        except DataError:  # an incomplete copy: the next place may hold a whole one
            continue
    return None


def write_synthetic(folder: Path, n_train: int, n_test: int) -> Path:
    """A Fashion-MNIST look-alike (a random template per class plus noise): the right shapes,
    so the runs and their timings are real, but accuracies that mean nothing."""
    import numpy as np

    from goodfit.data.idx import write_idx

    folder.mkdir(parents=True, exist_ok=True)
    templates = np.random.default_rng(0).integers(0, 256, size=(10, 28, 28))
    for part, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        rng = np.random.default_rng(seed)
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        noise = rng.integers(-60, 61, size=(n, 28, 28))
        images = np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)
        write_idx(folder / f"{part}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{part}-labels-idx1-ubyte.gz", labels)
    return folder


def data_overrides(dry: bool, runs: Path) -> tuple[list[str], dict[str, Any]]:
    """The overrides that point every run at its data, and what the record says of it."""
    real = None if dry else find_real_data()
    if real is not None:
        folder, note = real, {"data": f"Fashion-MNIST from {real}"}
    else:
        sizes = (1200, 200) if dry else (60000, 10000)
        folder = write_synthetic(runs / "synthetic_data", *sizes)
        note = {"data": f"SYNTHETIC ({sizes[0]} training, {sizes[1]} test images): accuracies "
                "mean nothing" + ("" if dry else "; real data not found in " +
                                  ", ".join(str(p) for p in data_candidates()))}  # fmt: skip
    overrides = [f"datamodule.data_dir={folder}", "datamodule.system_dir=null",
                 "datamodule.download=false"]  # fmt: skip
    if real is None:  # a synthetic set of the standard sizes is not the standard set
        overrides.append("datamodule.verify_checksums=false")
    return overrides, note
