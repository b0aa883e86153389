"""MNIST-like IDX sets described by their config, CIFAR-10's python batches, and the shapes and
defaults each data set hands to the networks and the augmentation."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest
import torch

from goodfit.data.cifar import CIFAR10DataModule, read_batch
from goodfit.data.idx import IDXError, read_idx
from goodfit.data.idx_data import IDXDataModule
from goodfit.hydra_ext.checks import validate
from goodfit.hydra_ext.resolvers import publish_data_facts
from goodfit.models import CNN, build_network
from goodfit.runtime.errors import ConfigError, DataError, DataNotFoundError

from .conftest import FASHION_FACTS
from .data_files import CIFAR_NAMES, write_cifar, write_idx_set

# ------------------------------------------------------------------------------ IDX data sets


def test_mnist_files_plain_or_gz_just_work(tmp_path, compose):
    from hydra.utils import instantiate

    for gz in (True, False):
        folder = write_idx_set(tmp_path / f"mnist{gz}", gz=gz)
        cfg = compose("datamodule=mnist", f"datamodule.data_dir={folder}")
        dm = instantiate(cfg.datamodule)
        dm.prepare_data()
        dm.setup("fit")
        assert dm.class_names == tuple(str(d) for d in range(10))
        assert dm.image_shape == (1, 28, 28)
        assert dm.sizes == {"n_train": 108, "n_val": 12, "n_test": 40}


def test_torchvision_layout_and_not_found_message(tmp_path):
    write_idx_set(tmp_path / "MNIST" / "raw")
    dm = IDXDataModule(str(tmp_path), torchvision_name="MNIST")
    dm.prepare_data()
    assert dm.files.folder == tmp_path / "MNIST" / "raw"
    empty = IDXDataModule(str(tmp_path / "none"), name="KMNIST", torchvision_name="KMNIST")
    with pytest.raises(DataNotFoundError, match=r"(?s)KMNIST not found.*download is false"):
        empty.prepare_data()


def test_any_idx_set_from_its_config(tmp_path):
    """File names, class names, checksums, non-square images, transposition, label offset."""
    names = {"train_images": "a-img", "train_labels": "a-lbl", "test_images": "b-img",
             "test_labels": "b-lbl"}  # fmt: skip
    folder = write_idx_set(tmp_path / "mine", n_train=30, n_test=12, classes=3, size=(9, 14),
                           names=names, gz=False)  # fmt: skip
    test_labels = read_idx(folder / "b-lbl", ndim=1)
    digest = hashlib.sha256(test_labels.numpy().tobytes()).hexdigest()
    dm = IDXDataModule(str(folder), name="Mine", class_names=["x", "y", "z"], files=names,
                       checksums={"test_labels": digest}, transpose=True)  # fmt: skip
    dm.prepare_data()
    dm.setup()
    assert dm.class_names == ("x", "y", "z") and dm.image_shape == (1, 14, 9)
    wrong = IDXDataModule(str(folder), name="Mine", class_names=["x", "y", "z"], files=names,
                          checksums={"test_labels": "0" * 64})  # fmt: skip
    with pytest.raises(IDXError, match=r"b-lbl: content differs from the standard Mine file"):
        wrong.setup()
    with pytest.raises(IDXError, match=r"a-lbl: label 2 outside 0..1"):
        IDXDataModule(str(folder), class_names=["x", "y"], files=names).setup()
    shifted = IDXDataModule(str(folder), class_names=["y", "z"], files=names, label_offset=1)
    with pytest.raises(IDXError, match="a-lbl: label 0 below datamodule.label_offset=1"):
        shifted.setup()


def test_kmnist_and_emnist_configs_compose(compose):
    kmnist = compose("datamodule=kmnist").datamodule
    assert kmnist.torchvision_name == "KMNIST" and len(kmnist.class_names) == 10
    emnist = compose("datamodule=emnist").datamodule
    assert len(emnist.class_names) == 47 and emnist.transpose is True
    assert emnist.files.train_images == "emnist-balanced-train-images-idx3-ubyte"


# ------------------------------------------------------------------------------------ CIFAR-10


def test_cifar_batches_read_with_their_class_names(tmp_path):
    root = write_cifar(tmp_path)
    dm = CIFAR10DataModule(str(root), normalize="standardize")
    dm.prepare_data()
    dm.setup()
    assert dm.class_names == tuple(CIFAR_NAMES) and dm.image_shape == (3, 32, 32)
    assert dm.sizes == {"n_train": 90, "n_val": 10, "n_test": 30}
    # per-channel statistics of the training split
    assert len(dm.mean) == 3 and len(dm.std) == 3
    assert torch.allclose(dm.train.images.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(dm.train.images.std(dim=(0, 2, 3)), torch.ones(3), atol=0.05)
    # the same folder given directly (no cifar-10-batches-py/ level)
    direct = CIFAR10DataModule(str(root / "cifar-10-batches-py"))
    direct.setup()
    assert direct.sizes == dm.sizes


def test_cifar_batch_that_would_run_code_is_refused(tmp_path):
    root = write_cifar(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = root / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(pickle.dumps({"data": Payload(), "labels": []}, protocol=2))
    dm = CIFAR10DataModule(str(root))
    with pytest.raises(DataError, match=rf"{path}: not a CIFAR-10 batch \(refused to build"):
        dm.setup()
    assert not marker.exists()


def test_a_cifar_download_that_fails_is_named_with_the_places_looked_in(tmp_path, monkeypatch):
    """No network (the machines here have none): torchvision's URLError becomes the data error
    that lists where the batches were looked for, not a traceback."""
    import urllib.error

    import torchvision.datasets

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_network)
    with pytest.raises(DataNotFoundError) as refused:
        CIFAR10DataModule(str(tmp_path), download=True).prepare_data()
    message = str(refused.value)
    assert f"download into {tmp_path} with torchvision failed: <urlopen error" in message
    assert f"  {tmp_path / 'cifar-10-batches-py'}\n" in message
    assert "set datamodule.download=true" not in message  # it was


def test_cifar_missing_damaged_or_wrong_batches_are_named(tmp_path):
    root = write_cifar(tmp_path)
    batches = root / "cifar-10-batches-py"
    (batches / "test_batch").write_bytes((batches / "test_batch").read_bytes()[:100])
    with pytest.raises(DataError, match=f"{batches / 'test_batch'}: not a CIFAR-10 batch"):
        CIFAR10DataModule(str(root)).setup()
    (batches / "test_batch").unlink()
    with pytest.raises(DataNotFoundError, match=f"{batches / 'test_batch'}: missing"):
        CIFAR10DataModule(str(root)).setup()
    with pytest.raises(DataNotFoundError, match=r"(?s)CIFAR-10 not found.*download=true"):
        CIFAR10DataModule(str(tmp_path / "elsewhere")).prepare_data()
    batch = read_batch(batches / "data_batch_1")
    batch["labels"] = [12] * len(batch["labels"])
    (batches / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DataError, match="data_batch_1: labels outside 0..9"):
        CIFAR10DataModule(str(root)).setup()


# ------------------------------------------------------------ shapes and per-data-set defaults


@pytest.mark.parametrize(
    ("datamodule", "hflip"),
    [("fashion_mnist", 0.5), ("mnist", 0.0), ("kmnist", 0.0), ("emnist", 0.0), ("cifar10", 0.5),
     ("image_folder", 0.5)],
)  # fmt: skip
def test_horizontal_flips_are_the_data_sets_default(compose, datamodule, hflip):
    for augmentation in ("light", "strong"):
        cfg = compose(f"datamodule={datamodule}", f"augmentation={augmentation}")
        assert cfg.augmentation.hflip == hflip
    cfg = compose("datamodule=mnist", "augmentation=light", "augmentation.hflip=0.2")
    assert cfg.augmentation.hflip == 0.2, "an explicit value wins"


@pytest.mark.parametrize("model", ["mlp_good", "mlp_bad", "cnn", "resnet", "resnet18"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 11, 13), (3, 20, 36)])
def test_every_model_builds_from_the_datas_shape(compose, model, shape):
    channels, height, width = shape
    publish_data_facts({"class_names": ["a", "b", "c"], "num_classes": 3, "channels": channels,
                        "height": height, "width": width,
                        "in_features": channels * height * width})  # fmt: skip
    net = build_network(compose(f"model={model}").model)
    assert net(torch.rand(2, *shape)).shape == (2, 3)


def test_cnn_on_28x28_gray_is_unchanged(compose):
    """The same parameters and, for a seed, the same initial weights as before the CNN took a
    height and a width (experiment=cnn's results stay reproducible)."""
    publish_data_facts(FASHION_FACTS)
    torch.manual_seed(42)
    net = build_network(compose("model=cnn").model)
    torch.manual_seed(42)
    legacy = CNN(in_channels=1, num_classes=10, image_size=28)  # an older checkpoint's config
    assert sum(p.numel() for p in net.parameters()) == 467_818
    for (name, value), (_, old) in zip(net.state_dict().items(), legacy.state_dict().items(),
                                       strict=True):  # fmt: skip
        assert torch.equal(value, old), name
    digest = hashlib.sha256()
    for value in net.state_dict().values():
        digest.update(value.numpy().tobytes())
    # The CNN's initial weights for seed 42 as the code before height/width built them (torch
    # 2.14's CPU generator; another torch version may draw other numbers).
    assert digest.hexdigest()[:16] == "45fc71afb3de44aa"


def test_cnn_refuses_images_too_small_for_its_stages():
    with pytest.raises(ValueError, match=r"model.channels=\[32, 64\].*3×9"):
        CNN(height=3, width=9)


@pytest.mark.parametrize(
    ("override", "key"),
    [("datamodule.channels=2", "datamodule.channels"),
     ("datamodule.image_size=0", "datamodule.image_size"),
     ("datamodule.image_size=[8,8,8]", "datamodule.image_size"),
     ("datamodule.test_split=1.0", "datamodule.test_split"),
     ("datamodule.num_workers=0", "datamodule.num_workers"),
     ("datamodule.skip_bad_images=maybe", "datamodule.skip_bad_images"),
     ("datamodule.cache=1", "datamodule.cache"),
     ("datamodule.hflip=2", "datamodule.hflip"),
     ("datamodule.extensions=[png]", "datamodule.extensions"),
     ("datamodule.classes=[-1]", "datamodule.classes")],
)  # fmt: skip
def test_bad_image_folder_values_name_the_key(compose, override, key):
    with pytest.raises(ConfigError, match=rf"{key}=.* must be "):
        validate(compose("datamodule=image_folder", override))


@pytest.mark.parametrize(
    ("override", "key"),
    [("datamodule.class_names=[a]", "datamodule.class_names"),
     ("datamodule.class_names=[a,a]", "datamodule.class_names"),
     ("datamodule.label_offset=-1", "datamodule.label_offset"),
     ("datamodule.download=yes", "datamodule.download"),
     ("datamodule.classes=[3,10]", "datamodule.classes"),
     ("+datamodule.files.extra=x", "datamodule.files")],
)  # fmt: skip
def test_bad_idx_values_name_the_key(compose, override, key):
    with pytest.raises(ConfigError, match=rf"{key}=.* must be "):
        validate(compose("datamodule=mnist", override))


def test_idx_files_must_be_the_four(tmp_path):
    with pytest.raises(ConfigError, match="datamodule.files"):
        IDXDataModule(str(tmp_path), files={"train_images": "x"})


def test_class_numbers_are_checked_against_the_datas_classes(tmp_path):
    root = write_cifar(tmp_path)
    dm = CIFAR10DataModule(str(root), classes=[2, 10])
    with pytest.raises(ConfigError, match=r"datamodule.classes=\[2, 10\].*0..9"):
        dm.setup()
    picked = CIFAR10DataModule(str(root), classes=[3, 5])
    picked.setup()
    assert picked.class_names == ("cat", "dog")
    assert set(picked.test.labels.tolist()) == {0, 1}
    assert np.isin(picked.train.labels.numpy(), [0, 1]).all()


def test_classes_can_be_named(tmp_path, compose):
    """`datamodule.classes=[dog,cat]` picks by name, in that order, as numbers would; a name the
    data does not have is named with the nearest one."""
    from goodfit.hydra_ext.checks import validate

    root = write_cifar(tmp_path)
    named = CIFAR10DataModule(str(root), classes=["dog", 3])
    named.setup()
    assert named.class_names == ("dog", "cat") and named.classes == (5, 3)
    with pytest.raises(ConfigError, match="no class named 'dgo'; did you mean dog?"):
        CIFAR10DataModule(str(root), classes=["dgo"]).setup()
    with pytest.raises(ConfigError, match=r"datamodule.classes=\['dog', 5\]: must be distinct"):
        CIFAR10DataModule(str(root), classes=["dog", 5]).setup()
    validate(compose("datamodule.classes=[Sandal,Shirt]"))  # names pass the config's check
    with pytest.raises(ConfigError, match="datamodule.classes"):
        validate(compose("datamodule.classes=[Sandal,Sandal]"))


# ------------------------------------------------------------------- colour images downstream


def test_augmentation_on_colour_non_square_batches():
    from goodfit.data.augment import BatchAugment

    images = torch.rand(6, 3, 10, 14)
    flipped = BatchAugment(hflip=1.0)(images)
    assert torch.allclose(flipped, images.flip(-1), atol=1e-5), "every channel mirrored"
    erased = BatchAugment(erase=1.0, erase_value=-1.0)(images)
    hit = erased == -1.0
    assert hit.any() and torch.equal(hit[:, 0], hit[:, 1]) and torch.equal(hit[:, 0], hit[:, 2])


def test_pictures_of_colour_images(tmp_path):
    from goodfit.callbacks.augmentation_preview import preview_figure
    from goodfit.lit.test_evaluation import FirstMisclassified
    from goodfit.records.figures import confusion_matrix, misclassified_grid

    images = torch.randn(4, 3, 12, 10)  # normalised: any range
    path = misclassified_grid(images, torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 2]),
                              ["cat", "dog", "owl"], tmp_path / "wrong.png")  # fmt: skip
    assert path.stat().st_size > 0
    preview_figure(torch.stack([images, images.flip(-1)], dim=1)).savefig(tmp_path / "p.png")
    names = [f"class {k}" for k in range(47)]  # EMNIST balanced: a larger matrix, no numbers
    assert confusion_matrix(torch.eye(47, dtype=torch.long), names, tmp_path / "cm.png").is_file()
    keep = FirstMisclassified(4)
    keep.update(images, torch.tensor([0, 1, 2, 0]), torch.tensor([0, 1, 2, 0]))
    wrong, _, _ = keep.collect()
    assert wrong.shape == (0, 3, 12, 10), "none wrong: an empty batch of the data's shape"
