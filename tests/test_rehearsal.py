"""The rehearsals on a stand-in parameter: values a scheduler cannot run with fail before
training, naming the key; the run's schedule is untouched; a real run stops before its first
epoch; an optimizer that takes only matrices still passes."""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch
from torch.optim import lr_scheduler

import goodfit.lit.rehearsal as rehearsal
from goodfit.lit.rehearsal import rehearse_optimizer, rehearse_schedule
from goodfit.runtime.errors import ConfigError

from .conftest import run_train

SGD = functools.partial(torch.optim.SGD, lr=0.1)


@pytest.mark.parametrize(
    ("factory", "steps", "message"),
    [
        (
            functools.partial(lr_scheduler.CosineAnnealingLR, T_max=0),
            20,
            r"CosineAnnealingLR\) fails at its step 1 of 20 .*ZeroDivisionError",
        ),
        (
            functools.partial(lr_scheduler.StepLR, step_size=0),
            5,
            r"StepLR\) fails at its step 1 of 5 .*ZeroDivisionError",
        ),
        (
            functools.partial(lr_scheduler.OneCycleLR, max_lr=0.1, total_steps=10),
            20,
            r"OneCycleLR\) fails at its step 11 of 20 .*Tried to step 11 times",
        ),
        (
            functools.partial(lr_scheduler.CosineAnnealingLR, T_max=10, eta_min=-1.0),
            20,
            r"CosineAnnealingLR\) gives a learning rate of -0\.\d+ at its step 2 of 20",
        ),
        (
            functools.partial(lr_scheduler.LambdaLR, lr_lambda=lambda e: math.nan if e == 3 else 1),
            9,
            r"LambdaLR\) gives a learning rate of nan at its step 3 of 9",
        ),
        (
            functools.partial(lr_scheduler.StepLR, step_size=2, size=1),
            5,
            r"StepLR\) fails when built .*unexpected keyword argument 'size'",
        ),
    ],  # fmt: skip
)
def test_a_schedule_that_cannot_run_fails_by_key(factory, steps, message):
    with pytest.raises(ConfigError, match=r"^scheduler\.factory \(torch\.optim\.lr_scheduler\."
                       + message):  # fmt: skip
        rehearse_schedule(factory, SGD, steps)


@pytest.mark.parametrize(
    ("factory", "steps", "kwargs"),
    [
        (functools.partial(lr_scheduler.CosineAnnealingLR, T_max=20), 20, {}),
        (functools.partial(lr_scheduler.OneCycleLR, max_lr=0.5), 100, {"total_steps": 100}),
        (functools.partial(lr_scheduler.ReduceLROnPlateau, patience=0, factor=0.5), 50, {}),
        (functools.partial(lr_scheduler.StepLR, step_size=1, gamma=0.1), 400, {}),  # lr → 0
    ],  # fmt: skip
)
def test_a_schedule_that_runs_passes_and_leaves_the_run_alone(factory, steps, kwargs):
    net = torch.nn.Linear(2, 2)
    optimizer = SGD(net.parameters())
    stand_ins = []

    def optimizer_factory(params):
        stand_ins.append(params)
        return SGD(params)

    rehearse_schedule(factory, optimizer_factory, steps, **kwargs)
    assert len(stand_ins) == 1 and all(p.shape == (2, 2) for p in stand_ins[0])
    assert optimizer.param_groups[0]["lr"] == 0.1 and "initial_lr" not in optimizer.param_groups[0]


def test_a_long_or_endless_run_is_rehearsed_up_to_the_limit(monkeypatch):
    monkeypatch.setattr(rehearsal, "REHEARSAL_LIMIT", 30)
    seen = []
    factory = functools.partial(lr_scheduler.LambdaLR, lr_lambda=lambda e: seen.append(e) or 1.0)
    for steps in (math.inf, 1e12):
        seen.clear()
        rehearse_schedule(factory, SGD, steps)
        assert seen == list(range(31))  # the constructor's step 0, then 30 steps
    seen.clear()
    rehearse_schedule(factory, SGD, 7.5)  # epochs / frequency need not divide
    assert seen == list(range(8))


def test_a_run_with_an_impossible_schedule_stops_before_its_first_epoch(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train("scheduler=cosine", "scheduler.factory.T_max=0", "trainer.max_epochs=3",
                       f"hydra.run.dir={run_dir}", check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert ("scheduler.factory (torch.optim.lr_scheduler.CosineAnnealingLR) fails at its step 1 "
            "of 3 in a rehearsal") in output  # fmt: skip
    assert "Traceback" not in output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_run"] == 0
    assert not (run_dir / "checkpoints").exists() or not any((run_dir / "checkpoints").iterdir())


def test_one_cycle_without_total_steps_needs_a_run_of_known_length(monkeypatch):
    from goodfit.lit.classifier import Classifier

    factory = functools.partial(lr_scheduler.OneCycleLR, max_lr=0.1, total_steps=None)
    scheduler = {"factory": factory, "interval": "step"}
    module = Classifier(torch.nn.Linear(4, 2), SGD, scheduler, class_names=("a", "b"))
    monkeypatch.setattr(Classifier, "_total_optimizer_steps", lambda self: math.inf)
    with pytest.raises(ConfigError, match=r"total_steps=null needs a run of known length"):
        module.configure_optimizers()
    monkeypatch.setattr(Classifier, "_total_optimizer_steps", lambda self: 40)
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert scheduler.total_steps == 40


def test_an_optimizer_of_matrices_only_passes_and_bad_values_fail_by_key():
    muon = functools.partial(torch.optim.Muon, lr=0.02)
    assert isinstance(rehearse_optimizer(muon), torch.optim.Muon)
    rehearse_schedule(functools.partial(lr_scheduler.StepLR, step_size=2), muon, 6)
    with pytest.raises(ConfigError, match=r"^optimizer \(torch\.optim\.\w*\.?Muon\) refuses "
                       r"its values: .*momentum"):  # fmt: skip
        rehearse_optimizer(functools.partial(torch.optim.Muon, lr=0.02, momentum=-1.0))
