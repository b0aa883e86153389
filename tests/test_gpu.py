"""GPU paths: run only where CUDA is available, skipped cleanly elsewhere (CI has no GPU)."""

from __future__ import annotations

import json

import pytest
import torch

from goodfit.data.augment import BatchAugment
from goodfit.data.fashion_mnist import FashionMNISTDataModule

from .conftest import run_train, synthetic_overrides

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def gpu_overrides(data_dir) -> list[str]:
    return [o for o in synthetic_overrides(data_dir) if not o.startswith("trainer.accelerator")]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_gpu_run_keeps_data_on_the_device(synthetic_dir, tmp_path, precision):
    run_dir = tmp_path / precision
    run_train("trainer=gpu", f"trainer.precision={precision}", "augmentation=strong",
              "debug=fast", f"hydra.run.dir={run_dir}", *gpu_overrides(synthetic_dir))  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["device"].startswith("cuda")
    assert summary["peak_memory_mb"] > 0 and 0.0 <= summary["test_acc"] <= 1.0


def test_datamodule_and_augmentation_on_the_gpu(synthetic_dir):
    class FakeTrainer:  # only what setup() asks of a trainer
        class strategy:  # noqa: N801
            root_device = torch.device("cuda", 0)

    dm = FashionMNISTDataModule(str(synthetic_dir), system_dir=None, download=False)
    dm.trainer = FakeTrainer()
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.is_cuda and labels.is_cuda, "batches are cut on the device"
    assert BatchAugment(max_shift=0.1, hflip=0.5, erase=0.5)(images).is_cuda
