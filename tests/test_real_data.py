"""On the real Fashion-MNIST (skipped when dataset-fashion-mnist is not installed)."""

from __future__ import annotations

import json

import pytest

from .conftest import run_train

pytestmark = pytest.mark.realdata


def test_one_epoch_of_the_good_experiment(real_data_dir, tmp_path):
    run_dir = tmp_path / "good"
    run_train(
        "experiment=good", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}",
        f"datamodule.system_dir={real_data_dir}", "datamodule.data_dir=null",
        "datamodule.download=false", "callbacks.rich_progress_bar=null",
    )  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["params_total"] == 694_950
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (56_400, 3_600, 10_000)
    assert summary["epochs_run"] == 1
    assert summary["test_acc"] >= 0.80


@pytest.mark.slow
def test_a_short_transfer_study_beats_training_from_scratch(real_data_dir, tmp_path):
    """experiment=finetune shortened (1 pretraining epoch, 3 epochs per arm), about a minute."""
    run_dir = tmp_path / "finetune"
    run_train(
        "experiment=finetune", "trainer.max_epochs=3", "transfer.head.epochs=10",
        "+transfer.pretrain.trainer.max_epochs=1",
        "callbacks.rich_progress_bar=null", f"hydra.run.dir={run_dir}",
        f"datamodule.system_dir={real_data_dir}", "datamodule.data_dir=null",
        "datamodule.download=false", timeout=600,
    )  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (100, 2_950, 5_000)
    assert summary["pretrain_test_acc"] >= 0.85
    assert summary["test_acc"] >= 0.85
    assert summary["test_acc"] > summary["scratch_test_acc"]
