"""The training loss measured as the validation loss is: in eval mode, with the weights the
validation saw, on a fixed sample of training images.

The training curve a module logs (`train/loss`) is the mean over the epoch's batches, taken
while the weights still change and with dropout (and augmentation) on, so it sits above the
loss those weights give the training images, and the gap between it and `val/loss` understates
the real one. This callback logs `train_eval/loss` and `train_eval/acc` beside `val/…`, for
every validated epoch; the fit diagnosis reports the gap they give next to the curve's.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn

from goodfit.runtime.errors import require_count
from goodfit.runtime.modes import eval_mode

log = logging.getLogger(__name__)

PREFIX = "train_eval/"


class TrainSetEvaluation(L.Callback):
    """Evaluate the module on `n_images` training images (None: as many as the validation set
    holds) after each validation, as validation does: `module(images)`, the module's
    `compute_loss` (cross-entropy for a module without one), eval mode. The sample is drawn
    once from its own seeded generator (the run's random streams are left untouched) and kept
    on the module's device; `batch_size` images at a time. With
    several processes (DDP) each evaluates every `world_size`-th image of the sample and their
    sums are added up, so the figures are the whole sample's at a share of the work."""

    # what it logs every validated epoch (a `monitor` may watch them)
    epoch_metrics = (f"{PREFIX}loss", f"{PREFIX}acc")

    def __init__(self, n_images: int | None = None, batch_size: int = 1000, seed: int = 0) -> None:
        if n_images is not None:
            require_count("TrainSetEvaluation: n_images", n_images)
        self.n_images, self.seed = n_images, require_count("TrainSetEvaluation: seed", seed, 0)
        self.batch_size = require_count("TrainSetEvaluation: batch_size", batch_size)
        self._sample: tuple[torch.Tensor, torch.Tensor] | None = None
        self._skipped = False
        self._sharded = False  # each process evaluates its share of the sample (DDP)
        self._n_classes: int | None = None  # the data's, to check the module's output against

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._sample, self._skipped = None, False
        self._n_classes = len(getattr(trainer.datamodule, "class_names", ())) or None

    def _skip(self, why: str) -> None:
        self._sample, self._skipped = None, True
        log.info("callbacks.train_eval: %s; the training figures are not measured as "
                 "validation's", why)  # fmt: skip

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return  # trainer.validate() may have no training data set up
        sample = self._sample_of(trainer, pl_module)
        if sample is None:
            return
        sums = self._sums(trainer, pl_module, *sample)
        if sums is None:
            return
        if self._sharded:  # every process measured its share: the sums of all of them
            sums = trainer.strategy.reduce(sums, reduce_op="sum")
        loss_sum, correct, count = sums
        # The figures are now the same on every process; sync_dist keeps Lightning's check.
        pl_module.log_dict({f"{PREFIX}loss": loss_sum / count, f"{PREFIX}acc": correct / count},
                           sync_dist=True)  # fmt: skip

    def _sample_of(self, trainer: L.Trainer, module: L.LightningModule) -> Any:
        """This process's share of the training images evaluated every epoch, drawn at the
        first use; None (said once) when the data keeps none in memory or the module has no
        `forward` to score them."""
        if self._sample is not None or self._skipped:
            return self._sample
        datamodule = trainer.datamodule
        train, val = getattr(datamodule, "train", None), getattr(datamodule, "val", None)
        why = None
        if train is None or not hasattr(train, "images"):
            why = f"{type(datamodule).__name__} keeps no training images in memory"
        elif type(module).forward is L.LightningModule.forward:
            why = f"{type(module).__name__} defines no forward() giving class scores"
        elif not _takes_images_alone(module.forward):
            wants = ", ".join(inspect.signature(module.forward).parameters)
            why = f"{type(module).__name__}.forward({wants}) wants more than a batch of images"
        if why is not None:
            self._skip(why)
            return None
        wanted = self.n_images or (len(val.labels) if val is not None else len(train.labels))
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(train.labels), generator=generator)[:wanted]
        # Shares only when every process gets an image (each checks the module's output).
        self._sharded = trainer.world_size > 1 and len(order) >= trainer.world_size
        if self._sharded:
            order = order[trainer.global_rank :: trainer.world_size]
        device = module.device
        self._sample = (train.images[order.to(train.images.device)].to(device),
                        train.labels[order.to(train.labels.device)].to(device))  # fmt: skip
        return self._sample

    def _sums(self, trainer: L.Trainer, module: L.LightningModule, images: torch.Tensor,
              labels: torch.Tensor) -> torch.Tensor | None:  # fmt: skip
        """[summed cross-entropy, correct predictions, images] of this process's share; None
        (said once) when the module's output is not one row of class scores per image, which a
        module of one's own may return."""
        loss_sum = torch.zeros((), device=images.device)
        correct = torch.zeros((), device=images.device)
        # In the run's precision, as validation: its input conversion (bf16-true, 64-true…)
        # and its step context (the autocast of bf16-mixed, 16-mixed).
        precision = trainer.precision_plugin
        with torch.no_grad(), precision.val_step_context(), eval_mode(module):
            for start in range(0, len(labels), self.batch_size):
                batch = slice(start, start + self.batch_size)
                logits = module(precision.convert_input(images[batch]))
                if start == 0 and (why := self._not_scores(module, logits, len(labels[batch]))):
                    self._skip(why)
                    return None
                loss_sum += _loss_sum(module, logits.float(), labels[batch])
                correct += (logits.argmax(1) == labels[batch]).sum()
        return torch.stack([loss_sum, correct, torch.full_like(loss_sum, len(labels))])

    def _not_scores(self, module: L.LightningModule, output: Any, n_images: int) -> str | None:
        """Why `output`, the module's answer to `n_images` images, is not their class scores
        (a float tensor of one row per image, one column per class); None when it is."""
        classes = self._n_classes
        if (isinstance(output, torch.Tensor) and output.is_floating_point()
                and output.shape[:1] == (n_images,) and output.ndim == 2
                and (classes is None or output.shape[1] == classes)):  # fmt: skip
            return None
        got = (f"a {output.dtype} tensor of shape {tuple(output.shape)}"
               if isinstance(output, torch.Tensor) else f"a {type(output).__name__}")  # fmt: skip
        wanted = f"({n_images}, {classes or 'classes'})"
        return f"{type(module).__name__}.forward returned {got}, not {wanted} class scores"


def _loss_sum(
    module: L.LightningModule, logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """The summed loss of a batch as validation measures it: the module's own `compute_loss`
    (Classifier's, or a subclass's label smoothing) where it has one, else cross-entropy."""
    compute_loss = getattr(module, "compute_loss", None)
    if callable(compute_loss) and _takes_scores_and_labels(compute_loss):
        return compute_loss(logits, labels) * len(labels)
    return F.cross_entropy(logits, labels, reduction="sum")


def _takes_scores_and_labels(compute_loss: Any) -> bool:
    """Whether a module's `compute_loss` is one of `(logits, labels)`, as Classifier's: a module
    of one's own may have a `compute_loss(batch)` of another kind, left alone."""
    try:
        names = list(inspect.signature(compute_loss).parameters)
    except ValueError:  # no signature Python can read
        return False
    return names[:2] == ["logits", "labels"]


def _takes_images_alone(forward: Any) -> bool:
    """Whether `forward` can be called with one argument, a batch of images."""
    try:
        inspect.signature(forward).bind(None)
    except TypeError:  # another required argument
        return False
    except ValueError:  # no signature Python can read: the call itself will tell
        return True
    return True
