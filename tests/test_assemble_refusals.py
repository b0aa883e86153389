"""Values torch or Lightning would refuse only once fit has started (optimizer arguments) or
with a bare exception (a device the machine lacks) are refused as the run's parts are built,
naming the group."""

from __future__ import annotations

import pytest
import torch

from goodfit.runtime.errors import ConfigError
from goodfit.tasks.assemble import build_trainer, check_optimizer

from .conftest import run_train


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ("optimizer=adam", "optimizer.betas=[2,0.9]"),
            r"optimizer \(torch\.optim\.Adam\) refuses its values: Invalid beta parameter",
        ),
        (
            ("optimizer=sgd_momentum", "optimizer.momentum=-1"),
            r"optimizer \(torch\.optim\.SGD\) refuses its values: Invalid momentum value: -1",
        ),
        (("optimizer.weight_decay=-1",), r"Invalid weight_decay value: -1"),
        (
            ("optimizer=adam", "optimizer.betas=[0.9]"),  # torch reads betas[1]: an IndexError
            r"optimizer \(torch\.optim\.Adam\) refuses its values: list index out of range$",
        ),
        (("+optimizer.bogus=1",), r"unexpected keyword argument 'bogus'"),
    ],  # fmt: skip
)
def test_optimizer_values_torch_refuses_are_named_before_any_work(compose, overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_optimizer(compose(*overrides))


@pytest.mark.parametrize("choice", ["sgd", "sgd_momentum", "sgd_nesterov", "rmsprop", "adam",
                                    "adamw"])  # fmt: skip
def test_every_shipped_optimizer_passes(compose, choice):
    check_optimizer(compose(f"optimizer={choice}"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_resumed_gpu_run_on_a_machine_without_one_is_told_where_it_can_go_on(compose):
    """Resume keeps the run's trainer, so `trainer=cpu` is no way out: the message says so."""
    from goodfit.tasks.assemble import check_accelerator

    with pytest.raises(
        ConfigError,
        match="resume=/runs/a: the run trains with "
        "trainer.accelerator=gpu, and this machine has no",
    ):
        check_accelerator(compose("trainer=gpu", "resume=/runs/a"))
    for resume in ("resume=auto", "resume=null"):  # a new run: its trainer is a choice
        with pytest.raises(ConfigError, match="trainer=cpu runs on the CPU"):
            check_accelerator(compose("trainer=gpu", resume))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_gpu_trainer_without_a_gpu_is_a_config_error(tmp_path):
    result = run_train("trainer=gpu", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert ("trainer.accelerator=gpu: this machine has no CUDA GPU that torch can use: "
            "trainer=default takes a GPU when there is one") in output  # fmt: skip
    assert "Traceback" not in output and not (tmp_path / "run" / "checkpoints").exists()
    assert "Fashion-MNIST from" not in output  # refused before the data is read


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.precision=fp8", "trainer.precision=fp8: Lightning refuses it: Precision 'fp8' is "
                                  "invalid. Allowed precision values"),
        ("trainer.devices=0", "trainer (accelerator=cpu, devices=0): Lightning refuses it on this "
                              "machine: `Trainer(devices=0)` value is not a valid input"),
        ("trainer.accelerator=tpu", "trainer (accelerator=tpu, devices=1): Lightning refuses it on "
                                    "this machine: Requirement 'torch_xla"),
    ],
)  # fmt: skip
def test_a_trainer_lightning_refuses_is_a_config_error_naming_the_key(
    compose, tmp_path, override, message
):
    """Lightning's ValueError, MisconfigurationException or missing accelerator package while the
    Trainer is built comes out as one line naming the key (was a traceback for the first and
    the last)."""
    cfg = compose("trainer=cpu", override, "~logger", f"paths.output_dir={tmp_path}")
    with pytest.raises(ConfigError) as refused:
        build_trainer(cfg, callbacks=[], loggers=[])
    assert str(refused.value).startswith(message)


def test_an_errors_first_line_is_what_a_message_quotes():
    """One line of a library's error in goodfit's messages: no trail, bounded, never empty."""
    from goodfit.runtime.errors import first_line

    assert first_line(IndexError("list index out of range\n    full_key: [1]")) == (
        "list index out of range"
    )
    assert first_line(ValueError("x" * 500), limit=10) == "x" * 10
    assert first_line(RuntimeError("")) == "RuntimeError"
