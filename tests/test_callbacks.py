"""goodfit's own callbacks, exercised through a real Lightning Trainer."""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import RichProgressBar

from goodfit.callbacks import (
    AugmentationPreview,
    EpochHistory,
    StopOnDivergence,
    ThrottledRichProgressBar,
    TrainSetEvaluation,
)
from goodfit.data.batches import TensorBatches
from goodfit.lit import Classifier
from goodfit.models import MLP


def tiny_fit(callbacks: list, n: int = 40, batch_size: int = 4, epochs: int = 1) -> Classifier:
    x, y = torch.rand(n, 1, 28, 28), torch.randint(0, 10, (n,))
    model = Classifier(
        MLP(hidden=(8,)), functools.partial(torch.optim.SGD, lr=0.1), class_names=list("0123456789")
    )
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(
        model,
        train_dataloaders=TensorBatches(x, y, batch_size, shuffle=True),
        val_dataloaders=TensorBatches(x, y, 20, shuffle=False),
    )
    return model


def test_progress_bar_updates_every_n_batches_and_at_epoch_end(monkeypatch):
    updates: list[int] = []
    original = RichProgressBar.on_train_batch_end

    def counting(self, trainer, pl_module, outputs, batch, batch_idx):
        updates.append(batch_idx + 1)
        original(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", counting)
    tiny_fit([ThrottledRichProgressBar(update_every=4)], n=40, batch_size=4, epochs=2)
    assert updates == [4, 8, 10] * 2  # 10 batches an epoch: every 4th, and the last


@pytest.mark.parametrize("leave", [False, True])
def test_each_finished_epochs_bar_shows_that_epochs_training_figures(leave, capsys):
    """The Classifier logs train/loss in its on_train_epoch_end, which Lightning calls after
    the callbacks': the bar left on screen (the last one; with leave=true, every epoch's)
    shows its own epoch's figure, not the epoch before's."""
    history = EpochHistory()
    torch.manual_seed(0)
    tiny_fit([ThrottledRichProgressBar(update_every=4, leave=leave), history], epochs=3)
    shown = re.findall(r"train/loss: ([0-9.]+)", capsys.readouterr().out)
    losses = [f"{row['train_loss']:.3f}" for row in history.history]
    assert shown == (losses if leave else losses[-1:])


def test_progress_bar_rejects_bad_interval():
    with pytest.raises(ValueError, match="update_every=0"):
        ThrottledRichProgressBar(update_every=0)


def test_history_records_epoch_seconds_and_startup():
    record = EpochHistory()
    tiny_fit([record], epochs=2)
    assert [h["epoch"] for h in record.history] == [1, 2]
    assert all(h["seconds"] > 0 and h["cpu_seconds"] > 0 for h in record.history)
    assert record.startup_seconds is not None and record.startup_seconds > 0


class StopWithinSecondEpoch(L.Callback):
    """Stops the run after the third batch of the second epoch, as trainer.max_time does."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if (
            trainer.current_epoch == 1
            and trainer.fit_loop.epoch_loop.batch_progress.current.processed == 3
        ):
            trainer.should_stop = True


def test_history_says_how_much_of_an_epoch_stopped_within_it_ran():
    """A full epoch's row has no batch count; an epoch stopped within it (the time limit) says
    the batches it ran of how many: its figures rest on that part."""
    record = EpochHistory()
    tiny_fit([record, StopWithinSecondEpoch()], epochs=5)  # 10 batches an epoch
    assert [row["epoch"] for row in record.history] == [1, 2]
    assert "batches_run" not in record.history[0]
    assert (record.history[1]["batches_run"], record.history[1]["batches_in_epoch"]) == (3, 10)


class LogsKnownFigures(L.LightningModule):
    """Logs figures that name their epoch: train/loss from training_step (step and epoch
    values, so Lightning names the epoch's one train/loss_epoch), train/acc in its own
    on_train_epoch_end (which Lightning calls after the callbacks' one), val/* per step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.log("train/loss", 10.0 + self.current_epoch, on_step=True, on_epoch=True)
        return self.layer(batch[0]).sum()

    def on_train_epoch_end(self) -> None:
        self.log("train/acc", 0.1 * (self.current_epoch + 1))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", 20.0 + self.current_epoch)
        self.log("val/acc", 0.5)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize("checkpoints", [False, True])
def test_history_reads_what_any_module_logs_for_its_own_epoch(tmp_path, checkpoints):
    """Rows complete at the next epoch's start and at the end of training, or, with a checkpoint
    written at each epoch's end, when it is written; epochs without validation get None."""
    record = EpochHistory()
    batches = TensorBatches(torch.rand(8, 4), torch.randint(0, 2, (8,)), 4, shuffle=False)
    callbacks: list = [record]
    if checkpoints:
        callbacks.append(L.pytorch.callbacks.ModelCheckpoint(
            dirpath=tmp_path, save_on_train_epoch_end=True, save_top_k=-1))  # fmt: skip
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, callbacks=callbacks,
                        enable_checkpointing=checkpoints, enable_model_summary=False,
                        enable_progress_bar=False, check_val_every_n_epoch=2)  # fmt: skip
    trainer.fit(LogsKnownFigures(), train_dataloaders=batches, val_dataloaders=batches)
    rows = [{k: v for k, v in row.items() if "seconds" not in k} for row in record.history]
    no_val = {"val_loss": None, "val_acc": None}
    assert rows == [
        {"epoch": 1, "train_loss": 10.0, "train_acc": pytest.approx(0.1), **no_val},
        {"epoch": 2, "train_loss": 11.0, "train_acc": pytest.approx(0.2), "val_loss": 21.0,
         "val_acc": 0.5},
        {"epoch": 3, "train_loss": 12.0, "train_acc": pytest.approx(0.3), **no_val},
    ]  # fmt: skip
    if checkpoints:  # each epoch's checkpoint holds the rows up to that epoch
        saved = torch.load(tmp_path / "epoch=1-step=4.ckpt", weights_only=True)["callbacks"]
        assert [row["epoch"] for row in saved["EpochHistory"]["history"]] == [1, 2]


def test_stage_metrics_equal_torchmetrics_over_uneven_batches():
    from torchmetrics.classification import MulticlassAccuracy

    from goodfit.lit.metrics import StageMetrics

    torch.manual_seed(0)
    metrics, reference = StageMetrics(), MulticlassAccuracy(10, average="micro")
    losses, sizes = [], []
    for n in (32, 32, 7):
        logits, target = torch.randn(n, 10), torch.randint(0, 10, (n,))
        loss = F.cross_entropy(logits, target)
        metrics.update(loss, logits, target)
        reference.update(logits, target)
        losses.append(float(loss) * n)
        sizes.append(n)
    values = metrics.compute_and_reset()
    assert float(values["acc"]) == pytest.approx(float(reference.compute()), abs=1e-6)
    assert float(values["loss"]) == pytest.approx(sum(losses) / sum(sizes), rel=1e-6)
    assert float(metrics.totals.sum()) == 0.0, "reset for the next epoch"


def test_the_checkpoint_callback_keeps_lightnings_state_key(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint as LightningCheckpoint

    from goodfit.callbacks import ModelCheckpoint

    settings = {"dirpath": tmp_path, "monitor": "val/acc", "mode": "max", "save_last": True}
    ours, theirs = ModelCheckpoint(**settings), LightningCheckpoint(**settings)
    assert ours.state_key == theirs.state_key and ours.state_key is ours.state_key
    assert isinstance(ours, LightningCheckpoint)


def test_the_checkpoint_callback_restores_a_moved_folders_state_as_written_there(tmp_path):
    """A state saved in `old/` restores in `new/` with its paths and best score when the same
    files are there; otherwise exactly as Lightning's own callback restores it."""
    from lightning.pytorch.callbacks import ModelCheckpoint as LightningCheckpoint

    from goodfit.callbacks import ModelCheckpoint

    old, new = tmp_path / "old", tmp_path / "new"
    best = str(old / "best.ckpt")
    state = {"monitor": "val/acc", "best_model_score": torch.tensor(0.8), "best_model_path": best,
             "current_score": torch.tensor(0.7), "dirpath": str(old),
             "best_k_models": {best: torch.tensor(0.8)}, "kth_best_model_path": best,
             "kth_value": torch.tensor(0.8), "last_model_path": ""}  # fmt: skip
    settings = {"dirpath": new, "monitor": "val/acc", "mode": "max"}

    def restored(callback_class: type) -> dict:
        callback = callback_class(**settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Lightning's "The dirpath has changed"
            callback.load_state_dict(dict(state))
        return {"score": callback.best_model_score, "best": callback.best_model_path,
                "k": dict(callback.best_k_models)}  # fmt: skip

    assert restored(ModelCheckpoint) == restored(LightningCheckpoint)  # best.ckpt not in new/
    assert restored(ModelCheckpoint)["best"] == best and restored(ModelCheckpoint)["score"] is None
    new.mkdir()
    (new / "best.ckpt").write_bytes(b"moved")
    moved = str(new / "best.ckpt")
    assert restored(ModelCheckpoint) == {"score": torch.tensor(0.8), "best": moved,
                                         "k": {moved: torch.tensor(0.8)}}  # fmt: skip


class FlagExchange:
    """A DDP strategy's `reduce` between two processes, seen from the first: the other one
    contributes 0, and `during` runs while the flags are exchanged."""

    root_device = torch.device("cpu")

    def __init__(self, during=lambda: None) -> None:
        self.during = during

    def reduce(self, tensor: torch.Tensor, reduce_op) -> torch.Tensor:
        result = tensor.clone()  # max(own, 0): the other process got no signal
        self.during()
        return result


def test_a_signal_during_the_ddp_flag_exchange_is_kept_for_the_next(tmp_path):
    """A SIGTERM that lands while the processes exchange their flags is not in that exchange
    (the other process decided without it) but must not be lost: the next exchange stops all."""
    import os
    import signal
    from types import SimpleNamespace

    from goodfit.callbacks import RunInterrupted, StopOnSignal

    stop = StopOnSignal(tmp_path / "last.ckpt")
    strategy = FlagExchange(during=lambda: os.kill(os.getpid(), signal.SIGTERM))
    trainer = SimpleNamespace(world_size=2, strategy=strategy)
    stop.on_train_start(trainer, None)
    try:
        assert stop.agree(trainer) is None  # as the other process's exchange said
        strategy.during = lambda: None
        assert stop.agree(trainer) == signal.SIGTERM
        with pytest.raises(RunInterrupted, match="Interrupted by SIGTERM after step 3"):
            stop.stop(trainer, "after step 3")
    finally:
        stop.on_train_end(trainer, None)
    assert signal.getsignal(signal.SIGTERM) != stop._handle


class _Misspelt(L.Callback):
    def on_train_epoch_ended(self, trainer: Any, pl_module: Any) -> None: ...

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None: ...

    def on_train_epoch_end_summary(self) -> None: ...  # a helper of its own, not a typo


def test_a_misspelt_hook_is_named_when_the_callback_is_built(caplog):
    """Lightning never calls `on_train_epoch_ended`; goodfit says so, once, with the hook meant.
    Real hooks, helpers of one's own and hooks set on the instance (LambdaCallback) pass."""
    from lightning.pytorch.callbacks import LambdaCallback

    from goodfit.tasks.assemble import warn_misspelled_hooks

    with caplog.at_level("WARNING"):
        warn_misspelled_hooks("callbacks.mine", _Misspelt(), L.Callback)
        warn_misspelled_hooks("callbacks.lambda", LambdaCallback(on_fit_end=print), L.Callback)
    assert [r.getMessage() for r in caplog.records] == [
        "callbacks.mine: _Misspelt.on_train_epoch_ended is not a Lightning hook and will never "
        "be called; did you mean on_train_epoch_end?"
    ]


@pytest.mark.parametrize(
    ("build", "said"),
    [
        (lambda: StopOnDivergence(check_every_n_steps=0), "check_every_n_steps=0"),
        (lambda: AugmentationPreview("out", n_images=0), "n_images=0"),
        (lambda: AugmentationPreview("out", n_versions=2.5), "n_versions=2.5"),
        (lambda: TrainSetEvaluation(n_images=0), "n_images=0"),
        (lambda: TrainSetEvaluation(batch_size=True), "batch_size=True"),
    ],
)
def test_callbacks_built_in_code_refuse_bad_counts_at_once(build, said):
    """Built in code rather than from the config (whose checks refuse these before any work),
    the callbacks refuse a count that would fail mid-run (a modulo by zero on an accelerator,
    an empty preview grid)."""
    with pytest.raises(ValueError, match=rf"{said}: must be an integer >= 1"):
        build()


@pytest.mark.parametrize("bad", ["trust_checkpoint=true", [1]])
def test_stop_on_signal_refuses_resume_args_that_are_no_list_of_overrides(bad, tmp_path):
    from goodfit.callbacks import StopOnSignal

    with pytest.raises(ValueError, match="resume_args=.*a list of overrides"):
        StopOnSignal(tmp_path / "last.ckpt", resume_args=bad)
    assert StopOnSignal(tmp_path / "last.ckpt", resume_args=["seed=1"]).resume_args == ("seed=1",)
