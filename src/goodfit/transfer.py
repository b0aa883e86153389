"""Transfer learning as the report describes it: a backbone pretrained on a source task, a new
head trained on its bottleneck features (computed once), then the top block unfrozen and tuned
with a slow SGD; and the same network trained from scratch on the same data, for comparison.

`experiment=finetune` runs all of it in one run folder:

    <run>/pretrain/   experiment=pretrain (skipped with transfer.backbone_path=… or
                      pretrained model weights): its own full record and backbone.pt
    <run>/head/       the head on the frozen backbone's features: TensorBoard curves
    <run>/            the fine-tuning run itself: the usual record
    <run>/scratch/    the identical network and data, from random weights
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BaseFinetuning
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor, nn

from goodfit.errors import BackboneError

log = logging.getLogger(__name__)

BACKBONE_FILE = "backbone.pt"

# Command-line overrides that describe the network, the machine, the data files or how runs
# are recorded (with every `model.*`, `paths.*`, `callbacks.*` and `logger.*` key), and so are
# passed on to the pretraining run; the rest describe the target task.
FORWARDED_KEYS = ("model", "seed", "trainer", "debug", "paths", "trainer.accelerator",
                  "trainer.devices", "trainer.precision", "datamodule.data_dir",
                  "datamodule.system_dir", "datamodule.download", "datamodule.verify_checksums",
                  "datamodule.normalize")  # fmt: skip


# ---------------------------------------------------------------- the backbone and its file


def backbone_of(net: nn.Module, key: str = "model") -> nn.Sequential:
    """The network's `features` (networks for transfer learning split into features and
    classifier, as goodfit's convnets and torchvision ResNets do)."""
    features = getattr(net, "features", None)
    if not isinstance(features, nn.Sequential) or not hasattr(net, "classifier"):
        raise BackboneError(
            f"{key}: {type(net).__name__} has no `features` and `classifier`; transfer learning "
            "needs a network split into the two (model=cnn, resnet or resnet18)"
        )
    return features


def top_blocks(net: nn.Module, count: int) -> list[nn.Module]:
    """The last `count` children of the backbone that hold parameters: a convnet's last
    stage, a ResNet's last residual block or stage."""
    blocks = [m for m in backbone_of(net) if any(True for _ in m.parameters())]
    if not 1 <= count <= len(blocks):
        raise BackboneError(
            f"transfer.unfreeze_top_blocks={count}: must be in 1..{len(blocks)} for this network"
        )
    return blocks[-count:]


def save_backbone(net: nn.Module, model_cfg: dict[str, Any], path: Path) -> None:
    """Write the backbone's weights with the config of the network they came from."""
    tmp = path.with_suffix(".tmp")
    torch.save({"features": backbone_of(net).state_dict(), "model": model_cfg}, tmp)
    os.replace(tmp, path)


def load_backbone(net: nn.Module, path: Path, key: str = "transfer.backbone_path") -> None:
    """Load a backbone.pt into `net.features`; errors name `key` and the file."""
    if not path.is_file():
        raise BackboneError(
            f"{key}={path}: no such file. Give the backbone.pt of an `experiment=pretrain` run, "
            f"or {key}=null to pretrain one first"
        )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state = saved["features"]
    except Exception as err:
        raise BackboneError(f"{key}={path}: not a goodfit backbone file ({err})") from err
    try:
        backbone_of(net).load_state_dict(state)
    except RuntimeError as err:
        source = saved.get("model", {}).get("_target_", "another network")
        raise BackboneError(
            f"{key}={path}: saved from {source} with other layer shapes; this run builds "
            f"{type(net).__name__}. Use the same model (and model.* values) as the pretraining "
            f"run.\n{err}"
        ) from err


# ---------------------------------------------------------------- freezing and unfreezing


class UnfreezeTopBlocks(BaseFinetuning):
    """Lightning's BaseFinetuning: the backbone is frozen before training (its batch-norm layers
    in inference mode, as the features were computed); at `at_epoch` its top `blocks` are
    unfrozen and join the optimizer at `lr_ratio` times its learning rate."""

    def __init__(self, blocks: int = 1, at_epoch: int = 0, lr_ratio: float = 1.0) -> None:
        super().__init__()
        if at_epoch < 0 or lr_ratio <= 0:
            raise BackboneError(
                f"transfer.unfreeze_at_epoch={at_epoch}, transfer.top_lr_ratio={lr_ratio}: "
                "need an epoch >= 0 and a ratio > 0"
            )
        self.blocks, self.at_epoch, self.lr_ratio = blocks, at_epoch, lr_ratio

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # testing the tuned network must not freeze it again
            super().setup(trainer, pl_module, stage)

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        top_blocks(pl_module.net, self.blocks)  # refuse a bad block count before training
        backbone = backbone_of(pl_module.net)
        self.freeze(backbone, train_bn=False)
        set_batch_norm_training(backbone, False)

    def finetune_function(
        self, pl_module: L.LightningModule, epoch: int, optimizer: torch.optim.Optimizer
    ) -> None:
        if epoch != self.at_epoch:
            return
        blocks = top_blocks(pl_module.net, self.blocks)
        lr = optimizer.param_groups[0]["lr"] * self.lr_ratio
        self.unfreeze_and_add_param_group(blocks, optimizer, lr=lr, train_bn=True)
        for block in blocks:
            set_batch_norm_training(block, True)
        log.info("Epoch %d: unfroze the top %d block(s) of the backbone, lr %g",
                 epoch, self.blocks, lr)  # fmt: skip


def set_batch_norm_training(module: nn.Module, training: bool) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(training)


# ---------------------------------------------------------------- the head on bottleneck features


@torch.no_grad()
def bottleneck_features(backbone: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """The frozen backbone's output for every image, computed once, in inference mode."""
    was_training = backbone.training
    backbone.eval()
    try:
        return torch.cat([backbone(images[i : i + batch_size])
                          for i in range(0, len(images), batch_size)])  # fmt: skip
    finally:
        backbone.train(was_training)


class FeatureData(L.LightningDataModule):
    """Bottleneck features of the train, validation and test images, as in-memory batches."""

    def __init__(self, splits: dict[str, tuple[Tensor, Tensor]], batch_size: int, seed: int):
        super().__init__()
        self.splits, self.batch_size, self.seed = splits, batch_size, seed

    def _batches(self, split: str, shuffle: bool) -> Any:
        from goodfit.data.batches import TensorBatches

        features, labels = self.splits[split]
        size = self.batch_size if shuffle else 4096
        return TensorBatches(features, labels, size, shuffle=shuffle, seed=self.seed)

    def train_dataloader(self) -> Any:
        return self._batches("train", True)

    def val_dataloader(self) -> Any:
        return self._batches("val", False)

    def test_dataloader(self) -> Any:
        return self._batches("test", False)


def train_head(
    net: nn.Module, datamodule: Any, head_cfg: DictConfig, seed: int, folder: Path
) -> float:
    """Train `net.classifier` on the frozen backbone's features of the datamodule's splits;
    keep the epoch with the best validation accuracy. Returns its test accuracy."""
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from goodfit.module import Classifier

    backbone = backbone_of(net)  # on the CPU still: the trainer moves the network later
    splits = {}
    for name in ("train", "val", "test"):
        split = getattr(datamodule, name)
        splits[name] = (bottleneck_features(backbone, split.images), split.labels)
    count = sum(len(labels) for _, labels in splits.values())
    log.info("Bottleneck features: %s per image, computed once for %d images",
             tuple(splits["train"][0].shape[1:]), count)  # fmt: skip
    L.seed_everything(seed, workers=True, verbose=False)
    head = Classifier(net=net.classifier, optimizer=instantiate(head_cfg.optimizer),
                      num_classes=len(datamodule.class_names))  # fmt: skip
    best = ModelCheckpoint(dirpath=folder / "checkpoints", filename="best", monitor="val/acc",
                           mode="max")  # fmt: skip
    # On the CPU: the head is a small dense network on a few hundred feature vectors.
    trainer = L.Trainer(
        max_epochs=int(head_cfg.epochs), accelerator="cpu", devices=1,
        logger=TensorBoardLogger(folder, name="", version=""),
        callbacks=[best], enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    data = FeatureData(splits, int(head_cfg.batch_size), seed)
    trainer.fit(head, datamodule=data)
    result = trainer.test(head, datamodule=data, ckpt_path=best.best_model_path, verbose=False)
    return float(result[0]["test/acc"])


# ---------------------------------------------------------------- the runs around the main one


def config_dir() -> Path:
    root = os.environ.get("GOODFIT_ROOT") or Path(__file__).resolve().parents[2]
    return Path(root) / "conf"


@contextmanager
def hydra_compose_ready() -> Iterator[None]:
    """Hydra's compose API: inside `train.py` it is ready; elsewhere (a test calling run())
    it is initialised on goodfit's conf folder for the duration."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield


def command_line_overrides(cfg: DictConfig) -> list[str]:
    """The overrides this study was started with (a resumed study's original ones)."""
    from hydra.core.hydra_config import HydraConfig

    if cfg.get("resume"):
        saved = Path(cfg.resume) / ".hydra" / "overrides.yaml"
        return list(OmegaConf.load(saved)) if saved.is_file() else []
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def forwarded(overrides: Iterable[str]) -> list[str]:
    """The overrides about the network, machine and data files (FORWARDED_KEYS); a target
    task's own `model.num_classes` stays behind."""
    kept = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "model.num_classes":
            continue
        if key in FORWARDED_KEYS or key.split(".")[0] in ("model", "paths", "callbacks", "logger"):
            kept.append(override)
    return kept


def apply_changes(cfg: DictConfig, changes: DictConfig | None) -> None:
    """Merge `changes` into `cfg`, except that a node whose `_target_` changes (another
    optimizer, say) replaces the old node rather than mixing arguments of the two."""
    for key, value in (changes or {}).items():
        old = cfg.get(key)
        if (isinstance(value, DictConfig) and isinstance(old, DictConfig)
                and value.get("_target_") in (None, old.get("_target_"))):  # fmt: skip
            apply_changes(old, value)
        else:
            with open_dict(cfg):
                cfg[key] = value


def pretrain_config(cfg: DictConfig, folder: Path) -> tuple[DictConfig, dict[str, Any]]:
    """`experiment=pretrain` with this run's network, machine and data overrides and the
    changes in `transfer.pretrain`, writing into `folder`; and its group choices."""
    from hydra import compose

    overrides = ["experiment=pretrain", *forwarded(command_line_overrides(cfg))]
    with hydra_compose_ready():
        composed = compose("train", overrides=overrides, return_hydra_config=True)
    choices = dict(composed.hydra.runtime.choices)
    with open_dict(composed):
        del composed["hydra"]
        composed.paths.output_dir = str(folder)
        composed.study_dir = str(folder.parent)  # an interrupted step resumes with its study
    apply_changes(composed, cfg.transfer.get("pretrain"))
    return composed, choices


def scratch_config(cfg: DictConfig, folder: Path) -> DictConfig:
    """This run's config (the identical network and data) with the changes in
    `transfer.scratch`, from random weights, writing into `folder`."""
    scratch = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(scratch, True)
    apply_changes(scratch, cfg.transfer.get("scratch"))
    with open_dict(scratch):
        scratch.transfer = None
        scratch.resume = None
        scratch.name = f"{cfg.get('name')}_scratch"
        scratch.paths.output_dir = str(folder)
        scratch.study_dir = str(folder.parent)
        if "weights_path" in scratch.model:
            scratch.model.weights_path = None
    return scratch


@dataclass
class Transfer:
    """What the fine-tuning run adds: its callbacks and its figures for summary.json."""

    callbacks: list[Any] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


def prepare(cfg: DictConfig, net: nn.Module, datamodule: Any, run_dir: Path) -> Transfer:
    """Pretrain (unless a backbone is given), load the backbone, train the head on its
    bottleneck features, and return the callback that unfreezes the top block."""
    from goodfit.train import run

    transfer = cfg.transfer
    record: dict[str, Any] = {}
    backbone_path = transfer.get("backbone_path")
    pretrained_weights = cfg.model.get("weights_path")
    if backbone_path:
        load_backbone(net, Path(backbone_path))
        record["backbone"] = str(Path(backbone_path).resolve())
    elif pretrained_weights:
        backbone_of(net)  # the network's own pretrained weights are the backbone
        record["backbone"] = f"model.weights_path={pretrained_weights}"
    else:
        folder = run_dir / "pretrain"
        path = folder / BACKBONE_FILE
        if not path.is_file():  # a resumed study reuses its finished pretraining
            if folder.exists():
                shutil.rmtree(folder)  # an unfinished pretraining, which a rerun replaces
            pre_cfg, choices = pretrain_config(cfg, folder)
            log.info("Pretraining the backbone on classes %s in %s",
                     pre_cfg.datamodule.classes, folder)  # fmt: skip
            run(pre_cfg, choices=choices)
        load_backbone(net, path, key=f"{folder}/{BACKBONE_FILE}")
        record["pretrain_test_acc"] = completed_test_acc(folder)
        record["backbone"] = str(path)
    record["head_test_acc"] = train_head(
        net, datamodule, transfer.head, int(cfg.seed), run_dir / "head"
    )
    log.info("Head on the frozen backbone: test accuracy %.4f", record["head_test_acc"])
    unfreeze = UnfreezeTopBlocks(
        int(transfer.unfreeze_top_blocks), int(transfer.unfreeze_at_epoch),
        float(transfer.top_lr_ratio),
    )  # fmt: skip
    return Transfer(callbacks=[unfreeze], record=record)


def completed_test_acc(folder: Path) -> float | None:
    """The test accuracy in a finished run folder's summary.json, else None."""
    path = folder / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return float(summary["test_acc"]) if summary.get("status") == "completed" else None


def scratch_test_acc(cfg: DictConfig, run_dir: Path) -> float:
    """Train the identical network on the identical data from random weights; its test
    accuracy (reused when a resumed study finished it already)."""
    from goodfit.train import hydra_choices, run

    folder = run_dir / "scratch"
    done = completed_test_acc(folder)
    if done is not None:
        return done
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished comparison run, which a rerun replaces
    log.info("Training the same network from scratch on the same data in %s", folder)
    choices = hydra_choices()
    for group, change in (cfg.transfer.get("scratch") or {}).items():
        if isinstance(change, DictConfig) and change.get("_target_"):
            choices[group] = change._target_.rsplit(".", 1)[-1].lower()  # e.g. adamw
    return float(run(scratch_config(cfg, folder), choices=choices)["test_acc"])
