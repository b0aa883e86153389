"""The callback dispatcher calls exactly the callbacks Lightning would, minus empty hooks."""

from __future__ import annotations

import functools

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.profilers import SimpleProfiler

from goodfit.data.batches import TensorBatches
from goodfit.fast_hooks import dispatch_callback_hooks, implements, use_fast_callback_dispatch
from goodfit.models import MLP
from goodfit.module import Classifier


class Counting(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.calls.append(f"batch_end:{pl_module._current_fx_name}")

    def on_train_epoch_end(self, trainer, pl_module):
        self.calls.append("epoch_end")


def fit(callbacks: list, profiler=None) -> None:
    x, y = torch.rand(40, 1, 28, 28), torch.randint(0, 10, (40,))
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", callbacks=callbacks, logger=False, profiler=profiler,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    model = Classifier(MLP(hidden=(8,)), functools.partial(torch.optim.SGD, lr=0.1))
    trainer.fit(model, TensorBatches(x, y, 10, shuffle=True), TensorBatches(x, y, 20, False))


def test_implements_tells_overridden_hooks():
    assert implements(Counting(), "on_train_batch_end")
    assert not implements(Counting(), "on_before_backward")
    assert implements(ModelCheckpoint(), "on_train_batch_end")


def test_overridden_hooks_still_run_with_lightnings_bookkeeping():
    use_fast_callback_dispatch()
    counting = Counting()
    fit([counting])
    assert counting.calls.count("batch_end:on_train_batch_end") == 8  # 4 batches x 2 epochs
    assert counting.calls.count("epoch_end") == 2


def test_with_a_profiler_lightnings_own_dispatch_runs(monkeypatch):
    calls = []
    monkeypatch.setattr("goodfit.fast_hooks._lightning_dispatch",
                        lambda *a, **k: calls.append(a[1]))  # fmt: skip

    class Trainer:
        profiler = SimpleProfiler()

    dispatch_callback_hooks(Trainer(), "on_train_start")
    assert calls == ["on_train_start"]


def test_the_default_profiler_is_one_shared_no_op_context():
    from lightning.pytorch.profilers import PassThroughProfiler

    from goodfit.fast_hooks import NoProfiler

    profiler = NoProfiler()
    assert isinstance(profiler, PassThroughProfiler), "so the fast dispatch stays on"
    assert profiler.profile("a") is profiler.profile("b")
    with profiler.profile("a"), profiler.profile("b"):  # nested, as Lightning nests them
        pass
    use_fast_callback_dispatch()
    counting = Counting()
    fit([counting], profiler=profiler)
    assert counting.calls.count("batch_end:on_train_batch_end") == 8


def test_a_profiler_asked_for_replaces_it(synthetic_dir, tmp_path):
    from .conftest import run_train, synthetic_overrides

    result = run_train("debug=fast", "+trainer.profiler=simple", f"hydra.run.dir={tmp_path / 'p'}",
                       *synthetic_overrides(synthetic_dir))  # fmt: skip
    report = result.stdout + result.stderr
    assert "Profiler Report" in report and "run_training_batch" in report
