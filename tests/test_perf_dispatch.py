"""perf.fast_dispatch calls exactly the callbacks Lightning would (instance hooks too), minus
empty hooks, for one run only: before and after, Lightning's own dispatcher is in place."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, LambdaCallback, ModelCheckpoint
from lightning.pytorch.profilers import SimpleProfiler
from lightning.pytorch.trainer import call

from goodfit.data.batches import TensorBatches
from goodfit.lit import Classifier
from goodfit.models import MLP
from goodfit.perf.dispatch import Dispatcher, fast_callback_dispatch, implements
from goodfit.runtime.profiler import NoProfiler


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
    model = Classifier(MLP(hidden=(8,)), functools.partial(torch.optim.SGD, lr=0.1),
                       class_names=list("0123456789"))  # fmt: skip
    trainer.fit(model, TensorBatches(x, y, 10, shuffle=True), TensorBatches(x, y, 20, False))


def lambda_counts() -> tuple[LambdaCallback, list[int]]:
    """A LambdaCallback: its hook is set on the instance, not the class."""
    seen: list[int] = []
    return LambdaCallback(on_train_batch_end=lambda *args: seen.append(args[-1])), seen


def test_implements_tells_overridden_and_instance_hooks():
    assert implements(Counting(), "on_train_batch_end")
    assert not implements(Counting(), "on_before_backward")
    assert implements(ModelCheckpoint(), "on_train_batch_end")
    callback, _ = lambda_counts()
    assert implements(callback, "on_train_batch_end")
    assert not implements(callback, "on_train_epoch_end")


def test_fast_dispatch_calls_what_lightning_calls():
    plain, plain_seen = lambda_counts()
    plain_counting = Counting()
    fit([plain, plain_counting])
    fast, fast_seen = lambda_counts()
    fast_counting = Counting()
    with fast_callback_dispatch():
        fit([fast, fast_counting])
    assert plain_seen == fast_seen == [0, 1, 2, 3] * 2  # 4 batches x 2 epochs
    assert fast_counting.calls == plain_counting.calls
    assert fast_counting.calls.count("batch_end:on_train_batch_end") == 8


def test_lightnings_dispatcher_is_back_after_the_run_error_or_not():
    original = call._call_callback_hooks
    assert not isinstance(original, Dispatcher)
    with fast_callback_dispatch() as dispatcher:
        assert call._call_callback_hooks is dispatcher
        fit([Counting()])
        assert dispatcher.cache
    assert call._call_callback_hooks is original and not dispatcher.cache
    with pytest.raises(RuntimeError, match="boom"), fast_callback_dispatch():
        raise RuntimeError("boom")
    assert call._call_callback_hooks is original
    callback, seen = lambda_counts()
    fit([callback])  # a later Trainer in the same process: Lightning's dispatch, all hooks
    assert len(seen) == 8


def test_with_a_profiler_lightnings_own_dispatch_runs():
    calls = []

    class Trainer:
        profiler = SimpleProfiler()

    Dispatcher(lambda *a, **k: calls.append(a[1]))(Trainer(), "on_train_start")
    assert calls == ["on_train_start"]


def test_the_no_op_profiler_is_one_shared_context():
    from lightning.pytorch.profilers import PassThroughProfiler

    profiler = NoProfiler()
    assert isinstance(profiler, PassThroughProfiler), "so the fast dispatch stays on"
    assert profiler.profile("a") is profiler.profile("b")
    with profiler.profile("a"), profiler.profile("b"):  # nested, as Lightning nests them
        pass
    counting = Counting()
    with fast_callback_dispatch():
        fit([counting], profiler=profiler)
    assert counting.calls.count("batch_end:on_train_batch_end") == 8


def test_a_profiler_asked_for_replaces_it(synthetic_dir, tmp_path):
    from .conftest import run_train, synthetic_overrides

    result = run_train("debug=fast", "+trainer.profiler=simple", f"hydra.run.dir={tmp_path / 'p'}",
                       *synthetic_overrides(synthetic_dir))  # fmt: skip
    report = result.stdout + result.stderr
    assert "Profiler Report" in report and "run_training_batch" in report
