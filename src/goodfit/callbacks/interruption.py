"""Stop cleanly on SIGTERM or Ctrl-C: save a checkpoint, then exit with 128 + the signal."""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

log = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(SystemExit):
    """The run was stopped by a signal. Exits with 128 + its number (143 SIGTERM, 130 SIGINT),
    the status a shell gives a process killed by that signal, so a scheduler sees a failure.
    A SystemExit, so that it also ends a multirun rather than only the current job."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(128 + signum)
        self.signum, self.message = signum, message

    def __str__(self) -> str:
        return self.message


class StopOnSignal(L.Callback):
    """Turns SIGTERM and SIGINT during training into a clean stop.

    The signal is only recorded; the run stops at the next point it can resume exactly from:
    the end of the current training batch, where a checkpoint (`last.ckpt`) is written, or
    the start of the next epoch when the signal came during validation (the epoch-end
    `last.ckpt` is then already written). A second Ctrl-C stops at once, without a checkpoint.

    With several processes (DDP) a signal often reaches one of them only (`kill <pid>`). At each
    of those points the processes agree, with one all-reduce of a single number, on whether any
    of them got a signal, so all stop at the same step and write one checkpoint together
    (a process stopping alone would leave the others waiting for it).

    Lightning's own SIGTERM handling is replaced while training: it exits with 0, and under DDP
    it broadcasts from inside the signal handler, which hangs when the other processes are not
    at the same point.
    """

    def __init__(
        self, checkpoint_path: str | Path, resume_dir: str | Path | None = None,
        resume_args: Sequence[str] = (),
    ) -> None:  # fmt: skip
        self.checkpoint_path = Path(checkpoint_path)
        # The folder to resume: the run's own, or the study's when the run is one of its steps.
        self.resume_dir = Path(resume_dir) if resume_dir else self.checkpoint_path.parent.parent
        # More arguments of the resume command it prints (the train task adds
        # trust_checkpoint=true for a run of classes outside goodfit's, torch's and Lightning's).
        if isinstance(resume_args, str) or not all(isinstance(a, str) for a in resume_args):
            raise ValueError(f"resume_args={resume_args!r}: a list of overrides (key=value)")
        self.resume_args = tuple(resume_args)
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning(
            "Received %s: stopping after this batch and saving a checkpoint",
            signal.Signals(signum).name,
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for signum in HANDLED_SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()

    def agree(self, trainer: L.Trainer) -> int | None:
        """The signal this process or, under DDP, any process received (None: none).

        `self.signum` stays this process's own: a signal that lands while the processes
        exchange their flags is not in this exchange (the others must decide alike), and
        must not be overwritten by its result, so the next exchange carries it."""
        if trainer is None or trainer.world_size <= 1:
            return self.signum
        import torch
        from torch.distributed import ReduceOp

        flag = torch.tensor([self.signum or 0], device=trainer.strategy.root_device)
        flag = trainer.strategy.reduce(flag, reduce_op=ReduceOp.MAX)
        return int(flag.item()) or None

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.agree(trainer) is None:
            return
        # Lightning's own mid-epoch checkpoint point (as ModelCheckpoint(every_n_train_steps)).
        trainer.save_checkpoint(self.checkpoint_path)
        epoch_loop = trainer.fit_loop.epoch_loop
        # Optimizer steps, and Lightning batches (several steps each with steps_per_batch > 1)
        self.stop(
            trainer,
            f"after step {trainer.global_step} (epoch {trainer.current_epoch + 1}, Lightning "
            f"batch {epoch_loop.batch_progress.current.processed} of "
            f"{trainer.num_training_batches})",
        )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stop(trainer, f"at the end of epoch {trainer.current_epoch}")

    def resume_command_arguments(self) -> str:
        """What follows `python train.py` in the resume command a stop prints."""
        return " ".join((f"resume={self.resume_dir}", *self.resume_args))

    def stop(self, trainer: L.Trainer, where: str) -> None:
        """Raise RunInterrupted if a signal came (to any process); a no-op otherwise. Under
        DDP every process must call it at the same point."""
        signum = self.agree(trainer)
        if signum is None:
            return
        name = signal.Signals(signum).name
        saved = self.checkpoint_path.is_file()
        message = f"Interrupted by {name} {where}. " + (
            f"Checkpoint: {self.checkpoint_path}. "
            f"Resume with: python train.py {self.resume_command_arguments()}"
            if saved
            else "No checkpoint was written (checkpoints are switched off)."
        )
        log.error("%s", message)
        raise RunInterrupted(signum, message)
