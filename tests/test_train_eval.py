"""callbacks.train_eval: the training images measured as validation measures its own."""

from __future__ import annotations

import contextlib
import functools
import logging

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from goodfit.callbacks import EpochHistory, TrainSetEvaluation
from goodfit.data.batches import TensorBatches
from goodfit.lit import Classifier
from goodfit.models import MLP


class _SplitData(L.LightningDataModule):
    """Training and validation splits held in memory, as goodfit's datamodules hold them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        from goodfit.data.contract import Split

        super().__init__()
        self.train, self.val = Split(x, y), Split(x[:20], y[:20])
        self.class_names = list("0123456789")

    def train_dataloader(self) -> TensorBatches:
        return TensorBatches(self.train.images, self.train.labels, 4, shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        return TensorBatches(self.val.images, self.val.labels, 20, shuffle=False)


def _fit_with(
    callbacks: list, x: torch.Tensor, y: torch.Tensor, precision: str = "32-true",
    module: type[Classifier] = Classifier,
) -> Classifier:  # fmt: skip
    L.seed_everything(0, verbose=False)
    model = module(MLP(hidden=(16,), dropout=0.5), functools.partial(torch.optim.SGD, lr=0.1),
                   class_names=list("0123456789"))  # fmt: skip
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=1,
        enable_progress_bar=False, precision=precision,
    )  # fmt: skip
    trainer.fit(model, datamodule=_SplitData(x, y))
    return model


def test_train_eval_measures_the_training_images_as_validation_measures_its_own():
    """train_eval/loss and train_eval/acc are the eval-mode figures of the validated weights on
    a fixed sample of training images (not the epoch mean with dropout on), and measuring them
    changes nothing in the training: the same seed gives the same weights without it."""
    generator = torch.Generator().manual_seed(1)
    x, y = (
        torch.rand(40, 1, 28, 28, generator=generator),
        torch.randint(0, 10, (40,), generator=generator),
    )
    history = EpochHistory()
    model = _fit_with([TrainSetEvaluation(n_images=30, batch_size=7, seed=3), history], x, y)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3))[:30]
    model.eval()
    with torch.no_grad():
        logits = model(x[order])
    row = history.history[-1]
    assert row["train_eval_loss"] == pytest.approx(float(F.cross_entropy(logits, y[order])))
    assert row["train_eval_acc"] == pytest.approx(
        float((logits.argmax(1) == y[order]).float().mean())
    )
    assert row["train_eval_loss"] != pytest.approx(row["train_loss"], rel=1e-3)
    assert all(h["train_eval_loss"] is not None for h in history.history)
    without = _fit_with([EpochHistory()], x, y)
    for (name, a), (_, b) in zip(
        model.state_dict().items(), without.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    ("precision", "by_hand"),
    [
        ("bf16-true", lambda images: (images.bfloat16(), contextlib.nullcontext())),
        ("bf16-mixed", lambda images: (images, torch.autocast("cpu", dtype=torch.bfloat16))),
    ],
)
def test_train_eval_runs_in_the_precision_of_the_run(precision, by_hand):
    """In reduced precision the training images are evaluated as validation evaluates its own:
    converted as Lightning converts batches (bf16-true: bfloat16 images for bfloat16 weights,
    which float32 images would not multiply) and under the same autocast (bf16-mixed)."""
    generator = torch.Generator().manual_seed(1)
    x, y = (
        torch.rand(40, 1, 28, 28, generator=generator),
        torch.randint(0, 10, (40,), generator=generator),
    )
    history = EpochHistory()
    model = _fit_with([TrainSetEvaluation(n_images=30, batch_size=7, seed=3), history], x, y,
                      precision=precision)  # fmt: skip
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3))[:30]
    model.eval()
    loss_sum = correct = 0.0
    for start in range(0, 30, 7):
        images, context = by_hand(x[order][start : start + 7])
        labels = y[order][start : start + 7]
        with torch.no_grad(), context:
            logits = model(images)
        loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        correct += float((logits.argmax(1) == labels).sum())
    row = history.history[-1]
    assert row["train_eval_loss"] == pytest.approx(loss_sum / 30, rel=1e-6)
    assert row["train_eval_acc"] == pytest.approx(correct / 30)


class _Features(Classifier):
    """A module of one's own whose forward gives features, not class scores."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.layers[:-1](x)  # the last hidden layer's


class _Named(Classifier):
    """A module of one's own whose forward gives a dict."""

    def forward(self, x: torch.Tensor) -> dict:
        return {"logits": self.net(x)}


@pytest.mark.parametrize(
    ("module", "said"),
    [
        (_Features, "_Features.forward returned a torch.float32 tensor of shape (7, 16), "
                    "not (7, 10) class scores"),
        (_Named, "_Named.forward returned a dict, not (7, 10) class scores"),
    ],
)  # fmt: skip
def test_a_forward_that_gives_no_class_scores_is_said_and_left_unmeasured(module, said, caplog):
    """A module whose forward answers with something else than one row of class scores per
    image trains to its end: the figures are not measured (no cross-entropy of features, no
    crash after the first epoch), and the log says why, once."""
    generator = torch.Generator().manual_seed(1)
    x, y = (
        torch.rand(40, 1, 28, 28, generator=generator),
        torch.randint(0, 10, (40,), generator=generator),
    )
    history = EpochHistory()
    with caplog.at_level(logging.INFO, logger="goodfit.callbacks.train_eval"):
        _fit_with([TrainSetEvaluation(n_images=30, batch_size=7), history], x, y, module=module)
    assert len(history.history) == 2
    assert all(h.get("train_eval_loss") is None for h in history.history)
    said_by_it = [r for r in caplog.records if r.name == "goodfit.callbacks.train_eval"]
    assert [r.getMessage() for r in said_by_it] == [
        f"callbacks.train_eval: {said}; the training figures are not measured as validation's"
    ]


class _OneProcessOf:
    """The trainer as one DDP process sees it, for the callback's hook: its rank among
    `world_size`, and a strategy whose `reduce` records what it was given and returns it."""

    def __init__(self, datamodule: L.LightningDataModule, world_size: int, rank: int) -> None:
        from lightning.pytorch.plugins.precision import Precision
        from lightning.pytorch.trainer.states import TrainerFn

        self.datamodule, self.world_size, self.global_rank = datamodule, world_size, rank
        self.sanity_checking, self.precision_plugin = False, Precision()
        self.state = type("State", (), {"fn": TrainerFn.FITTING})()
        self.strategy, self.reduced = self, []

    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        self.reduced.append((tensor.clone(), reduce_op))
        return tensor


def _validated_on(world_size: int, rank: int, n_images: int) -> tuple[dict, list, int]:
    """What one process's callbacks.train_eval logs, hands to the strategy to sum, and feeds
    the network, after a validation."""
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(40, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (40,), generator=generator)
    torch.manual_seed(0)
    model = Classifier(MLP(hidden=(16,)), class_names=list("0123456789"))
    trainer, logged, fed = _OneProcessOf(_SplitData(x, y), world_size, rank), {}, []
    model.log_dict = lambda values, **kwargs: logged.update(values)
    model.net.register_forward_hook(lambda net, args, out: fed.append(len(args[0])))
    TrainSetEvaluation(n_images=n_images, batch_size=7, seed=3).on_validation_epoch_end(
        trainer, model
    )
    return {k: float(v) for k, v in logged.items()}, trainer.reduced, sum(fed)


def test_each_ddp_process_measures_its_share_and_the_sums_make_the_whole():
    """With two processes each evaluates every other image of the sample (15 of 30) and hands
    its sums to the strategy to add up; added, they give the one-process figures."""
    alone, reduced_alone, fed_alone = _validated_on(1, 0, n_images=30)
    assert (reduced_alone, fed_alone) == ([], 30)
    shares = [_validated_on(2, rank, n_images=30) for rank in (0, 1)]
    assert [fed for _, _, fed in shares] == [15, 15]
    assert all([op for _, op in reduced] == ["sum"] for _, reduced, _ in shares)
    loss_sum, correct, count = sum(reduced[0][0] for _, reduced, _ in shares).tolist()
    assert count == 30
    assert loss_sum / count == pytest.approx(alone["train_eval/loss"], rel=1e-6)
    assert correct / count == pytest.approx(alone["train_eval/acc"])


def test_a_sample_smaller_than_the_processes_is_measured_whole_by_each():
    """One image for two processes: no share would be left for the second, so each measures
    the whole sample and nothing is summed."""
    alone, _, _ = _validated_on(1, 0, n_images=1)
    for rank in (0, 1):
        logged, reduced, fed = _validated_on(2, rank, n_images=1)
        assert (reduced, fed, logged) == ([], 1, alone)
