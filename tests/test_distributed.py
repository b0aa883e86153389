"""Multi-process training with Lightning's real DDP strategy on two CPU processes (gloo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from goodfit.data.batches import TensorBatches
from goodfit.data.fashion_mnist import FashionMNISTDataModule
from goodfit.models import build_network

from .conftest import run_train, synthetic_overrides


def one_process_test_acc(run_dir: Path, data_dir: Path) -> float:
    """The best checkpoint evaluated by hand in this one process, on the same test set."""
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=False)
    net = build_network(checkpoint["goodfit_config"]["model"])
    state = checkpoint["state_dict"]
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    dm = FashionMNISTDataModule(str(data_dir), system_dir=None, download=False)
    dm.load()
    with torch.no_grad():
        predictions = net.eval()(dm.test.images).argmax(1)
    return float((predictions == dm.test.labels).float().mean())


def assert_one_record(run_dir: Path, data_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(list(run_dir.glob("summary.json"))) == 1
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "train_ddp_process_1.log").is_file(), "the second process logs beside"
    assert not list(run_dir.glob("*/summary.json")), "no nested run folders"
    # 600 synthetic training images, 10% for validation: 540 split over 2 processes
    assert summary["n_train"] == 540
    # metrics are synced: the 2-process test figure is the whole test set's
    assert summary["test_acc"] == pytest.approx(one_process_test_acc(run_dir, data_dir), abs=1e-6)
    return summary


def test_ddp_sim_single_run(synthetic_dir, tmp_path):
    run_dir = tmp_path / "ddp"
    with_progress_bar = [o for o in synthetic_overrides(synthetic_dir) if "progress_bar" not in o]
    run_train("trainer=ddp_sim", "trainer.max_epochs=2", f"hydra.run.dir={run_dir}",
              *with_progress_bar)  # fmt: skip
    summary = assert_one_record(run_dir, synthetic_dir)
    assert summary["epochs_run"] == 2


def test_ddp_sim_inside_a_multirun(synthetic_dir, tmp_path):
    sweep = tmp_path / "sweep"
    run_train("-m", "trainer=ddp_sim", "optimizer=sgd,adam", "debug=fast",
              f"hydra.sweep.dir={sweep}", *synthetic_overrides(synthetic_dir))  # fmt: skip
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["optimizer=adam", "optimizer=sgd"], "one folder per job, no child sweeps"
    for job in jobs:
        assert_one_record(sweep / job, synthetic_dir)
    assert not list(tmp_path.glob("**/multirun.yaml"))[1:], "children started no sweep"


def test_shards_are_disjoint_and_cover_the_data():
    x, y = torch.zeros(11, 1, 2, 2), torch.arange(11)
    train = [TensorBatches(x, y, 2, shuffle=True, seed=1, rank=r, world_size=2) for r in (0, 1)]
    seen = [torch.cat([b for _, b in loader]) for loader in train]
    assert len(seen[0]) == len(seen[1]) == 5 and len(train[0]) == len(train[1]) == 3
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    evals = [TensorBatches(x, y, 4, shuffle=False, rank=r, world_size=2) for r in (0, 1)]
    every = sorted(torch.cat([b for loader in evals for _, b in loader]).tolist())
    assert every == list(range(11)), "evaluation sees every sample exactly once"
