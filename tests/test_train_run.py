"""End to end through train.py on synthetic IDX data: the run folder, summary.json, TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_train, synthetic_overrides
from .tensorboard_read import hparams_session, load_events, scalars

SUMMARY_KEYS = {
    "experiment", "model", "optimizer", "seed", "params_total", "params_trainable", "n_train",
    "n_val", "n_test", "epochs_run", "test_loss", "test_acc", "history", "fit_seconds", "run_dir",
}  # fmt: skip


@pytest.fixture(scope="module")
def good_run(synthetic_dir: Path, tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("runs") / "good"
    result = run_train(
        "experiment=good", "trainer.max_epochs=3", f"hydra.run.dir={run_dir}",
        *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    return run_dir, result.stdout + result.stderr


def test_run_folder_is_a_complete_record(good_run):
    run_dir, output = good_run
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / ".hydra" / "overrides.yaml").is_file()
    assert (run_dir / "train.log").is_file()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))
    log = (run_dir / "train.log").read_text()
    assert "Fashion-MNIST from" in log and "GPU available" in log  # Lightning's own lines stay
    assert "💡 Tip" not in log and "💡 Tip" not in output  # its advert for a cloud logger goes


def test_summary_json(good_run):
    run_dir, _ = good_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["experiment"] == "good" and summary["model"] == "mlp_good"
    assert summary["optimizer"] == "sgd" and summary["seed"] == 42
    assert summary["params_total"] == summary["params_trainable"] == 694_950
    # one image through 784 → 784 → 100 → 10: a multiply and an add per weight
    assert summary["flops_per_image"] == 2 * (784 * 784 + 784 * 100 + 100 * 10)
    # 600 synthetic training images, 6% held out at the tail
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (564, 36, 200)
    assert summary["epochs_run"] == 3
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3]
    for entry in summary["history"]:
        assert set(entry) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                              "train_eval_loss", "train_eval_acc", "seconds",
                              "cpu_seconds"}  # fmt: skip
        assert 0.0 <= entry["train_eval_acc"] <= 1.0 and entry["train_eval_loss"] > 0
        assert entry["seconds"] > 0 and entry["cpu_seconds"] >= 0
        assert 0.0 <= entry["train_acc"] <= 1.0 and 0.0 <= entry["val_acc"] <= 1.0
    assert 0.0 <= summary["test_acc"] <= 1.0 and summary["test_loss"] > 0
    assert summary["test_acc"] > 0.5, "synthetic classes are easy to tell apart"
    assert summary["run_dir"] == str(run_dir) and summary["fit_seconds"] > 0
    assert summary["startup_seconds"] > 0 and summary["peak_memory_mb"] > 0


def test_tensorboard_curves_per_epoch(good_run):
    run_dir, _ = good_run
    summary = json.loads((run_dir / "summary.json").read_text())
    events = load_events(run_dir)
    tags = events.Tags()["scalars"]
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "verdict/test_loss",
                "verdict/test_acc"):  # fmt: skip
        assert tag in tags
    for stage in ("train", "val"):
        for metric in ("loss", "acc"):
            logged = scalars(events, f"{stage}/{metric}")
            assert [step for step, _ in logged] == [1, 2, 3], "once per epoch, epoch on x-axis"
            expected = [h[f"{stage}_{metric}"] for h in summary["history"]]
            assert [v for _, v in logged] == pytest.approx(expected, rel=1e-5)
    assert scalars(events, "verdict/test_acc")[-1][1] == pytest.approx(
        summary["test_acc"], rel=1e-5
    )


def test_tensorboard_train_and_val_on_one_chart(good_run):
    from tensorboard.plugins.custom_scalar import layout_pb2

    run_dir, _ = good_run
    events = load_events(run_dir)
    raw = events.PluginTagToContent("custom_scalars")
    assert raw, "no custom-scalars layout written"
    layout = layout_pb2.Layout()
    layout.ParseFromString(events.Tensors(next(iter(raw)))[0].tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert ["train/loss", "train_eval/loss", "val/loss"] in charts.values()
    assert ["train/acc", "train_eval/acc", "val/acc"] in charts.values()
    for tag in ("train_eval/loss", "train_eval/acc"):  # the curves those charts draw
        assert len(scalars(events, tag)) == 3


def test_tensorboard_hparams_hold_real_metrics(good_run):
    run_dir, _ = good_run
    summary = json.loads((run_dir / "summary.json").read_text())
    events = load_events(run_dir)
    params, metric_tags = hparams_session(events)
    assert params["choice/model"] == "mlp_good" and params["optimizer.lr"] == 0.01
    # the final figures, drawn once after the learning curves: verdict/…
    assert set(metric_tags) == {"verdict/best_val_acc", "verdict/test_acc", "verdict/test_loss"}
    final = summary["epochs_run"]
    for name in ("test_acc", "test_loss"):
        assert scalars(events, f"verdict/{name}") == [(final, pytest.approx(summary[name], 1e-5))]
    best = max(h["val_acc"] for h in summary["history"])
    assert scalars(events, "verdict/best_val_acc") == [(final, pytest.approx(best, rel=1e-5))]
    assert not [t for t in events.Tags()["scalars"] if t.startswith(("hp/", "test/"))]


def test_tensorboard_learning_rate_is_a_training_curve(good_run):
    run_dir, _ = good_run
    assert scalars(load_events(run_dir), "train/lr") == [
        (n, pytest.approx(0.01)) for n in (1, 2, 3)
    ]


def test_console_summary(good_run):
    run_dir, output = good_run
    assert "test accuracy" in output and "694,950" in output
    assert "tensorboard --logdir" in output


def test_model_summary_lists_the_network_not_the_metrics(good_run):
    """callbacks.rich_model_summary in a real run: the network's rows, the metric holders named
    in one line instead of 16 rows."""
    run_dir, output = good_run
    rows = [line.split("│")[2].strip() for line in output.splitlines()
            if line.startswith("│") and line.count("│") >= 7]  # fmt: skip
    assert rows[:2] == ["net", "net.layers"] and not any("metrics" in row for row in rows)
    assert "Not listed (metrics): train_metrics, val_metrics, test_metrics, test_evaluation" in (
        output
    )


def test_console_table_wraps_a_long_path_whole():
    """A run folder longer than the terminal is wrapped, never cut with an ellipsis."""
    import io

    from rich.console import Console

    from goodfit.records.summary import print_table

    folder = "logs/multiruns/a_sweep_with_a_long_name_0123456789/optimizer=sgd,seed=12345"
    out = io.StringIO()
    print_table("run", [("run folder", folder), ("seed", 1)], Console(width=50, file=out))
    cells = [line.split("│")[2].strip() for line in out.getvalue().splitlines() if "│" in line]
    assert "…" not in out.getvalue() and "".join(cells[:-1]) == folder and cells[-1] == "1"


def test_console_summary_says_none_for_no_experiment_and_groups_thousands():
    import io

    from rich.console import Console

    from goodfit.records.summary import print_summary

    summary = {"experiment": None, "name": "debug", "model": "mlp_good", "optimizer": "sgd",
               "params_total": 694950, "params_trainable": 694950, "n_train": 54000,
               "n_val": 6000, "n_test": 10000, "epochs_run": 1, "test_loss": 1.0,
               "test_acc": 0.5, "fit_seconds": 1.0, "run_dir": "run"}  # fmt: skip
    out = io.StringIO()
    print_summary(summary, console=Console(width=100, file=out))
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in out.getvalue().splitlines() if line.count("│") == 3}  # fmt: skip
    assert rows["experiment"] == "none"
    assert rows["data (train/val/test)"] == "54,000 / 6,000 / 10,000"


def test_run_folder_is_never_reused(good_run, synthetic_dir):
    run_dir, _ = good_run
    result = run_train(
        "debug=fast", f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir), check=False
    )
    assert result.returncode != 0
    assert "already holds a run" in result.stdout + result.stderr


def test_bad_value_refused_before_any_work(synthetic_dir, tmp_path):
    run_dir = tmp_path / "refused"
    result = run_train(
        "datamodule.val_split=1.5", f"hydra.run.dir={run_dir}",
        *synthetic_overrides(synthetic_dir), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "datamodule.val_split=1.5" in result.stdout + result.stderr
    assert not (run_dir / "checkpoints").exists()
    assert not list(run_dir.glob("events.out.tfevents.*"))


def test_unknown_optimizer_lists_choices(synthetic_dir, tmp_path):
    result = run_train("optimizer=adagrad", f"hydra.run.dir={tmp_path}", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "adagrad" in output and "rmsprop" in output and "sgd" in output


def test_data_not_found_names_every_place(tmp_path):
    result = run_train(
        f"datamodule.data_dir={tmp_path / 'nowhere'}", f"datamodule.system_dir={tmp_path / 'sys'}",
        "datamodule.download=false", f"hydra.run.dir={tmp_path / 'run'}", check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert str(tmp_path / "nowhere") in output and str(tmp_path / "sys") in output
    assert "apt-get install dataset-fashion-mnist" in output


def test_run_folder_has_its_pictures(good_run):
    from .test_figures import assert_png

    run_dir, _ = good_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pictures"] == [
        "confusion_matrix.png",
        "learning_curves.png",
        "misclassified.png",
    ]
    for name in summary["pictures"]:
        assert_png(run_dir / name, min_size=(400, 250))  # an empty misclassified grid is short


def test_summary_holds_the_diagnosis(good_run):
    from goodfit.records.diagnosis import Thresholds, diagnose, wilson_interval

    run_dir, _ = good_run
    summary = json.loads((run_dir / "summary.json").read_text())
    last = summary["history"][-1]
    assert summary["generalization_gap"] == pytest.approx(last["val_loss"] - last["train_loss"])
    expected = diagnose(summary["history"], 36, 200, summary["test_acc"], Thresholds())
    assert summary["verdict"] == expected.verdict
    assert summary["verdict_reasons"] == expected.reasons
    assert summary["val_acc_ci95"] == pytest.approx(wilson_interval(last["val_acc"], 36))
    assert summary["test_acc_ci95"] == pytest.approx(wilson_interval(summary["test_acc"], 200))
    per_class = summary["per_class"]
    assert list(per_class)[:2] == ["T-shirt/top", "Trouser"] and len(per_class) == 10
    for figures in per_class.values():
        assert set(figures) == {"accuracy", "precision", "recall"}
        assert all(0.0 <= v <= 1.0 for v in figures.values())


def test_console_shows_the_verdict(good_run):
    run_dir, output = good_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "verdict" in output and summary["verdict"].split(",")[0] in output
    assert "95% interval" in output


def test_tensorboard_pictures_and_verdict(good_run):
    run_dir, _ = good_run
    summary = json.loads((run_dir / "summary.json").read_text())
    events = load_events(run_dir)
    images = events.Tags()["images"]
    for name in ("learning_curves", "confusion_matrix", "misclassified"):
        tag = f"views/{name}"
        assert tag in images
        image = events.Images(tag)[-1]
        assert image.encoded_image_string[:4] == b"\x89PNG" and image.width >= 400
        assert image.step == summary["epochs_run"]
    text_tags = events.PluginTagToContent("text")
    tag = next(t for t in text_tags if t.startswith("diagnosis/verdict"))
    text = events.Tensors(tag)[0].tensor_proto.string_val[0].decode()
    assert f"Verdict: {summary['verdict']}" in text
    assert summary["verdict_reasons"][0] in text


def test_a_run_stopped_early_says_so(synthetic_dir, tmp_path):
    """EarlyStopping (added by config) ends the run before max_epochs: summary.json and the
    console say by what and why, beside the epochs run."""
    run_dir = tmp_path / "early"
    result = run_train(
        "experiment=good", "trainer.max_epochs=6", "optimizer.lr=1e-12",
        "+callbacks.es._target_=lightning.pytorch.callbacks.EarlyStopping",
        "+callbacks.es.monitor=val/loss", "+callbacks.es.patience=1",
        f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    stop = summary["stopped_early"]
    assert summary["epochs_run"] == stop["epoch"] == 2 and stop["callback"] == "EarlyStopping"
    assert stop["reason"].startswith("Monitored metric val/loss did not improve")
    assert "2 (stopped early by EarlyStopping: Monitored metric" in result.stdout


def test_a_run_stopped_by_its_time_limit_says_so(synthetic_dir, tmp_path):
    """trainer.max_time (Lightning's Timer) ends a run of 1,000 epochs after one second:
    summary.json and the console say so, with how much of its last epoch ran."""
    run_dir = tmp_path / "timed"
    result = run_train("+trainer.max_time=00:00:00:01", "trainer.max_epochs=1000",
                       f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir))  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    stop, last = summary["stopped_early"], summary["history"][-1]
    assert stop["callback"] == "Timer" and stop["epoch"] == summary["epochs_run"] == last["epoch"]
    assert stop["reason"].startswith("the time limit trainer.max_time (0:00:01) was reached")
    if "batches_run" in last:  # stopped within an epoch (all but its last batch's end)
        assert f"ran {last['batches_run']:,} of its {last['batches_in_epoch']:,}" in stop["reason"]
    assert "(stopped early by Timer: the time limit" in " ".join(result.stdout.split())


def test_a_time_limit_stops_the_first_epoch_too(synthetic_dir, tmp_path):
    """With min_epochs: 1 in the trainer config, a limit reached in the first epoch was ignored
    until its end, Lightning's Timer saying so at every batch (a thousand lines)."""
    run_dir = tmp_path / "timed"
    result = run_train("+trainer.max_time=00:00:00:01", "datamodule.batch_size=1", "model=cnn",
                       f"hydra.run.dir={run_dir}", *synthetic_overrides(synthetic_dir))  # fmt: skip
    last = json.loads((run_dir / "summary.json").read_text())["history"][-1]
    assert last["epoch"] == 1 and last["batches_run"] < last["batches_in_epoch"]
    assert (result.stdout + result.stderr).count("Time limit reached") <= 1


def test_callbacks_early_stopping_ends_a_run_that_stops_improving(synthetic_dir, tmp_path):
    """`callbacks=early_stopping`: the default callbacks and Lightning's EarlyStopping, its
    patience set from the command line."""
    run_dir = tmp_path / "early"
    run_train(
        "trainer.max_epochs=6", "optimizer.lr=1e-12", "callbacks=early_stopping",
        "callbacks.early_stopping.patience=1", f"hydra.run.dir={run_dir}",
        *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == summary["stopped_early"]["epoch"] == 2
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()


def test_a_run_without_its_epoch_record_says_why_it_has_no_verdict(synthetic_dir, tmp_path):
    """callbacks.epoch_history=null: the epochs still count, and the reason names the switch."""
    run_dir = tmp_path / "run"
    run_train("trainer.max_epochs=2", "callbacks.epoch_history=null", f"hydra.run.dir={run_dir}",
              *synthetic_overrides(synthetic_dir))  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["history"] == [] and summary["epochs_run"] == 2
    assert summary["verdict_reasons"] == [
        "callbacks.epoch_history is switched off: no epoch was recorded, so the fit cannot be "
        "judged."
    ]
    assert not (run_dir / "learning_curves.png").exists()


def test_a_name_with_a_slash_or_space_makes_one_plain_run_folder(synthetic_dir, tmp_path):
    run_train("debug=fast", "name=ablation/wide net", f"paths.log_dir={tmp_path}",
              *synthetic_overrides(synthetic_dir))  # fmt: skip
    [run_dir] = (tmp_path / "runs").iterdir()
    assert "_ablation_wide_net_" in run_dir.name and (run_dir / "summary.json").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["name"] == "ablation/wide net"


def test_sizes_are_the_images_evaluated_when_limit_batches_cut_a_split(synthetic_dir, tmp_path):
    """trainer.limit_val_batches / limit_test_batches evaluate part of a split: summary.json's
    n_val and n_test (and the 95% intervals built on them) count the images evaluated, the
    split's own sizes stay beside them, and eval.py reports the images it tested."""
    from omegaconf import OmegaConf

    from goodfit.tasks import evaluate

    run_dir = tmp_path / "cut"
    result = run_train(
        "trainer.max_epochs=1", "datamodule.val_split=0.5", "+trainer.limit_val_batches=2",
        "+trainer.limit_test_batches=1", f"hydra.run.dir={run_dir}",
        *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (300, 200, 100)
    assert summary["data"]["split_sizes"] == {"n_train": 300, "n_val": 300, "n_test": 200}
    assert "300 / 200 of 300 / 100 of 200" in result.stdout
    assert "on 200 images" in " ".join(summary["verdict_reasons"])
    cfg = OmegaConf.create({"ckpt_path": str(run_dir), "data_dir": None, "accelerator": "cpu"})
    assert evaluate.run(cfg)["n_test"] == 100
