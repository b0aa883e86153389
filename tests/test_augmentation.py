"""Augmentation of whole batches, training subsets, and the convnets."""

from __future__ import annotations

import functools
import json

import lightning as L
import pytest
import torch

from goodfit.data.augment import BatchAugment
from goodfit.data.fashion_mnist import FashionMNISTDataModule, per_class_subset
from goodfit.lit import Classifier
from goodfit.models import CNN, MLP, ResNet

from .conftest import run_train, synthetic_overrides

STRONG = {"max_shift": 0.1, "max_rotation": 10.0, "hflip": 0.5, "erase": 0.5}


def test_augmentation_keeps_shape_dtype_and_varies_per_image():
    torch.manual_seed(0)
    images = torch.rand(1, 1, 28, 28).expand(64, 1, 28, 28).contiguous()  # one image, 64 times
    out = BatchAugment(**STRONG)(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    distinct = {tuple(o.flatten()[:50].tolist()) for o in out}
    assert len(distinct) > 32, "each image draws its own parameters"


def test_flip_alone_mirrors_exactly():
    images = torch.rand(8, 1, 28, 28)
    out = BatchAugment(hflip=1.0)(images)
    assert torch.allclose(out, images.flip(-1), atol=1e-5)
    assert torch.equal(BatchAugment()(images), images), "all zero: identity"


def test_erasing_fills_one_rectangle_with_the_value():
    images = torch.ones(16, 1, 28, 28)
    out = BatchAugment(erase=1.0, erase_value=0.0)(images)
    erased = (out == 0).flatten(1).sum(1)
    assert (erased > 0).all() and (erased < 28 * 28 * 0.5).all()


def test_augmentation_is_seeded():
    images = torch.rand(8, 1, 28, 28)
    torch.manual_seed(3)
    a = BatchAugment(**STRONG)(images)
    torch.manual_seed(3)
    assert torch.equal(a, BatchAugment(**STRONG)(images))


BAD_VALUES = [
    ({"hflip": 1.5}, "hflip"),
    ({"max_rotation": -1}, "max_rotation"),
    ({"erase_scale": (0.5, 0.1)}, "erase_scale"),
]


@pytest.mark.parametrize(("kwargs", "key"), BAD_VALUES)
def test_bad_augmentation_values_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=f"augmentation.{key}"):
        BatchAugment(**kwargs)


class Recorder(L.Callback):
    """Keeps every batch the module sees, per stage."""

    def __init__(self) -> None:
        self.seen: dict[str, list] = {"train": [], "val": [], "test": []}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen["train"].append(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.seen["val"].append(batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.seen["test"].append(batch)


def test_only_training_batches_are_augmented_and_labels_stay_aligned(synthetic_dir):
    dm = FashionMNISTDataModule(str(synthetic_dir), system_dir=None, download=False,
                                batch_size=50, eval_batch_size=50, val_split=0.1,
                                augmentation=BatchAugment(hflip=1.0))  # fmt: skip
    recorder = Recorder()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, callbacks=[recorder],
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    model = Classifier(
        MLP(hidden=(8,)), functools.partial(torch.optim.SGD, lr=0.1), class_names=list("0123456789")
    )
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)
    order = dm.train_dataloader().sampler.order()  # epoch 0's permutation
    images, labels = dm.train.images[order][:50], dm.train.labels[order][:50]
    first_images, first_labels = recorder.seen["train"][0]
    assert torch.equal(first_labels, labels)
    assert torch.allclose(first_images, images.flip(-1), atol=1e-5), "flipped, same order"
    val_images, _ = recorder.seen["val"][0]
    test_images, _ = recorder.seen["test"][0]
    assert torch.equal(val_images, dm.val.images[:50]), "validation data untouched"
    assert torch.equal(test_images, dm.test.images[:50]), "test data untouched"


@pytest.mark.slow
def test_augmented_run_writes_its_preview(synthetic_dir, tmp_path):
    from PIL import Image

    run_dir = tmp_path / "aug"
    run_train("augmentation=light", "debug=fast", f"hydra.run.dir={run_dir}",
              *synthetic_overrides(synthetic_dir))  # fmt: skip
    with Image.open(run_dir / "augmentation_preview.png") as preview:
        assert preview.format == "PNG" and preview.width > 300 and preview.height > 200
    from .tensorboard_read import load_events

    assert "views/augmentation_preview" in load_events(run_dir).Tags()["images"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["test_acc"] >= 0.0


def test_train_subset_has_exactly_n_per_class():
    labels = torch.arange(100) % 10
    chosen = per_class_subset(labels, torch.arange(100), 3, seed=1)
    assert torch.bincount(labels[chosen], minlength=10).tolist() == [3] * 10
    assert torch.equal(chosen, per_class_subset(labels, torch.arange(100), 3, seed=1))
    assert not torch.equal(chosen, per_class_subset(labels, torch.arange(100), 3, seed=2))
    with pytest.raises(ValueError, match="train_subset=11"):
        per_class_subset(labels, torch.arange(100), 11, seed=1)


@pytest.mark.slow
def test_train_subset_in_a_run(synthetic_dir, tmp_path):
    run_dir = tmp_path / "subset"
    run_train("datamodule.train_subset=5", "debug=fast", f"hydra.run.dir={run_dir}",
              *synthetic_overrides(synthetic_dir))  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n_train"] == 50 and summary["n_test"] == 200


@pytest.mark.parametrize("net", [CNN(), ResNet()], ids=["cnn", "resnet"])
def test_convnets_have_a_backbone_and_a_head(net):
    x = torch.rand(3, 1, 28, 28)
    assert net(x).shape == (3, 10)
    features = net.features(x)
    assert features.ndim == 2 and net.classifier(features).shape == (3, 10)
