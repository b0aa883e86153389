"""The LightningModule: any image classifier `net`, trained with cross-entropy.

Plain Lightning: automatic optimization, `training_step` returns the loss, `configure_optimizers`
builds the optimizer and scheduler from the partials it was given. Subclass it, or write your
own LightningModule and select it with `module=<your file>` (README: Extend it).
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from goodfit.lit.metrics import StageMetrics
from goodfit.lit.rehearsal import rehearse_schedule
from goodfit.lit.test_evaluation import TestEvaluation, TestResults
from goodfit.runtime.errors import ConfigError

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]

# Attributes Lightning sets on the module around every hook call; plain strings and flags, so
# nn.Module.__setattr__'s checks for parameters, buffers and submodules are not needed.
_BOOKKEEPING = frozenset({"_current_fx_name", "_current_dataloader_idx"})


class Classifier(L.LightningModule):
    """Trains `net` with cross-entropy on `(images, labels)` batches.

    Logs `train/loss`, `train/acc`, `val/loss`, `val/acc` once per epoch and `test/loss`,
    `test/acc`, with the epoch as the loggers' step, and keeps the per-epoch `history` (saved in
    checkpoints, so a resumed run keeps it). After testing, `test_results` holds the confusion
    matrix, per-class figures and misclassified examples.

    Args:
        net: the network (a plain nn.Module; the `model` config group).
        optimizer: a partial that takes the parameters (the `optimizer` group).
        scheduler: `{"factory": partial taking the optimizer, "interval": "epoch" | "step",
            "monitor": metric}` (the `scheduler` group), or None.
        class_names: the data's class names, saved with the hyper-parameters so a checkpoint
            names its own classes.
    """

    # What it logs every epoch, which a scheduler, a checkpoint or early stopping may watch;
    # goodfit checks their `monitor` against it before any work (a module without it is not).
    epoch_metrics = ("train/loss", "train/acc", "val/loss", "val/acc")

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None = None,
        scheduler: Mapping[str, Any] | None = None,
        class_names: Sequence[str] = (),
    ) -> None:
        super().__init__()
        # Plain values only (the network and the partials stay out), so checkpoints stay
        # loadable as data (`weights_only=True`) and `load_from_checkpoint(path, net=…)` works.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_config = dict(scheduler) if scheduler else None
        self.class_names = tuple(str(name) for name in class_names)
        if len(self.class_names) < 2:
            raise ValueError(f"Classifier: class_names={list(class_names)}: need at least two")
        self.train_metrics = StageMetrics()
        self.val_metrics = StageMetrics()
        self.test_metrics = StageMetrics()
        self.test_evaluation = TestEvaluation(len(self.class_names))
        self.test_results: TestResults | None = None
        # {"val": …, "test": …}: the images each stage's last figures rest on (the run's record)
        self.images_evaluated: dict[str, int] = {}
        self._uncounted_stages: set[str] = set()  # stages whose curves were said not logged
        # `perf=fast` puts goodfit's own optimizer steps here (goodfit.perf.manual_steps);
        # None: Lightning's automatic optimization.
        self.fast_steps: Any = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _BOOKKEEPING:
            object.__setattr__(self, name, value)  # ~44 times a step, see _BOOKKEEPING
        else:
            super().__setattr__(name, value)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def compute_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The mean loss of a batch's class scores, in training, validation and test alike (so
        the curves compare like with like): override it to train with another loss."""
        return F.cross_entropy(logits, labels)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        images, labels = batch
        logits = self.net(images)
        loss = self.compute_loss(logits, labels)
        getattr(self, f"{stage}_metrics").update(loss, logits, labels)
        return loss, logits

    def training_loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """The loss of one training batch, counted in `train/loss` and `train/acc` (a
        subclass's own counts a batch with `self.train_metrics.update(loss, logits, labels)`)."""
        return self._step(batch, "train")[0]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        if self.fast_steps is not None:
            return self.fast_steps.training_step(self, batch, batch_idx)
        return self.training_loss(batch)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        _, logits = self._step(batch, "test")
        self.test_evaluation.update(batch[0], logits, batch[1])

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.fast_steps is not None:
            self.fast_steps.clip_gradients(self, optimizer)

    def _log_stage(self, stage: str) -> dict[str, float]:
        metrics = getattr(self, f"{stage}_metrics")
        values = metrics.compute_and_reset()
        self.images_evaluated[stage] = metrics.images_counted
        if not values:  # no batch counted, by any process: no figures rather than NaN ones
            self._say_nothing_counted(stage)
        # "step" makes the epoch (counted from 1) the x-axis of every curve in the loggers.
        logged = {f"{stage}/{name}": value for name, value in values.items()}
        # The values are already all processes' (torchmetrics synced them): the max of equal
        # values leaves them exact, and sync_dist keeps Lightning's distributed check quiet
        # without silencing it for a module of the user's.
        self.log_dict(logged, prog_bar=stage != "test", sync_dist=True, reduce_fx="max")
        self.log("step", float(self.current_epoch + (stage != "test")), sync_dist=True,
                 reduce_fx="max")  # fmt: skip
        return {name: float(value) for name, value in values.items()}

    def _say_nothing_counted(self, stage: str) -> None:
        """Warn, once a run, that `stage`'s curves are not logged: a subclass's own step
        counted none of its batches."""
        if stage in self._uncounted_stages or self.global_rank != 0:
            return
        self._uncounted_stages.add(stage)
        log.warning(
            "%s counted no %s batch, so %s/loss and %s/acc are not logged. A subclass changes "
            "the loss with compute_loss(logits, labels); a step of its own counts a batch with "
            "self.%s_metrics.update(loss, logits, labels).",
            type(self).__name__, stage, stage, stage, stage,
        )  # fmt: skip

    def on_train_start(self) -> None:
        if self.fast_steps is not None:
            self.fast_steps.check_schedulers(self)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.val_metrics.compute_and_reset()
            return
        self._log_stage("val")

    def on_train_epoch_end(self) -> None:
        self._log_stage("train")
        if self.fast_steps is not None:
            self.fast_steps.epoch_end(self)

    def on_test_epoch_end(self) -> None:
        self._log_stage("test")
        self.test_results = self.test_evaluation.compute_and_reset()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A run resumed after its last validation (stopped before testing) validates nothing
        # more: the count its record needs comes from here.
        checkpoint["goodfit_images_evaluated"] = {"val": self.images_evaluated.get("val", 0)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counted = checkpoint.get("goodfit_images_evaluated") or {}
        if counted.get("val"):
            self.images_evaluated["val"] = int(counted["val"])

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError("Classifier(optimizer=None) can test and predict but not train")
        # Frozen parameters (transfer learning) stay out; Lightning's finetuning callbacks add
        # them as their own parameter group when they unfreeze them.
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_config is None:
            return optimizer
        factory = self.scheduler_config["factory"]
        kwargs = {}
        # OneCycleLR-style schedulers with total_steps=null get the run's real step count.
        # The schedule is rehearsed first: a value it cannot run with fails now, by name.
        if (
            isinstance(factory, functools.partial)
            and factory.keywords.get("total_steps", 0) is None
        ):
            total = self._total_optimizer_steps()
            if not math.isfinite(total):
                raise ConfigError("scheduler.factory.total_steps=null needs a run of known "
                                  "length: set trainer.max_epochs (or trainer.max_steps), or "
                                  "give total_steps")  # fmt: skip
            kwargs["total_steps"] = int(total)
        interval = self.scheduler_config.get("interval", "epoch")
        frequency = self.scheduler_config.get("frequency", 1)
        steps = self._total_optimizer_steps() if interval == "step" else self._max_epochs()
        rehearse_schedule(factory, self.optimizer_factory, steps / max(1, frequency), **kwargs)
        config = {"scheduler": factory(optimizer, **kwargs), "interval": interval,
                  "frequency": frequency}  # fmt: skip
        if self.fast_steps is None:  # with goodfit's own steps, epoch_end passes the monitor
            config["monitor"] = self.scheduler_config.get("monitor", "val/loss")
        return {"optimizer": optimizer, "lr_scheduler": config}

    def _max_epochs(self) -> float:
        epochs = self.trainer.max_epochs
        return math.inf if epochs is None or epochs < 0 else epochs

    def _total_optimizer_steps(self) -> int | float:
        if self.fast_steps is not None:
            return self.fast_steps.total_steps(self.trainer)
        return self.trainer.estimated_stepping_batches


# Lightning inspects training_step's signature on every step (to decide whether to pass
# batch_idx); a precomputed __signature__ is inspect's fast path.
for _step in (Classifier.training_step, Classifier.validation_step, Classifier.test_step):
    _step.__signature__ = inspect.signature(_step)


@contextmanager
def logging_interval_quiet(module: L.LightningModule) -> Iterator[None]:
    """Around a Classifier's fit: it logs once per epoch, so Lightning's warning that an epoch
    has fewer batches than `log_every_n_steps` concerns per-step figures it has none of. A
    module of the user's gets the warning, as in plain Lightning."""
    with warnings.catch_warnings():
        if isinstance(module, Classifier):
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        yield
