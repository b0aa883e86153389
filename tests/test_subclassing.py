"""A user's variations on goodfit's parts: a Classifier subclass with its own loss, one whose
own training step counts nothing, a module whose forward wants more than images, a datamodule
of DataLoaders that takes an augmentation. Each trains, and its record says what it measured."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from goodfit.models import MLP

from .conftest import run_train, synthetic_overrides
from .plugins import SmoothedClassifier


def module_config(conf: Path, name: str, target: str) -> str:
    """`module=<name>`: goodfit's classifier.yaml with another `_target_`."""
    (conf / "module").mkdir(parents=True, exist_ok=True)
    (conf / "module" / f"{name}.yaml").write_text(
        f"_target_: {target}\noptimizer: ${{optimizer}}\nscheduler: ${{scheduler}}\n"
        "class_names: ${data:class_names}\n"
    )
    return f"module={name}"


def train_two_epochs(tmp_path: Path, data_dir: Path, target: str) -> tuple[str, dict]:
    """train.py with `module=` a file naming `target`, two quick epochs on synthetic data: its
    console output (one line) and its summary.json."""
    conf = tmp_path / "conf"
    choice = module_config(conf, "mine", target)
    run_dir = tmp_path / "run"
    result = run_train("debug=fast", "trainer.max_epochs=2", f"hydra.searchpath=[file://{conf}]",
                       choice, f"hydra.run.dir={run_dir}",
                       *synthetic_overrides(data_dir))  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    return output, json.loads((run_dir / "summary.json").read_text())


def test_a_subclass_loss_is_every_stages_loss():
    """compute_loss is the loss of training, validation, test and callbacks.train_eval alike, so
    the curves' gap compares like with like (label smoothing's loss against its own)."""
    from goodfit.callbacks.train_eval import _loss_sum  # what train_eval sums per batch

    torch.manual_seed(0)
    module = SmoothedClassifier(MLP(in_features=16, num_classes=3, hidden=[8]),
                                class_names=["a", "b", "c"])  # fmt: skip
    module.eval()  # no dropout: every call gives the same scores
    images, labels = torch.randn(12, 1, 4, 4), torch.randint(0, 3, (12,))
    logits = module(images)
    smoothed = F.cross_entropy(logits, labels, label_smoothing=0.2)
    assert not torch.isclose(smoothed, F.cross_entropy(logits, labels))
    assert torch.isclose(module.training_loss((images, labels)), smoothed)
    module.validation_step((images, labels), 0)
    assert torch.isclose(module.val_metrics.compute_and_reset()["loss"], smoothed)
    assert torch.isclose(_loss_sum(module, logits, labels), smoothed * 12)
    # a module's own compute_loss of another kind (of a batch) is not called with scores
    module.compute_loss = lambda batch: 1 / 0
    assert torch.isclose(_loss_sum(module, logits, labels), F.cross_entropy(logits, labels) * 12)


def test_a_subclass_step_that_counts_nothing_logs_no_curve_rather_than_nan(synthetic_dir, tmp_path):
    """Its train/loss was NaN, with torchmetrics' warning, and the verdict called the run a
    good fit on a gap of NaN."""
    output, summary = train_two_epochs(tmp_path, synthetic_dir, "tests.plugins.UncountedClassifier")
    assert (
        "UncountedClassifier counted no train batch, so train/loss and train/acc are not "
        "logged. A subclass changes the loss with compute_loss(logits, labels)"
    ) in output
    assert output.count("counted no train batch") == 1  # once a run, not once an epoch
    assert "before the update method" not in output
    for epoch in summary["history"]:
        assert epoch["train_loss"] is None and math.isfinite(epoch["val_loss"])
    # judged on the training loss measured as validation's, and said so
    assert summary["verdict_reasons"][0] == (
        "The module logs no training loss (train/loss): the training loss judged is the one "
        "measured as validation's (train_eval/loss)."
    )
    assert summary["generalization_gap"] == pytest.approx(
        summary["history"][-1]["val_loss"] - summary["history"][-1]["train_eval_loss"]
    )
    assert "nan" not in json.dumps(summary).lower()


def test_a_forward_wanting_more_than_images_is_not_used_to_measure_training_images(
    synthetic_dir, tmp_path
):
    """train_eval skips a forward(images, offset) with a line that says why: the call raised a
    TypeError at the first validation, and the run ended in a traceback."""
    output, summary = train_two_epochs(tmp_path, synthetic_dir, "tests.plugins.TwoInputModule")
    assert (
        "callbacks.train_eval: TwoInputModule.forward(images, offset) wants more than a batch "
        "of images"
    ) in output
    assert summary["epochs_run"] == 2 and summary["history"][-1]["train_eval_loss"] is None


def test_a_datamodule_of_dataloaders_that_takes_an_augmentation_trains_without_preview(tmp_path):
    """The augmentation preview read `datamodule.train.images`, which such a datamodule does not
    keep: the run failed with an AttributeError before its first batch."""
    conf = tmp_path / "conf"
    (conf / "datamodule").mkdir(parents=True)
    (conf / "datamodule" / "aug.yaml").write_text(
        "_target_: tests.plugins.UserDataWithAugmentation\n"
    )
    run_dir = tmp_path / "run"
    result = run_train(f"hydra.searchpath=[file://{conf}]", "datamodule=aug", "augmentation=light",
                       "trainer.max_epochs=2", f"hydra.run.dir={run_dir}")  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    assert (
        "callbacks.augmentation_preview: UserDataWithAugmentation keeps no training images "
        "in memory (train.images); no preview"
    ) in output
    assert json.loads((run_dir / "summary.json").read_text())["epochs_run"] == 2
    assert not (run_dir / "augmentation_preview.png").exists()
