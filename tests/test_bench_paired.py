"""The benchmark's plain loop, run whole or in pieces between a real Trainer's batches."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from bench import loop as bench_loop
from bench.compare import paired_ratios
from bench.paired import PairedLoopEpochs
from goodfit.data.batches import TensorBatches


def _data(n: int = 40) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    return (torch.rand(n, 4, 4, generator=generator), torch.arange(n) % 3,
            torch.rand(10, 4, 4, generator=generator), torch.arange(10) % 3)  # fmt: skip


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))


def test_loop_in_pieces_trains_exactly_as_in_one_go():
    whole, pieces = _net(), _net()
    data = _data()
    opt_whole = torch.optim.SGD(whole.parameters(), lr=0.1)
    bench_loop.loop_epoch(whole, opt_whole, data, 6, torch.Generator().manual_seed(3))
    epoch = bench_loop.LoopEpoch(pieces, torch.optim.SGD(pieces.parameters(), lr=0.1), data, 6,
                                 torch.Generator().manual_seed(3))  # fmt: skip
    assert epoch.steps == 7
    epoch.run_steps(2)
    epoch.run_steps(2)  # already taken: nothing more
    epoch.run_steps(5)
    assert epoch.done == 5
    epoch.finish()
    assert epoch.done == 7 and pieces.training
    for a, b in zip(whole.parameters(), pieces.parameters(), strict=True):
        assert torch.equal(a, b)


class _Module(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = _net()

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self.net(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Data(L.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        x, y, vx, vy = _data()
        self.batch_size = 4
        self.train = SimpleNamespace(images=x, labels=y)
        self.val = SimpleNamespace(images=vx, labels=vy)

    def train_dataloader(self):
        return TensorBatches(self.train.images, self.train.labels, self.batch_size, shuffle=True)

    def val_dataloader(self):
        return TensorBatches(self.val.images, self.val.labels, self.batch_size, shuffle=False)


class _RecordingPairs(PairedLoopEpochs):
    """Notes where goodfit stands each time the loop steps: its batch, or the epoch's start."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.where: object = None
        self.taken: list[tuple[object, int]] = []  # (where, loop steps taken)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.where = "epoch start"
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.where = batch_idx
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)


@pytest.mark.parametrize("chunk_steps", [0, 3])
def test_paired_loop_runs_beside_a_real_trainer(chunk_steps, tmp_path, monkeypatch):
    real_run_steps = bench_loop.LoopEpoch.run_steps
    out = tmp_path / "loop.json"
    pairs = _RecordingPairs(str(out), chunk_steps)

    def recording_run_steps(self, until):
        before = self.done
        real_run_steps(self, until)
        if self.done > before:
            pairs.taken.append((pairs.where, self.done - before))

    monkeypatch.setattr(bench_loop.LoopEpoch, "run_steps", recording_run_steps)
    module = _Module()
    start = copy.deepcopy(module.net.state_dict())
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=1, callbacks=[pairs])  # fmt: skip
    trainer.fit(module, datamodule=_Data())

    epochs = json.loads(out.read_text())
    assert len(epochs) == 2 and all(len(epoch) == 4 for epoch in epochs)
    for wall, cpu, wall_inside, cpu_inside in epochs:
        assert 0 < wall_inside <= wall if chunk_steps else wall_inside == 0 == cpu_inside
        assert cpu_inside <= cpu
    # 40 samples in batches of 4: 10 steps an epoch, each taken once, in stretches of 3
    # before goodfit's batches 0, 3, 6 and 9 (interleaved) or all before its epoch.
    expected = [(0, 3), (3, 3), (6, 3), (9, 1)] if chunk_steps else [("epoch start", 10)]
    assert pairs.taken == expected * 2
    assert not torch.equal(start["1.weight"], module.net[1].weight), "goodfit's net trained"


def test_paired_ratios_compare_each_epoch_net_of_the_loop():
    template = {"epoch_seconds": [9.0, 3.0, 3.3], "epoch_cpu_seconds": [9.0, 6.0, 6.0],
                "n_train": 100}  # fmt: skip
    loop = [[5.0, 5.0, 0, 0], [2.0, 4.0, 0, 0], [3.0, 5.0, 0, 0]]
    ratios = paired_ratios(template, loop, batch_size=10)
    assert ratios["paired"] == pytest.approx((1.5 + 1.1) / 2, abs=1e-3)  # warm-up pair left out
    assert ratios["paired CPU"] == pytest.approx((1.5 + 1.2) / 2, abs=1e-3)
    assert ratios["extra CPU µs/step"] == round((2.0 / 10 + 1.0 / 10) / 2 * 1e6)


@pytest.mark.parametrize("chunk_steps", [-1, 2.5, True])
def test_paired_loop_refuses_a_bad_chunk(chunk_steps, tmp_path):
    with pytest.raises(ValueError, match=f"chunk_steps={chunk_steps!r}: must be an integer"):
        PairedLoopEpochs(str(tmp_path / "loop.json"), chunk_steps)
    assert not (tmp_path / "loop.json").exists()
