"""The study's second step: a new head trained on the frozen backbone's bottleneck features,
computed once for every image (the report's "bottleneck features")."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn

from goodfit.data.batches import TensorBatches
from goodfit.data.contract import IN_MEMORY_ATTRIBUTES, check_contract
from goodfit.lit.classifier import Classifier, logging_interval_quiet
from goodfit.models.backbone import backbone_of
from goodfit.runtime.modes import eval_mode

log = logging.getLogger(__name__)


@torch.no_grad()
def bottleneck_features(backbone: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """The frozen backbone's output for every image, computed once, in inference mode."""
    with eval_mode(backbone):
        return torch.cat([backbone(images[i : i + batch_size])
                          for i in range(0, len(images), batch_size)])  # fmt: skip


class FeatureData(L.LightningDataModule):
    """Bottleneck features of the train, validation and test images, as in-memory batches."""

    def __init__(self, splits: dict[str, tuple[Tensor, Tensor]], batch_size: int, seed: int):
        super().__init__()
        self.splits, self.batch_size, self.seed = splits, batch_size, seed

    def _batches(self, split: str, shuffle: bool) -> TensorBatches:
        features, labels = self.splits[split]
        size = self.batch_size if shuffle else 4096
        return TensorBatches(features, labels, size, shuffle=shuffle, seed=self.seed)

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", True)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", False)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", False)


def train_head(
    net: nn.Module, datamodule: Any, head_cfg: DictConfig, seed: int, folder: Path
) -> float:
    """Train `net.classifier` on the frozen backbone's features of the datamodule's splits;
    keep the epoch with the best validation accuracy. Returns its test accuracy."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    check_contract(datamodule, IN_MEMORY_ATTRIBUTES, "the transfer study")
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
                      class_names=datamodule.class_names)  # fmt: skip
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
    with logging_interval_quiet(head):
        trainer.fit(head, datamodule=data)
    result = trainer.test(head, datamodule=data, ckpt_path=best.best_model_path, verbose=False,
                          weights_only=True)  # fmt: skip
    return float(result[0]["test/acc"])
