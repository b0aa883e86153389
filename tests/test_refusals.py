"""Bad input is refused before any work: the key or file named, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from goodfit.hydra_ext.key_hints import choice_hints, quoting_hints, unknown_key_hints

from .conftest import ROOT, run_train, synthetic_overrides


def assert_refused_without_record(result, run_dir: Path, *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    for text in expected:
        assert text in output
    assert not (run_dir / "checkpoints").exists()
    assert not list(run_dir.glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 is not allowed: must be a finite number > 0"),
        pytest.param(
            "optimizer.lr=inf",
            "optimizer.lr=inf is not allowed: must be a finite number > 0",
            marks=pytest.mark.slow,
        ),
        ("datamodule.batch_size=1000", "batch_size=1000 is larger than the 564 training"),
        pytest.param(
            "datamodule.batch_size=0",
            "datamodule.batch_size=0 is not allowed: must be an integer",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "trainer.max_epochs=-3",
            "trainer.max_epochs=-3 is not allowed: must be an integer >= 1",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_bad_value_refused(synthetic_dir, tmp_path, override, expected):
    run_dir = tmp_path / "run"
    result = run_train(
        "experiment=good", override, f"hydra.run.dir={run_dir}",
        *synthetic_overrides(synthetic_dir), check=False,
    )  # fmt: skip
    assert_refused_without_record(result, run_dir, expected)


@pytest.mark.parametrize("multirun", [False, True])
def test_hydra_chdir_is_refused_before_any_folder_is_made(tmp_path, multirun):
    """With Hydra's chdir into the run folder, a relative datamodule.data_dir or resume= would
    point inside it: refused at once, single run or sweep, creating nothing."""
    folder = tmp_path / "run"
    where = ["-m", "seed=1,2", f"hydra.sweep.dir={folder}"] if multirun else [
        f"hydra.run.dir={folder}"]  # fmt: skip
    result = run_train(*where, "hydra.job.chdir=true", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output, output[-2000:]
    assert "hydra.job.chdir=true: goodfit reads relative paths" in output
    assert not folder.exists()


def test_a_data_dir_that_does_not_exist_is_not_replaced_by_the_system_copy(synthetic_dir,
                                                                           tmp_path):  # fmt: skip
    """A misspelt datamodule.data_dir used to train quietly on the system's copy (searched
    next); now it is named before any work. Without a system copy the search says where it
    looked, as before."""
    missing = tmp_path / "fashoin"
    common = [*synthetic_overrides(synthetic_dir), f"datamodule.data_dir={missing}", "debug=fast"]
    result = run_train(*common, f"datamodule.system_dir={synthetic_dir}",
                       f"hydra.run.dir={tmp_path / 'run'}", check=False)  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "Traceback" not in output, output[-2000:]
    assert (
        f"datamodule.data_dir={missing}: no such folder. Give the folder that holds the data, "
        f"or leave datamodule.data_dir out to read the copy in {synthetic_dir}"
    ) in output
    assert not (tmp_path / "run" / "checkpoints").exists()
    result = run_train(*common, f"hydra.run.dir={tmp_path / 'run2'}", check=False)
    assert result.returncode == 2 and "Fashion-MNIST not found. Looked in:" in result.stdout


def test_truncated_data_file_refused_with_its_name(synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    damaged = data / "train-images-idx3-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:-500])
    run_dir = tmp_path / "run"
    result = run_train(
        "experiment=good", f"hydra.run.dir={run_dir}", *synthetic_overrides(data), check=False
    )
    assert_refused_without_record(result, run_dir, str(damaged))


def test_misspelled_key_gets_the_nearest_name(tmp_path):
    result = run_train("trainer.max_epoch=3", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert result.returncode != 0
    assert "did you mean trainer.max_epochs?" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_misspelled_key_of_an_experiment(tmp_path):
    result = run_train(
        "experiment=bad", "optimizer.alpah=0.5", f"hydra.run.dir={tmp_path / 'run'}", check=False
    )
    assert result.returncode != 0
    assert "did you mean optimizer.alpha?" in result.stderr


def test_an_argument_the_config_does_not_set_gets_the_plus_form():
    """Hydra refuses `trainer.limit_train_batches=2` (the Trainer takes it, the config does not
    list it); the hint says how to add it rather than naming the nearest listed key."""
    args = ["-m", "model=cnn", "trainer.limit_train_batches=2,3", "model.channls=[4]",
            "optimizer.lr=0.1", "model.hidden=8"]  # fmt: skip
    assert unknown_key_hints(ROOT / "conf", "train", args) == [
        "trainer.limit_train_batches is an argument of lightning.pytorch.Trainer that the config "
        "does not set; add it with +trainer.limit_train_batches=2,3",
        "model.channls is not a key of the config; did you mean model.channels?",
    ]


def test_a_key_given_without_its_group_gets_the_keys_of_that_name():
    """`lr=0.1` is no key, `optimizer.lr` is; eval.py has `data_dir` where a run has
    `datamodule.data_dir`."""
    assert unknown_key_hints(ROOT / "conf", "train", ["lr=0.1", "max_epochs=3"]) == [
        "lr is not a key of the config; did you mean optimizer.lr?",
        "max_epochs is not a key of the config; did you mean trainer.max_epochs?",
    ]
    assert unknown_key_hints(ROOT / "conf", "eval", ["ckpt_path=x", "datamodule.data_dir=y"]) == [
        "datamodule.data_dir is not a key of the config; did you mean data_dir?"
    ]


def test_a_group_choice_that_names_no_option_gets_the_nearest(tmp_path):
    """Hydra lists a group's options above its config search path; the last line names the
    nearest one. Plugins' options (hydra/launcher=joblib) and lists are left to Hydra."""
    result = run_train("experiment=goood", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "experiment=goood is not an option of experiment; did you mean experiment=good?"
    )
    args = ["-m", "optimizer=adamm,sgd", "model=foo", "hydra/launcher=joblib",
            "logger=[tensorboard,csv]", "~scheduler"]  # fmt: skip
    assert choice_hints(ROOT / "conf", args) == [
        "optimizer=adamm is not an option of optimizer; did you mean optimizer=adam?",
        "model=foo is not an option of model; one of cnn, mlp_bad, mlp_good, resnet, resnet18",
    ]


def test_hints_count_the_options_and_keys_of_the_users_config_folder(tmp_path):
    """A group option or key that only `hydra.searchpath` brings is no mistake: no hint says it
    is (a run that failed for another reason was told `datamodule=mine is not an option`)."""
    (tmp_path / "datamodule").mkdir()
    (tmp_path / "datamodule" / "mine.yaml").write_text("_target_: my.Data\nsize: 3\n")
    search = f"hydra.searchpath=[file://{tmp_path}]"
    assert choice_hints(ROOT / "conf", [search, "datamodule=mine"]) == []
    assert choice_hints(ROOT / "conf", [search, "datamodule=mien"]) == [
        "datamodule=mien is not an option of datamodule; did you mean datamodule=mine?"
    ]
    assert unknown_key_hints(ROOT / "conf", "train", [search, "datamodule=mine",
                                                       "datamodule.sise=4"]) == [
        "datamodule.sise is not a key of the config; did you mean datamodule.size?"
    ]  # fmt: skip
    # options a package brings cannot be listed: no hint rather than a wrong one
    assert choice_hints(ROOT / "conf", ["hydra.searchpath=[pkg://my.conf]", "model=x"]) == []


def test_a_config_folder_given_with_config_dir_gets_the_same_hints(tmp_path):
    """`--config-dir DIR` (`-cd`) adds a folder as `hydra.searchpath` does: its options and keys
    are hinted; its value was read as an override, which left the whole command without hints."""
    from goodfit.hydra_ext.key_hints import as_overrides

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tiny.yaml").write_text("_target_: my.Tiny\nwidth: 3\n")
    search = f"hydra.searchpath=[{tmp_path.as_uri()}]"
    assert as_overrides(["-cd", str(tmp_path), "-m", "model=tiny"]) == [search, "model=tiny"]
    assert as_overrides([f"--config-dir={tmp_path}", "seed=1"]) == [search, "seed=1"]
    assert as_overrides(["-cn", "other", "seed=1"]) is None, "another primary config: no hints"
    result = run_train("-cd", str(tmp_path), "model=tiny", "model.widht=4", check=False)
    assert "model.widht is not a key of the config; did you mean model.width?" in result.stderr
    result = run_train("--config-dir", str(tmp_path), "model=tinyy", check=False)
    assert "model=tinyy is not an option of model; did you mean model=tiny?" in result.stderr


def test_a_sweep_job_folder_unquoted_gets_the_quoted_form(tmp_path):
    """Hydra's grammar refuses an unquoted '=' in a value (a sweep job's folder) without
    naming it; the hint names the key and gives the form that parses, which does."""
    job = tmp_path / "sweep" / "optimizer=sgd"
    result = run_train(f"resume={job}", check=False)
    assert result.returncode == 1
    quoted = f"resume='{job}'"
    assert f"resume: a value that holds '=' must be quoted for Hydra; type \"{quoted}\"" in (
        result.stderr
    )
    result = run_train(quoted, check=False)  # Hydra takes it; goodfit looks for the folder
    assert result.returncode == 2
    assert f"resume={job}: not a run folder" in result.stdout + result.stderr
    args = ["optimizer=sgd", "-m", "x='a=b'", "hydra.run.dir=a/b=c", "datamodule.data_dir=~/d"]
    assert quoting_hints(args) == [
        "hydra.run.dir: a value that holds '=' must be quoted for Hydra; type "
        "\"hydra.run.dir='a/b=c'\" (with both kinds of quotes)",
        # the shell expands ~ after `name=`, not after `group.key=`: Hydra gets it, unparsable
        "datamodule.data_dir: a value that holds '~' must be quoted for Hydra; type "
        "\"datamodule.data_dir='~/d'\" (with both kinds of quotes)",
    ]


def test_diverging_job_fails_and_the_other_jobs_go_on(synthetic_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m", "experiment=good", "optimizer.lr=1000000.0,0.01", "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep}", *synthetic_overrides(synthetic_dir), check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Training diverged: train/loss is not finite" in output
    assert "optimizer.lr=" in output and "gradient_clip_val" in output
    failed = json.loads((sweep / "optimizer.lr=1000000.0" / "summary.json").read_text())
    assert failed["status"] == "failed" and "not finite" in failed["reason"]
    assert failed["test_acc"] is None and failed["epochs_run"] == 0
    assert not (sweep / "optimizer.lr=1000000.0" / "checkpoints").exists()
    completed = json.loads((sweep / "optimizer.lr=0.01" / "summary.json").read_text())
    assert completed["status"] == "completed" and completed["epochs_run"] == 2
