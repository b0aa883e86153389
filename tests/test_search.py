"""hparams_search=optuna: goodfit's Optuna sweeper through train.py, as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT, run_train, synthetic_overrides

optuna = pytest.importorskip("optuna", reason="the sweeps extra: pip install -e .[sweeps]")


def search_args(sweep, synthetic_dir, *extra: str) -> list[str]:
    return ["hparams_search=optuna", "debug=fast", f"hydra.sweep.dir={sweep}", *extra,
            *synthetic_overrides(synthetic_dir)]  # fmt: skip


def load_study(sweep, storage: str | None = None):
    from goodfit.hydra_ext.optuna_study import open_storage

    return optuna.load_study(study_name="goodfit", storage=open_storage(storage, sweep))


def rows(sweep) -> list[dict[str, str]]:
    with open(sweep / "summary.csv") as f:
        return list(csv.DictReader(f))


def trial_folders(sweep) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.startswith("trial"))


@pytest.mark.slow
def test_search_is_seeded_and_continues_in_its_folder(synthetic_dir, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    output = run_train(*search_args(first, synthetic_dir, "hydra.sweeper.n_trials=4"))
    # the same seed, another storage (any Optuna storage URL): the same four trials
    db = f"sqlite:///{tmp_path / 'second.db'}"
    run_train(*search_args(second, synthetic_dir, "hydra.sweeper.n_trials=4",
                           f"hydra.sweeper.storage={db}"))  # fmt: skip
    trials = [t.params for t in load_study(first).trials]
    assert len(trials) == 4 and len({json.dumps(t, sort_keys=True) for t in trials}) == 4
    assert [t.params for t in load_study(second, db).trials] == trials
    assert (first / "optuna-journal.log").is_file()
    assert [f.split("-", 1)[0] for f in trial_folders(first)] == [f"trial{n}" for n in range(4)]
    results = (first / "optimization_results.yaml").read_text()
    best = max(float(row["best_val_acc"]) for row in rows(first))
    assert "best_params" in results and f"best_value: {best}"[:18] in results
    assert f"optuna-dashboard {first / 'optuna-journal.log'}" in results
    # the best trial's values as overrides to copy onto a command line
    from hydra_plugins.goodfit_optuna.search_space import as_overrides

    best_trial = load_study(first).best_trial
    assert (
        f"Best trial {best_trial.number}: {best_trial.value:.4g} with "
        + " ".join(as_overrides(best_trial.params))
    ) in output.stdout + output.stderr

    # the same command with more trials: the study goes on, its stored trials are not repeated
    run_train(*search_args(first, synthetic_dir, "hydra.sweeper.n_trials=6"))
    study = load_study(first)
    assert [t.number for t in study.trials] == list(range(6))
    assert [t.params for t in study.trials[:4]] == trials  # the first four untouched
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert [f.split("-", 1)[0] for f in trial_folders(first)] == [f"trial{n}" for n in range(6)]
    assert len(rows(first)) == 6, "each trial keeps its row and its own folder"


@pytest.mark.slow
def test_two_workers_share_one_study(synthetic_dir, tmp_path):
    sweep = tmp_path / "shared"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(ROOT / "train.py"),
               *search_args(sweep, synthetic_dir, "hydra.sweeper.n_trials=4")]  # fmt: skip
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT) for _ in range(2)]  # fmt: skip
    outputs = [w.communicate(timeout=600)[0].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    study = load_study(sweep)
    assert [t.number for t in study.trials] == [0, 1, 2, 3], "n_trials in all, not per worker"
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    lines = [line for out in outputs for line in out.splitlines()]
    asked = [line.split("] Trial ", 1)[1].split(":", 1)[0] for line in lines
             if "] Trial " in line and "optimizer=" in line]  # fmt: skip
    assert sorted(asked) == ["0", "1", "2", "3"], "each trial ran once, by one of the workers"
    assert all("Trial " in out and "optimizer=" in out for out in outputs), "both worked"
    assert len(trial_folders(sweep)) == 4 and len(rows(sweep)) == 4


@pytest.mark.slow
def test_n_jobs_trials_at_a_time_through_the_launcher(synthetic_dir, tmp_path):
    sweep = tmp_path / "parallel"
    run_train(*search_args(sweep, synthetic_dir, "hydra/launcher=joblib",
                           "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
                           "hydra.sweeper.n_trials=3"))  # fmt: skip
    study = load_study(sweep)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert [f.split("-", 1)[0] for f in trial_folders(sweep)] == ["trial0", "trial1", "trial2"]
    assert [row["status"] for row in rows(sweep)] == ["completed"] * 3


@pytest.mark.slow
def test_pruned_trial_is_marked_pruned_and_the_search_goes_on(synthetic_dir, tmp_path):
    sweep = tmp_path / "pruned"
    # a pruner set to prune: any val/acc is below 2
    run_train(*search_args(sweep, synthetic_dir, "hydra.sweeper.n_trials=2",
                           "trainer.max_epochs=3", "trainer.limit_train_batches=2",
                           "hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, "
                           "lower: 2.0}"))  # fmt: skip
    study = load_study(sweep)
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"], "the search went on"
    assert [list(t.intermediate_values) for t in study.trials] == [[1], [1]]
    for folder in trial_folders(sweep):
        summary = json.loads((sweep / folder / "summary.json").read_text())
        assert summary["status"] == "pruned" and summary["pruned_at_epoch"] == 1
        assert summary["epochs_run"] == 1 and summary["test_acc"] is not None  # record kept
    assert [row["status"] for row in rows(sweep)] == ["pruned", "pruned"]
    assert "| pruned |" in (sweep / "summary.md").read_text()
    assert "pruned: 2" in (sweep / "optimization_results.yaml").read_text()


@pytest.mark.slow
def test_a_median_pruner_reports_every_epoch_and_a_trial_resumes_alone(synthetic_dir, tmp_path):
    sweep = tmp_path / "median"
    run_train(*search_args(sweep, synthetic_dir, "hydra.sweeper.n_trials=1",
                           "trainer.max_epochs=2", "trainer.limit_train_batches=2",
                           "hydra.sweeper.pruner=median"))  # fmt: skip
    [trial] = load_study(sweep).trials
    assert trial.state.name == "COMPLETE" and sorted(trial.intermediate_values) == [1, 2]
    # the value told to the study is the best of the val/acc reported each epoch
    assert trial.value == pytest.approx(max(trial.intermediate_values.values()))

    # a trial's folder can be resumed like any run; it trains on outside the search
    [folder] = trial_folders(sweep)
    run_train(f"resume='{sweep / folder}'", "trainer.max_epochs=3")  # quoted: = and , in it
    assert json.loads((sweep / folder / "summary.json").read_text())["epochs_run"] == 3
    assert len(load_study(sweep).trials) == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hydra.sweeper.n_jobs=2", "hydra.sweeper.n_jobs=2 runs trials at the same time"),
        ("hydra.sweeper.pruner=sometimes", "hydra.sweeper.pruner='sometimes' is not allowed"),
        ("hydra.sweeper.direction=up", "hydra.sweeper.direction='up'"),
        (
            "hydra.sweeper.direction=minimize",
            "hydra.sweeper.direction='minimize': each trial "
            "returns its best val/acc, which the search must maximize",
        ),
        (
            "callbacks.optuna_pruning.monitor=val/loss",
            "callbacks.optuna_pruning.monitor=val/loss: "
            "the pruner ranks each epoch's value as the study ranks val/acc",
        ),
        ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0"),
        # a key the run's model lacks: every trial would fail composing its config
        (
            "model.width=interval(1,4)",
            "model.width: not a key of this run's config (model=mlp_good has none)",
        ),
    ],
)
def test_bad_search_settings_are_refused_before_any_trial(synthetic_dir, tmp_path, override,
                                                          message):  # fmt: skip
    sweep = tmp_path / "refused"
    result = run_train(*search_args(sweep, synthetic_dir, override), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert message in output and "Traceback" not in output
    assert not list(sweep.glob("trial*")), "no trial ran"


def test_search_space_from_hydra_sweep_syntax():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.goodfit_optuna.search_space import as_overrides, parse_search_space

    params = {"optimizer": "choice(sgd, adam)", "optimizer.lr": "tag(log, interval(1e-4, 0.1))",
              "model.dropout": "interval(0.0, 0.5)", "datamodule.batch_size": "range(32, 129, 32)",
              "trainer.max_epochs": "int(interval(1, 5))", "seed": 3}  # fmt: skip
    space, fixed = parse_search_space(params, ["model.dropout=0.1", "debug=fast"])
    assert space == {
        "optimizer": CategoricalDistribution(["sgd", "adam"]),
        "optimizer.lr": FloatDistribution(1e-4, 0.1, log=True),
        "datamodule.batch_size": IntDistribution(32, 128, step=32),
        "trainer.max_epochs": IntDistribution(1, 5),
    }
    assert fixed == ["seed=3", "model.dropout=0.1", "debug=fast"]  # the command line wins
    assert as_overrides({"optimizer": "sgd", "optimizer.lr": 1e-05, "name": "a b"}) == [
        "optimizer=sgd", "optimizer.lr=1e-05", "name=a\\ b"]  # fmt: skip


def test_sweeps_extra_needs_no_old_sqlalchemy():
    """`pip install -e .[sweeps]` asks for a current Optuna and pins no database library."""
    from importlib.metadata import version

    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    sweeps = (ROOT / "pyproject.toml").read_text().split("sweeps = [", 1)[1].split("]", 1)[0]
    assert '"optuna>=4,<6"' in sweeps
    for pinned in ("sqlalchemy", "alembic", "hydra-optuna-sweeper"):
        assert pinned not in sweeps.lower()
    assert int(version("optuna").split(".")[0]) >= 4
    assert int(version("sqlalchemy").split(".")[0]) >= 2  # what Optuna brings along
    names = {cls.__name__ for cls in Plugins.instance().discover(Sweeper)}
    assert "GoodfitOptunaSweeper" in names, "the plugin is installed with goodfit"


def test_bad_pruning_monitor_refused(compose):
    from goodfit.hydra_ext.checks import validate
    from goodfit.runtime.errors import ConfigError

    cfg = compose("hparams_search=optuna", "callbacks.optuna_pruning.monitor=''")
    with pytest.raises(ConfigError, match="callbacks.optuna_pruning.monitor='' is not allowed"):
        validate(cfg)


def test_trials_left_running_count_until_failed_on_request(synthetic_dir, tmp_path):
    from goodfit.hydra_ext.optuna_study import open_storage

    sweep = tmp_path / "stale"
    study = optuna.create_study(study_name="goodfit", storage=open_storage(None, sweep),
                                direction="maximize")  # fmt: skip
    study.ask()  # a worker killed outright leaves its trial running
    run_train(*search_args(sweep, synthetic_dir, "hydra.sweeper.n_trials=1"))
    assert not trial_folders(sweep), "the running trial counts: the study is full"
    run_train(*search_args(sweep, synthetic_dir, "hydra.sweeper.n_trials=1",
                           "hydra.sweeper.fail_stale_trials=true"))  # fmt: skip
    assert [t.state.name for t in load_study(sweep).trials] == ["FAIL", "COMPLETE"]
    assert [f.split("-", 1)[0] for f in trial_folders(sweep)] == ["trial1"]
