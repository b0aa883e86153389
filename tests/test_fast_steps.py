"""perf=fast's own optimizer steps (manual optimization) against Lightning's automatic ones:
the same settings must give the same weights, learning rates and step counts."""

from __future__ import annotations

import functools
import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from goodfit.callbacks import EpochHistory
from goodfit.data.batches import TensorBatches
from goodfit.lit import Classifier
from goodfit.models import MLP
from goodfit.perf import PerfSettings, manual_steps
from goodfit.perf.manual_steps import FastSteps
from goodfit.runtime.errors import ConfigError

from .conftest import run_train, synthetic_overrides


class RecordLearningRates(Callback):
    """The learning rate seen at every on_train_batch_end, and gradient norms at each step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.steps += 1


SCHEDULERS = {
    "none": None,
    "onecycle": (
        functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.5, total_steps=None),
        "step",
    ),
    "step": (functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5), "epoch"),
    "plateau": (
        functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=0, factor=0.5),
        "epoch",
    ),
}


def fit(
    manual: bool, scheduler: str = "none", epochs: int = 3, steps_per_batch: int = 1,
    max_steps: int = -1, **step_kwargs,
) -> tuple:  # fmt: skip
    """Train a tiny MLP on 46 samples (12 batches of 4, the last one of 2) and return its
    weights, the learning rates per batch, the optimizer steps, the global step and the
    per-epoch history."""
    L.seed_everything(0, verbose=False)
    x, y = torch.rand(46, 1, 28, 28), torch.randint(0, 10, (46,))
    factory, interval = SCHEDULERS[scheduler] or (None, "epoch")
    model = Classifier(
        MLP(hidden=(16,), dropout=0.0),
        functools.partial(torch.optim.SGD, lr=0.3, momentum=0.9),
        scheduler={"factory": factory, "interval": interval} if factory else None,
        class_names=list("0123456789"),
    )
    if manual:
        steps = FastSteps(**step_kwargs, steps_per_batch=steps_per_batch, batch_size=4)
        manual_steps.install(model, steps)
    recorder, epochs_record = RecordLearningRates(), EpochHistory()
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, callbacks=[recorder, epochs_record],
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
        num_sanity_val_steps=0, max_steps=max_steps,
        **(FastSteps.trainer_kwargs() if manual else step_kwargs),
    )  # fmt: skip
    trainer.fit(
        model,
        train_dataloaders=TensorBatches(x, y, 4, shuffle=True, seed=1,
                                        steps_per_batch=steps_per_batch),
        val_dataloaders=TensorBatches(x[:20], y[:20], 10, shuffle=False),
    )  # fmt: skip
    history = [{k: v for k, v in h.items() if "seconds" not in k} for h in epochs_record.history]
    return model.net.state_dict(), recorder.lrs, recorder.steps, trainer.global_step, history


@pytest.mark.parametrize(
    "scheduler, step_kwargs",
    [
        ("none", {}),
        ("none", {"accumulate_grad_batches": 5}),  # 12 batches: steps after 5, 10 and 12
        ("none", {"accumulate_grad_batches": 3}),  # not a divisor of steps_per_batch=5
        ("none", {"gradient_clip_val": 0.05}),
        ("none", {"gradient_clip_val": 0.001, "gradient_clip_algorithm": "value"}),
        ("onecycle", {"accumulate_grad_batches": 3}),
        ("step", {"gradient_clip_val": 0.05}),
        ("plateau", {}),
    ],
)
def test_manual_steps_match_lightning_automatic_optimization(scheduler, step_kwargs):
    auto_weights, auto_lrs, auto_steps, auto_global, auto_history = fit(
        False, scheduler, **step_kwargs
    )
    weights, lrs, steps, global_step, history = fit(True, scheduler, **step_kwargs)
    assert steps == auto_steps and global_step == auto_global
    assert lrs == pytest.approx(auto_lrs, rel=1e-6)
    assert_same_weights(weights, auto_weights)
    assert_same_history(history, auto_history)
    # 12 batches in Lightning batches of 5 (5, 5, 2): the same steps, weights and curves
    weights, lrs, steps, global_step, history = fit(True, scheduler, steps_per_batch=5,
                                                    **step_kwargs)  # fmt: skip
    assert steps == auto_steps and global_step == auto_global
    assert lrs[-1] == pytest.approx(auto_lrs[-1], rel=1e-6)
    assert_same_weights(weights, auto_weights)
    assert_same_history(history, auto_history)


def assert_same_history(history: list[dict], expected: list[dict]) -> None:
    assert len(history) == len(expected)
    for epoch, expected_epoch in zip(history, expected, strict=True):
        assert epoch == pytest.approx(expected_epoch, rel=1e-5)


def assert_same_weights(weights: dict, expected: dict) -> None:
    for name, value in expected.items():
        torch.testing.assert_close(weights[name], value, msg=name)


def test_steps_per_batch_stops_at_max_steps():
    expected = fit(False, max_steps=7)
    chunked = fit(True, steps_per_batch=5, max_steps=7)
    assert chunked[2] == expected[2] == 7 and chunked[3] == 7
    assert_same_weights(chunked[0], expected[0])


def test_steps_per_batch_needs_manual_optimization():
    with pytest.raises(ConfigError, match="steps_per_batch=4 needs perf.manual_optimization=true"):
        PerfSettings.from_config({"steps_per_batch": 4})


def same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(a[name], b[name]) for name in a)


def test_settings_make_a_difference():
    """So the comparison above is not between runs that ignore the settings."""
    plain_weights, plain_lrs, plain_steps, _, _ = fit(True)
    accumulated = fit(True, accumulate_grad_batches=5)
    assert accumulated[2] == 9 and plain_steps == 36  # 3 epochs of 3 steps / 12 steps
    assert not same_weights(fit(True, gradient_clip_val=0.05)[0], plain_weights)
    assert fit(True, "step")[1] != plain_lrs


def fit_plateau(interval: str = "epoch", monitor: str = "val/loss") -> None:
    """One epoch of a tiny model with a ReduceLROnPlateau scheduler, validating each epoch."""
    L.seed_everything(0, verbose=False)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    model = Classifier(
        MLP(hidden=(4,)),
        functools.partial(torch.optim.SGD, lr=0.1),
        scheduler={"factory": SCHEDULERS["plateau"][0], "interval": interval},
        class_names=list("0123456789"),
    )
    manual_steps.install(model, FastSteps(batch_size=4, monitor=monitor))
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(model, train_dataloaders=TensorBatches(x, y, 4, shuffle=False),
                val_dataloaders=TensorBatches(x, y, 4, shuffle=False))  # fmt: skip


def test_plateau_scheduler_on_each_step_is_refused():
    with pytest.raises(ConfigError, match="scheduler.interval='step'"):
        fit_plateau(interval="step")


def test_plateau_monitor_missing_names_the_key():
    with pytest.raises(ConfigError, match=r"scheduler.monitor='val/los'.*val/loss"):
        fit_plateau(monitor="val/los")


def test_perf_fast_takes_the_trainer_keys(compose):
    """perf=fast applies trainer.gradient_clip_val and accumulate_grad_batches itself and hides
    them from the Trainer, which refuses them with manual optimization."""
    from goodfit.perf import FastPath

    cfg = compose("perf=fast", "trainer.gradient_clip_val=0.5", "trainer.accumulate_grad_batches=3")
    fast = FastPath(PerfSettings.from_config(cfg.perf), cfg.trainer)
    assert fast.steps == FastSteps(0.5, None, 3, steps_per_batch=8)
    assert fast.trainer_kwargs()["accumulate_grad_batches"] == 1
    plain = FastPath(PerfSettings.from_config(compose("perf=default").perf), cfg.trainer)
    assert plain.steps is None and plain.trainer_kwargs() == {}


@pytest.mark.slow
def test_train_py_gives_the_same_run_with_each_way_of_stepping(synthetic_dir, tmp_path):
    """Through train.py as users run it: perf=default (Lightning's automatic optimization),
    goodfit's own steps one per batch, and 8 per Lightning batch (perf=fast) give the same
    curves and test figures, with clipping, accumulation and a one-cycle schedule from the
    usual trainer keys."""
    common = ["experiment=good", "trainer.max_epochs=2", "scheduler=onecycle",
              "trainer.gradient_clip_val=0.5", "trainer.accumulate_grad_batches=3",
              *synthetic_overrides(synthetic_dir)]  # fmt: skip
    summaries = []
    for name, overrides in {
        "lightning": ["perf=default"],
        "one_per_batch": ["perf=fast", "perf.steps_per_batch=1"],
        "eight_per_batch": ["perf=fast"],
    }.items():
        run_train(*common, *overrides, f"hydra.run.dir={tmp_path / name}")
        summaries.append(json.loads((tmp_path / name / "summary.json").read_text()))
    expected = summaries[0]
    for summary in summaries[1:]:
        assert summary["test_acc"] == pytest.approx(expected["test_acc"], abs=1e-6)
        assert summary["test_loss"] == pytest.approx(expected["test_loss"], rel=1e-5)
        for epoch, expected_epoch in zip(summary["history"], expected["history"], strict=True):
            for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
                assert epoch[key] == pytest.approx(expected_epoch[key], rel=1e-5), key
