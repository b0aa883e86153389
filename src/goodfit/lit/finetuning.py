"""Fine-tuning as the study describes it: a frozen backbone whose top blocks are unfrozen later."""

from __future__ import annotations

import logging

import lightning as L
import torch
from lightning.pytorch.callbacks import BaseFinetuning

from goodfit.models.backbone import backbone_of, set_batch_norm_training, top_blocks
from goodfit.runtime.errors import BackboneError

log = logging.getLogger(__name__)


class UnfreezeTopBlocks(BaseFinetuning):
    """Lightning's BaseFinetuning: the backbone (`net.features`) is frozen before training (its
    batch-norm layers in inference mode, as the head's features were computed); at `at_epoch`
    its top `blocks` are unfrozen and join the optimizer at `lr_ratio` times its learning rate."""

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
