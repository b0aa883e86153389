"""A user's own pieces, as a researcher would write them against plain Lightning: the tests plug
them into train.py by config alone (`module=…`, `+callbacks.x._target_=tests.plugins.…`)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from goodfit.lit import Classifier


class UserModule(L.LightningModule):
    """A LightningModule as Lightning's docs teach it: training_step returns the loss, automatic
    optimization does the rest. Logs the metrics goodfit's records read."""

    def __init__(self, net: nn.Module, optimizer: Any, scheduler: Any = None,
                 class_names: Any = ()) -> None:  # fmt: skip
        super().__init__()
        self.net, self.optimizer_factory = net, optimizer

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self.net(images), labels)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch: Any, stage: str) -> None:
        images, labels = batch
        logits = self.net(images)
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels))
        self.log(f"{stage}/acc", (logits.argmax(1) == labels).float().mean())

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())


class UserModuleWithoutTestFigures(UserModule):
    """Tests, but logs nothing the run's record could use."""

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.net(batch[0])


class StepRecorder(L.Callback):
    """Sets its hooks on the instance, as LambdaCallback does, and writes what it saw to `out`:
    the global step at every on_train_batch_end, and the optimizer steps taken."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.batch_end_steps: list[int] = []
        self.optimizer_steps = 0
        self.on_train_batch_end = self._batch_end  # instance attributes, not class methods
        self.on_before_optimizer_step = self._optimizer_step
        self.on_train_end = self._write

    def _batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.batch_end_steps.append(trainer.global_step)

    def _optimizer_step(self, *args: Any) -> None:
        self.optimizer_steps += 1

    def _write(self, *args: Any) -> None:
        self.out.write_text(json.dumps({"batch_end_steps": self.batch_end_steps,
                                        "optimizer_steps": self.optimizer_steps}))  # fmt: skip


class SignalAtLastValidation(L.Callback):
    """Sends SIGTERM to its own process at the end of the last epoch's validation: after the
    last training batch, where no later batch or epoch could notice it. Not in a resumed run."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        last_epoch = trainer.current_epoch == trainer.max_epochs - 1
        first = trainer.global_rank == 0  # as `kill <pid>` reaches one process of several
        if first and last_epoch and not trainer.sanity_checking and trainer.ckpt_path is None:
            os.kill(os.getpid(), signal.SIGTERM)


class UserData(L.LightningDataModule):
    """A datamodule as Lightning's docs teach it (datasets and DataLoaders, no augmentation
    argument), with the three attributes goodfit's contract asks for: two classes of 1×8×8
    images, dark or bright."""

    def __init__(self, n: int = 256, batch_size: int = 16) -> None:
        super().__init__()
        self.n, self.batch_size = n, batch_size
        self.class_names = ("dark", "bright")
        self.image_shape = (1, 8, 8)
        self.sizes: dict[str, int] = {}

    def setup(self, stage: str) -> None:
        generator = torch.Generator().manual_seed(0)
        labels = torch.randint(0, 2, (self.n,), generator=generator)
        images = torch.rand(self.n, 1, 8, 8, generator=generator) * 0.5 + 0.5 * labels.view(
            -1, 1, 1, 1
        )
        quarter = self.n // 4
        data = TensorDataset(images, labels)
        self.train_set = Subset(data, range(2 * quarter))
        self.val_set = Subset(data, range(2 * quarter, 3 * quarter))
        self.test_set = Subset(data, range(3 * quarter, self.n))
        self.sizes = {"n_train": 2 * quarter, "n_val": quarter, "n_test": self.n - 3 * quarter}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=64)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=64)


class UserDataWithState(UserData):
    """UserData saving what `goodfit.predict` reads from a checkpoint to prepare images."""

    def state_dict(self) -> dict[str, Any]:
        return {"image_shape": list(self.image_shape), "class_names": list(self.class_names)}


class UserModuleSavingEverything(UserModule):
    """Calls save_hyperparameters() with no `ignore`: the network and the optimizer's partial go
    into every checkpoint's hyper-parameters."""

    def __init__(self, net: nn.Module, optimizer: Any, scheduler: Any = None,
                 class_names: Any = ()) -> None:  # fmt: skip
        super().__init__(net, optimizer, scheduler, class_names)
        self.save_hyperparameters()


class UserDataWithTransform(UserData):
    """Saves its hyper-parameters, among them a transform object built from the config."""

    def __init__(self, transform: Any = None, n: int = 256, batch_size: int = 16) -> None:
        super().__init__(n, batch_size)
        self.save_hyperparameters()


class NumpyStateAfterFirstEpoch(L.Callback):
    """Keeps the last validation accuracy as a numpy number in its state, from the second
    checkpoint on (at the first, callbacks see no val/acc yet): a state no checkpoint opened as
    data can hold."""

    def __init__(self) -> None:
        self.last_val_acc: Any = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import numpy as np

        acc = trainer.callback_metrics.get("val/acc")
        if acc is not None:
            self.last_val_acc = np.float64(acc)

    def state_dict(self) -> dict[str, Any]:
        return {"last_val_acc": self.last_val_acc}


class SmoothedClassifier(Classifier):
    """goodfit's Classifier trained with label smoothing: only the loss changes."""

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=0.2)


class UncountedClassifier(Classifier):
    """A subclass whose own training_loss counts none of its batches."""

    def training_loss(self, batch: Any) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(self.net(images), labels)


class TwoInputModule(UserModule):
    """A module whose forward wants more than the images."""

    def forward(self, images: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return self.net(images) + offset


class UserDataWithAugmentation(UserData):
    """UserData that takes the augmentation group's module (and applies it its own way)."""

    def __init__(self, augmentation: Any = None, n: int = 256, batch_size: int = 16) -> None:
        super().__init__(n, batch_size)
        self.augmentation = augmentation
