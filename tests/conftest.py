"""Shared fixtures: small synthetic IDX files, and a way to run train.py as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from goodfit.data.idx import write_idx
from goodfit.data.locate import FILES, SYSTEM_DIR

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = (
    SYSTEM_DIR
    if all(
        (SYSTEM_DIR / f"{stem}.gz").exists() or (SYSTEM_DIR / stem).exists()
        for stem in FILES.values()
    )
    else None
)


FASHION_FACTS = {"class_names": [f"class {i}" for i in range(10)], "num_classes": 10,
                 "channels": 1, "height": 28, "width": 28, "in_features": 784}  # fmt: skip


def make_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """Learnable 28×28 images: a fixed random template per class, plus noise."""
    rng = np.random.default_rng(seed)
    templates = np.random.default_rng(0).integers(0, 256, size=(10, 28, 28))
    noise = rng.integers(-60, 61, size=(len(labels), 28, 28))
    return np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)


def write_fashion_like(
    folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True
) -> Path:
    """Write the four IDX files of a small Fashion-MNIST look-alike into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for part, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        np.random.default_rng(seed).shuffle(labels)
        write_idx(folder / f"{part}-images-idx3-ubyte{suffix}", make_images(labels, seed))
        write_idx(folder / f"{part}-labels-idx1-ubyte{suffix}", labels)
    return folder


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fashion_like(tmp_path_factory.mktemp("fashion"))


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    if REAL_DATA is None:
        pytest.skip(f"real Fashion-MNIST not installed in {SYSTEM_DIR} (dataset-fashion-mnist)")
    return REAL_DATA


def synthetic_overrides(data_dir: Path) -> list[str]:
    """Overrides that point a run at synthetic data and keep it quick and quiet."""
    return [
        f"datamodule.data_dir={data_dir}",
        "datamodule.system_dir=null",
        "datamodule.download=false",
        "datamodule.eval_batch_size=100",
        "trainer.accelerator=cpu",
        "callbacks.rich_progress_bar=null",
    ]


def run_train(
    *args: str, check: bool = True, timeout: int = 300, script: Path | None = None
) -> subprocess.CompletedProcess:
    """Run `python train.py ARGS` in the project folder, as a user would."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(script or ROOT / "train.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(
            f"train.py {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture
def compose():
    """Compose conf/train.yaml with overrides through Hydra's compose API."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from goodfit.hydra_ext.resolvers import publish_data_facts

    # What `${data:…}` resolves to once Fashion-MNIST is loaded (train runs publish their own).
    publish_data_facts(FASHION_FACTS)

    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return hydra_compose(config_name="train", overrides=list(overrides))

    yield _compose
    GlobalHydra.instance().clear()


def group_options(group: str) -> list[str]:
    """Every choice of a config group, read from conf/<group>/."""
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))
