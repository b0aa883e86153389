"""Transfer learning: class subsets, backbones, the freeze/unfreeze schedule, and the study
pretrain → head on bottleneck features → fine-tune, beside training from scratch."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from goodfit.data.batches import TensorBatches
from goodfit.data.fashion_mnist import FashionMNISTDataModule
from goodfit.hydra_ext.checks import validate
from goodfit.lit import Classifier
from goodfit.lit.finetuning import UnfreezeTopBlocks
from goodfit.models import CNN, MLP, ResNet, TorchvisionResNet
from goodfit.models.backbone import load_backbone, save_backbone, top_blocks
from goodfit.runtime.errors import BackboneError, ConfigError
from goodfit.tasks.feature_head import bottleneck_features
from goodfit.tasks.finetune import apply_changes, forwarded

from .conftest import run_train, synthetic_overrides
from .tensorboard_read import load_events


def test_classes_keep_only_those_renumbered_in_every_split(synthetic_dir):
    dm = FashionMNISTDataModule(str(synthetic_dir), system_dir=None, download=False,
                                classes=[7, 2, 9], train_subset=4)  # fmt: skip
    dm.load()
    assert dm.class_names == ("Sneaker", "Pullover", "Ankle boot")
    assert torch.bincount(dm.train.labels, minlength=3).tolist() == [4, 4, 4]
    all_ = FashionMNISTDataModule(str(synthetic_dir), system_dir=None, download=False)
    all_.load()
    for split, full in ((dm.val, all_.val), (dm.test, all_.test)):
        assert set(split.labels.tolist()) <= {0, 1, 2}
        kept = (full.labels == 7) | (full.labels == 2) | (full.labels == 9)
        assert len(split.labels) == int(kept.sum())
        # the same images, in the same order, with the new numbers
        assert torch.equal(split.images, full.images[kept])
        renumbered = [[7, 2, 9].index(c) for c in full.labels[kept].tolist()]
        assert split.labels.tolist() == renumbered


@pytest.mark.parametrize("classes", [[], [3, 3], [10], [True]])
def test_bad_classes_are_refused_with_the_key(classes, synthetic_dir):
    with pytest.raises(ValueError, match="datamodule.classes"):
        FashionMNISTDataModule(str(synthetic_dir), classes=classes)


def test_the_networks_outputs_follow_the_kept_classes(compose, synthetic_dir):
    from goodfit.tasks.assemble import prepare

    for experiment, classes in (("finetune", 5), ("pretrain", 5), ("good", 10)):
        cfg = compose(f"experiment={experiment}", f"datamodule.data_dir={synthetic_dir}",
                      "datamodule.system_dir=null", "datamodule.download=false",
                      "datamodule.train_subset=null")  # fmt: skip
        validate(cfg)
        prepared = prepare(cfg)
        assert len(prepared.datamodule.class_names) == classes
        assert prepared.net(torch.rand(2, 1, 28, 28)).shape == (2, classes), experiment


@pytest.mark.parametrize(
    ("net", "top_type"),
    [(CNN(), torch.nn.Sequential), (ResNet(), torch.nn.Module), (TorchvisionResNet(), None)],
    ids=["cnn", "resnet", "resnet18"],
)
def test_top_block_is_the_last_stage_with_weights(net, top_type):
    (top,) = top_blocks(net, 1)
    assert top is [m for m in net.features if list(m.parameters())][-1]
    assert any(isinstance(m, torch.nn.Conv2d) for m in top.modules())
    with pytest.raises(BackboneError, match="unfreeze_top_blocks=99"):
        top_blocks(net, 99)


def test_networks_without_a_backbone_are_refused():
    with pytest.raises(BackboneError, match="features.*classifier"):
        top_blocks(MLP(hidden=(8,)), 1)


def test_backbone_file_round_trip_and_errors(tmp_path):
    trained, fresh = CNN(num_classes=5), CNN(num_classes=3)
    path = tmp_path / "backbone.pt"
    save_backbone(trained, {"_target_": "goodfit.models.CNN"}, path)
    load_backbone(fresh, path)  # the head may have another number of classes
    for a, b in zip(trained.features.parameters(), fresh.features.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(BackboneError, match=r"transfer.backbone_path=.*missing.pt: no such file"):
        load_backbone(fresh, tmp_path / "missing.pt")
    with pytest.raises(BackboneError, match="saved from goodfit.models.CNN with other layer"):
        load_backbone(CNN(channels=(8, 16)), path)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(BackboneError, match="not a goodfit backbone file"):
        load_backbone(fresh, tmp_path / "junk.pt")


def test_torchvision_weights_load_from_a_local_file_only(tmp_path):
    import torchvision

    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    net = TorchvisionResNet("resnet18", weights_path=str(path), num_classes=5)
    assert torch.equal(net.features[4][0].conv1.weight, source.layer1[0].conv1.weight)
    assert torch.allclose(net.features[0].weight, source.conv1.weight.sum(1, keepdim=True))
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 5)
    with pytest.raises(FileNotFoundError, match="model.weights_path=.*nothing is downloaded"):
        TorchvisionResNet(weights_path=str(tmp_path / "none.pth"))
    torch.save({"fc.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="model.weights_path=.*not weights of this network"):
        TorchvisionResNet(weights_path=str(tmp_path / "wrong.pth"))


class RequiresGrad(L.Callback):
    """Records, at the first batch of every epoch, which parts train and the optimizer groups."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx:
            return
        net = pl_module.net
        top, lower = net.features[1], net.features[0]
        self.epochs.append({
            "lower": any(p.requires_grad for p in lower.parameters()),
            "top": all(p.requires_grad for p in top.parameters()),
            "head": all(p.requires_grad for p in net.classifier.parameters()),
            "lrs": [g["lr"] for g in trainer.optimizers[0].param_groups],
            "lower_bn_training": [m.training for m in lower.modules()
                                  if isinstance(m, torch.nn.BatchNorm2d)],
        })  # fmt: skip


class TwoStageNet(torch.nn.Module):
    """features = [stage with batch norm, top stage, flatten], classifier: a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, 2, 1), torch.nn.BatchNorm2d(4)),
            torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, 2, 1), torch.nn.ReLU()),
            torch.nn.Flatten(),
        )
        self.classifier = torch.nn.Linear(4 * 7 * 7, 3)

    def forward(self, x):
        return self.classifier(self.features(x))


# Expected here: the fit has no validation data, and the frozen lower stage's batch norm is kept
# in eval mode on purpose (its statistics must not move).
@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
@pytest.mark.filterwarnings("ignore:Found 1 module\\(s\\) in eval mode at the start of training")
def test_freezing_and_unfreezing_follow_the_schedule():
    torch.manual_seed(0)
    x, y = torch.rand(40, 1, 28, 28), torch.arange(40) % 3
    net = TwoStageNet()
    lower_before = [p.clone() for p in net.features[0].parameters()]
    bn_stats_before = net.features[0][1].running_mean.clone()
    model = Classifier(net, functools.partial(torch.optim.SGD, lr=0.1), class_names=list("abc"))
    recorder = RequiresGrad()
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[UnfreezeTopBlocks(blocks=1, at_epoch=2, lr_ratio=0.5),
                                   recorder])  # fmt: skip
    trainer.fit(model, TensorBatches(x, y, 10, shuffle=True))
    assert [(e["lower"], e["top"], e["head"]) for e in recorder.epochs] == [
        (False, False, True),
        (False, False, True),
        (False, True, True),
        (False, True, True),
    ]
    assert [e["lrs"] for e in recorder.epochs] == [[0.1], [0.1], [0.1, 0.05], [0.1, 0.05]]
    assert all(e["lower_bn_training"] == [False] for e in recorder.epochs)
    for before, after in zip(lower_before, net.features[0].parameters(), strict=True):
        assert torch.equal(before, after), "the frozen lower stage never changed"
    assert torch.equal(bn_stats_before, net.features[0][1].running_mean), "nor its statistics"
    trainer.test(model, TensorBatches(x, y, 10, shuffle=False), verbose=False)
    assert all(p.requires_grad for p in net.features[1].parameters()), "testing keeps it"


def test_bottleneck_features_are_computed_in_inference_mode():
    net = ResNet(widths=(4, 8), blocks=1)
    images = torch.rand(7, 1, 28, 28)
    features = bottleneck_features(net.features, images, batch_size=3)
    net.eval()
    assert torch.allclose(features, net.features(images), atol=1e-6)
    assert not features.requires_grad


def test_command_line_overrides_forwarded_to_the_pretraining():
    given = ["model=resnet", "model.widths=[8,16]", "model.num_classes=4", "module=mine",
             "module.smoothing=0.1", "seed=3",
             "datamodule.train_subset=5", "datamodule.data_dir=/d", "optimizer.lr=0.1",
             "trainer.max_epochs=2", "trainer.accelerator=cpu", "debug=fast",
             "+paths.extra=1", "transfer.backbone_path=null", "~callbacks.lr_monitor",
             "logger=csv"]  # fmt: skip
    assert forwarded(given) == ["model=resnet", "model.widths=[8,16]", "module=mine",
                                "module.smoothing=0.1", "seed=3",
                                "datamodule.data_dir=/d", "trainer.accelerator=cpu",
                                "debug=fast", "+paths.extra=1", "~callbacks.lr_monitor",
                                "logger=csv"]  # fmt: skip


@pytest.mark.parametrize("given_with", ["hydra.searchpath", "--config-dir"])
def test_a_resumed_study_pretrains_from_the_config_folders_it_was_started_with(
    tmp_path, given_with
):
    """A resumed study composes its pretraining config again, in a process started without
    the study's config folders: those saved in its hydra.yaml still find the user's network."""
    from goodfit.tasks.finetune import pretrain_config

    study = tmp_path / "study"
    (study / ".hydra").mkdir(parents=True)
    small_cnn_config(tmp_path / "my_conf")
    folder = str(tmp_path / "my_conf")
    hydra = ({"searchpath": [f"file://{folder}"]} if given_with == "hydra.searchpath" else
             {"runtime": {"config_sources": [{"path": folder, "schema": "file",
                                              "provider": "command-line"}]}})  # fmt: skip
    OmegaConf.save(["experiment=finetune", "model=small_cnn"], study / ".hydra" / "overrides.yaml")
    OmegaConf.save({"hydra": hydra}, study / ".hydra" / "hydra.yaml")
    cfg = OmegaConf.create({"resume": str(study), "transfer": {"pretrain": None}})
    composed, choices = pretrain_config(cfg, study / "pretrain")
    assert choices["model"] == "small_cnn" and list(composed.model.channels) == [8, 16]


def test_changes_merge_but_another_target_replaces_the_node():
    cfg = OmegaConf.create({
        "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1, "momentum": 0.9},
        "trainer": {"max_epochs": 30, "accelerator": "cpu"},
    })  # fmt: skip
    OmegaConf.set_struct(cfg, True)
    apply_changes(cfg, OmegaConf.create({
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": 0.001},
        "trainer": {"max_epochs": 60},
    }))  # fmt: skip
    assert OmegaConf.to_container(cfg) == {
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": 0.001},
        "trainer": {"max_epochs": 60, "accelerator": "cpu"},
    }


SMALL_STUDY = (
    "experiment=finetune",
    "model.channels=[8,16]",
    "model.hidden=32",
    "datamodule.train_subset=6",
    "trainer.max_epochs=2",
    "transfer.head.epochs=3",
    "+transfer.pretrain.trainer.max_epochs=2",
)


def small_cnn_config(folder: Path) -> str:
    """SMALL_STUDY's network as a config file of the user's own (model=small_cnn), in a config
    folder given with hydra.searchpath: each step of the study must find it."""
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "small_cnn.yaml").write_text(
        "defaults:\n  - cnn\n  - _self_\nchannels: [8, 16]\nhidden: 32\n"
    )
    return f"hydra.searchpath=[file://{folder}]"


@pytest.mark.slow
def test_finetune_study_end_to_end(synthetic_dir, tmp_path):
    run_dir = tmp_path / "study"
    own_network = [small_cnn_config(tmp_path / "my_conf"), "model=small_cnn",
                   *(o for o in SMALL_STUDY if not o.startswith("model."))]  # fmt: skip
    result = run_train(
        *own_network, f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir)
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    # the console ends with the four steps side by side and the gain
    last_table = result.stdout.rsplit("transfer study:", 1)[-1]
    assert f"{summary['transfer_gain']:+.4f}" in last_table
    assert f"{summary['scratch_test_acc']:.4f}" in last_table
    assert summary["status"] == "completed" and summary["experiment"] == "finetune"
    for key in ("test_acc", "scratch_test_acc", "head_test_acc", "pretrain_test_acc"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert summary["transfer_gain"] == round(summary["test_acc"] - summary["scratch_test_acc"], 4)
    assert summary["n_train"] == 5 * 6, "the target task's subset: 6 images of 5 classes"
    assert summary["backbone"] == str(run_dir / "pretrain" / "backbone.pt")

    pretrain = json.loads((run_dir / "pretrain" / "summary.json").read_text())
    assert pretrain["experiment"] == "pretrain" and pretrain["epochs_run"] == 2
    assert pretrain["model"] == summary["model"] == "small_cnn"
    assert pretrain["test_acc"] == summary["pretrain_test_acc"]
    assert pretrain["n_test"] < 200 and pretrain["params_total"] == summary["params_total"]
    scratch = json.loads((run_dir / "scratch" / "summary.json").read_text())
    assert scratch["test_acc"] == summary["scratch_test_acc"]
    assert scratch["optimizer"] == "adamw" and scratch["n_train"] == summary["n_train"]
    assert scratch["params_trainable"] == scratch["params_total"]
    assert scratch["epochs_run"] == summary["epochs_run"] == 2, "trainer.max_epochs reaches it"
    # the top block and the head trained; the lower stage stayed frozen
    assert summary["params_trainable"] < summary["params_total"]
    assert {"val/acc", "train/acc"} <= set(load_events(run_dir / "head").Tags()["scalars"])

    # A given backbone skips the pretraining.
    again = tmp_path / "given"
    run_train(*SMALL_STUDY, f"transfer.backbone_path={run_dir}/pretrain/backbone.pt",
              f"hydra.run.dir={again}", *synthetic_overrides(synthetic_dir))  # fmt: skip
    assert not (again / "pretrain").exists()
    given = json.loads((again / "summary.json").read_text())
    assert given["backbone"] == str(run_dir / "pretrain" / "backbone.pt")
    assert given["head_test_acc"] == summary["head_test_acc"], "same backbone, same seed"


def test_transfer_summary_table_shows_each_step_and_the_gain():
    import io

    from rich.console import Console

    from goodfit.records.summary import print_transfer_summary

    out = io.StringIO()
    summary = {
        "name": "finetune", "pretrain_test_acc": 0.9448, "head_test_acc": 0.9348,
        "test_acc": 0.9354, "scratch_test_acc": 0.8956, "transfer_gain": 0.0398,
        "run_dir": "/runs/study", "backbone": "/runs/study/pretrain/backbone.pt",
    }  # fmt: skip
    print_transfer_summary(summary, Console(width=100, file=out))
    lines = [" ".join(line.strip("│ ").split()) for line in out.getvalue().splitlines()]
    assert "3. fine-tuned (this run) │ 0.9354" in lines
    assert "4. from scratch │ 0.8956" in lines and "transfer gain (3 − 4) │ +0.0398" in lines
    # a given backbone: no pretraining step, the backbone named instead
    out = io.StringIO()
    print_transfer_summary({**summary, "pretrain_test_acc": None}, Console(width=100, file=out))
    assert "not run: /runs/study/pretrain/backbone.pt" in out.getvalue()


def test_missing_backbone_is_a_clear_error_before_training(synthetic_dir, tmp_path):
    run_dir = tmp_path / "missing"
    result = run_train(*SMALL_STUDY, f"transfer.backbone_path={tmp_path}/nope.pt",
                       f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir),
                       check=False)  # fmt: skip
    assert result.returncode == 2
    message = f"transfer.backbone_path={tmp_path}/nope.pt: no such file"
    assert message in result.stderr + result.stdout
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "summary.json").exists()


def test_an_interrupted_step_names_its_study_to_resume(tmp_path):
    import signal

    from goodfit.callbacks import RunInterrupted, StopOnSignal

    last = tmp_path / "study" / "scratch" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"saved")
    stop = StopOnSignal(last, resume_dir=tmp_path / "study")
    stop.signum = signal.SIGTERM
    with pytest.raises(RunInterrupted, match=f"resume={tmp_path / 'study'}$"):
        stop.stop(None, "after batch 1")
    alone = StopOnSignal(last)
    alone.signum = signal.SIGTERM
    with pytest.raises(RunInterrupted, match=f"resume={tmp_path / 'study' / 'scratch'}$"):
        alone.stop(None, "after batch 1")


@pytest.mark.parametrize(
    ("override", "key"),
    [("transfer.unfreeze_top_blocks=0", "transfer.unfreeze_top_blocks"),
     ("transfer.unfreeze_at_epoch=-1", "transfer.unfreeze_at_epoch"),
     ("transfer.top_lr_ratio=0", "transfer.top_lr_ratio"),
     ("transfer.head.epochs=0", "transfer.head.epochs"),
     ("datamodule.classes=[5,5]", "datamodule.classes")],
)  # fmt: skip
def test_bad_transfer_values_are_refused_by_key(compose, override, key):
    with pytest.raises(ConfigError, match=key):
        validate(compose("experiment=finetune", override))
