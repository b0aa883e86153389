"""Multi-process training with Lightning's real DDP strategy on two CPU processes (gloo)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from goodfit.data.batches import TensorBatches
from goodfit.data.fashion_mnist import FashionMNISTDataModule
from goodfit.models import build_network

from .conftest import ROOT, run_train, synthetic_overrides


def checkpoint_net(path: Path) -> torch.nn.Module:
    """The network a goodfit checkpoint holds, rebuilt from its config."""
    checkpoint = torch.load(path, weights_only=False)
    net = build_network(checkpoint["goodfit_config"]["model"])
    state = checkpoint["state_dict"]
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    return net


def one_process_test_acc(run_dir: Path, data_dir: Path) -> float:
    """The best checkpoint evaluated by hand in this one process, on the same test set."""
    net = checkpoint_net(run_dir / "checkpoints" / "best.ckpt")
    dm = FashionMNISTDataModule(str(data_dir), system_dir=None, download=False)
    dm.load()
    with torch.no_grad():
        predictions = net.eval()(dm.test.images).argmax(1)
    return float((predictions == dm.test.labels).float().mean())


def one_process_train_eval(run_dir: Path, data_dir: Path) -> tuple[float, float]:
    """callbacks.train_eval's figures for the last checkpoint's weights, measured by hand in this
    one process: its default sample (seed 0, as many training images as validation holds)."""
    net = checkpoint_net(run_dir / "checkpoints" / "last.ckpt")
    # the run's own split (the config's random split, not the class's default tail split)
    dm = FashionMNISTDataModule(str(data_dir), system_dir=None, download=False, seed=42,
                                val_split_mode="random")  # fmt: skip
    dm.load()
    order = torch.randperm(len(dm.train.labels), generator=torch.Generator().manual_seed(0))
    order = order[: len(dm.val.labels)]
    with torch.no_grad():
        logits = net.eval()(dm.train.images[order])
    labels = dm.train.labels[order]
    return float(F.cross_entropy(logits, labels)), float(
        (logits.argmax(1) == labels).float().mean()
    )


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
    # each process measured its share of train_eval's sample: summed, the whole sample's figures
    last = summary["history"][-1]
    loss, acc = one_process_train_eval(run_dir, data_dir)
    assert last["train_eval_loss"] == pytest.approx(loss, rel=1e-5)
    assert last["train_eval_acc"] == pytest.approx(acc, abs=1e-6)
    return summary


@pytest.mark.slow
def test_two_ddp_runs_in_one_process(synthetic_dir, tmp_path):
    """Two DDP jobs of one multirun: each starts its own process group (the first one's ends
    with it), and each leaves one record."""
    sweep = tmp_path / "ddp"
    with_progress_bar = [o for o in synthetic_overrides(synthetic_dir) if "progress_bar" not in o]
    run_train("-m", "trainer=ddp_sim", "optimizer=sgd,adam", "trainer.max_epochs=2",
              f"hydra.sweep.dir={sweep}", *with_progress_bar)  # fmt: skip
    for job in ("optimizer=sgd", "optimizer=adam"):
        summary = assert_one_record(sweep / job, synthetic_dir)
        assert summary["epochs_run"] == 2


def relaunch_problems(sweep: Path, output: str) -> list[str]:
    """What goes wrong in `-m trainer=cpu,ddp_sim` when DDP's second process re-runs the
    command line (the whole sweep) instead of its own job alone."""
    problems = []
    cpu, ddp = sweep / "trainer=cpu", sweep / "trainer=ddp_sim"
    if sorted(p.name for p in cpu.glob("*.log")) != ["train.log"]:
        problems.append(f"job 0's folder got another process's log: {sorted(cpu.glob('*.log'))}")
    if sorted(p.name for p in (cpu / "checkpoints").glob("*.ckpt")) != ["best.ckpt", "last.ckpt"]:
        problems.append(f"job 0 was trained again: {sorted((cpu / 'checkpoints').iterdir())}")
    child_log = ddp / "train_ddp_process_1.log"
    child = child_log.read_text() if child_log.is_file() else ""
    if "overrides: trainer=ddp_sim" not in child or "trainer=cpu" in child:
        problems.append("the second process did not run job 1 alone")
    if output.count("Launching 2 jobs") != 1:
        problems.append("the second process started a sweep of its own")
    return problems


def ddp_multirun(script: Path, sweep: Path, data_dir: Path) -> str:
    result = run_train("-m", "trainer=cpu,ddp_sim", "debug=fast", f"hydra.sweep.dir={sweep}",
                       *synthetic_overrides(data_dir), script=script)  # fmt: skip
    return result.stdout + result.stderr


@pytest.mark.slow
def test_ddp_inside_a_multirun_relaunches_its_own_job_alone(synthetic_dir, tmp_path):
    output = ddp_multirun(ROOT / "train.py", tmp_path / "sweep", synthetic_dir)
    assert relaunch_problems(tmp_path / "sweep", output) == []
    assert_one_record(tmp_path / "sweep" / "trainer=ddp_sim", synthetic_dir)
    # the console shows each job's start once; the second process says it in its own file
    assert output.count("Run folder ") == 2
    child_log = tmp_path / "sweep" / "trainer=ddp_sim" / "train_ddp_process_1.log"
    assert "Run folder " in child_log.read_text()
    # The same checks catch Lightning's own relaunch (goodfit's made a no-op).
    noop = ROOT / "tests" / "noop_relaunch_train.py"
    output = ddp_multirun(noop, tmp_path / "noop", synthetic_dir)
    assert relaunch_problems(tmp_path / "noop", output), "the checks must see the difference"


def test_a_child_process_composes_from_the_same_config_folders(monkeypatch, tmp_path):
    """The relaunched process gets the job's --config-path/--config-dir/--config-name, its
    overrides as typed and its own Hydra overrides (a user's hydra.searchpath), but nothing of
    the sweep it ran in."""
    from omegaconf import OmegaConf

    from goodfit.hydra_ext import relaunch

    def source(path: str, schema: str, provider: str) -> dict:
        return {"path": path, "schema": schema, "provider": provider}

    cfg = OmegaConf.create({
        "runtime": {"cwd": str(tmp_path), "output_dir": str(tmp_path / "sweep" / "0"),
                    "config_sources": [source("hydra.conf", "pkg", "hydra"),
                                       source(str(tmp_path / "conf"), "file", "main"),
                                       source(str(tmp_path / "mine"), "file", "command-line")]},
        "job": {"config_name": "train"},
        "overrides": {
            "task": ["module=mine", "+hparams_search=optuna", "seed=3",
                     "model.in_features=${data:in_features}"],
            "hydra": ["hydra.searchpath=[file:///my/conf]", "hydra.mode=MULTIRUN",
                      "hydra/launcher=joblib", "hydra.sweeper.n_trials=3",
                      "hydra.run.dir=elsewhere", "hydra.job.chdir=false"],
        },
    })  # fmt: skip
    monkeypatch.setattr(relaunch, "hydra_cfg", lambda: cfg)
    command, cwd = relaunch.child_command(1)
    args = command[2:]
    assert cwd == str(tmp_path)
    assert args[:3] == ["--config-name=train", f"--config-path={tmp_path / 'conf'}",
                        f"--config-dir={tmp_path / 'mine'}"]  # fmt: skip
    assert "module=mine" in args and "seed=3" in args
    # as typed: the child resolves it once its data is loaded (reading it here failed)
    assert "model.in_features=${data:in_features}" in args
    assert "hydra.searchpath=[file:///my/conf]" in args and "hydra/launcher=joblib" in args
    assert "hydra.job.chdir=false" in args
    for dropped in ("+hparams_search=optuna", "hydra.mode=MULTIRUN", "hydra.sweeper.n_trials=3",
                    "hydra.run.dir=elsewhere"):  # fmt: skip
        assert dropped not in args
    assert f'hydra.run.dir="{tmp_path / "sweep" / "0"}"' in args and "hydra.mode=RUN" in args


@pytest.mark.slow
def test_ddp_finds_a_users_config_folders(synthetic_dir, tmp_path):
    """A module config found through hydra.searchpath and a model config found through
    --config-dir reach DDP's second process too (it composed without them and failed)."""
    (tmp_path / "search" / "module").mkdir(parents=True)
    (tmp_path / "search" / "module" / "mine.yaml").write_text(
        (ROOT / "conf" / "module" / "classifier.yaml").read_text()
    )
    (tmp_path / "dir" / "model").mkdir(parents=True)
    (tmp_path / "dir" / "model" / "narrow.yaml").write_text(
        "defaults:\n  - mlp_good\n  - _self_\nhidden: [16]\n"
    )
    run_dir = tmp_path / "run"
    run_train("--config-dir", str(tmp_path / "dir"), f"hydra.searchpath=[file://{tmp_path}/search]",
              "module=mine", "model=narrow", "trainer=ddp_sim", "debug=fast",
              f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir))  # fmt: skip
    child = (run_dir / "train_ddp_process_1.log").read_text()
    assert "overrides: module=mine model=narrow" in child
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["params_total"] == 784 * 16 + 16 + 16 * 10 + 10


@pytest.mark.parametrize(("rank", "console_level"), [("0", logging.INFO), ("1", logging.ERROR)])
def test_other_processes_say_only_errors_on_the_console(monkeypatch, tmp_path, rank, console_level):
    from goodfit.runtime.distributed import quiet_console_of_other_processes

    monkeypatch.setenv("LOCAL_RANK", rank)
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(logging.INFO)
    file = logging.FileHandler(tmp_path / "train_ddp_process_1.log")
    file.setLevel(logging.INFO)
    root = logging.getLogger()
    for handler in (console, file):
        root.addHandler(handler)
    try:
        quiet_console_of_other_processes()
    finally:
        for handler in (console, file):
            root.removeHandler(handler)
        file.close()
    assert (console.level, file.level) == (console_level, logging.INFO)


def test_a_moved_launcher_function_fails_loudly(monkeypatch):
    from goodfit.hydra_ext import relaunch
    from goodfit.runtime.errors import ConfigError

    monkeypatch.setattr(relaunch, "COMMAND_FUNCTION", "_renamed_in_a_later_release")
    with pytest.raises(ConfigError, match=r"Lightning 2\.6\.\d+ has no .*_renamed_in_a_later"):
        relaunch._launcher_module()


def test_shards_are_disjoint_and_cover_the_data():
    x, y = torch.zeros(11, 1, 2, 2), torch.arange(11)
    train = [TensorBatches(x, y, 2, shuffle=True, seed=1, rank=r, world_size=2) for r in (0, 1)]
    seen = [torch.cat([b for _, b in loader]) for loader in train]
    assert len(seen[0]) == len(seen[1]) == 5 and len(train[0]) == len(train[1]) == 3
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    evals = [TensorBatches(x, y, 4, shuffle=False, rank=r, world_size=2) for r in (0, 1)]
    every = sorted(torch.cat([b for loader in evals for _, b in loader]).tolist())
    assert every == list(range(11)), "evaluation sees every sample exactly once"
