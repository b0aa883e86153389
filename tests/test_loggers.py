"""logger=mlflow and logger=wandb (offline): the curves, the hyper-parameters, the final
figures, the pictures and the verdict reach each logger, read back through its own API."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from .conftest import run_train, synthetic_overrides

HAS = {name: importlib.util.find_spec(name) is not None for name in ("mlflow", "wandb")}
PICTURES = {"learning_curves", "confusion_matrix", "misclassified"}


@pytest.fixture(scope="module")
def logged_run(synthetic_dir: Path, tmp_path_factory) -> Path:
    """One run with TensorBoard and every optional logger that is installed."""
    loggers = ["tensorboard"] + [name for name, installed in HAS.items() if installed]
    if len(loggers) == 1:
        pytest.skip("neither mlflow nor wandb is installed (pip install -e .[mlflow,wandb])")
    run_dir = tmp_path_factory.mktemp("loggers") / "run"
    result = run_train(
        "trainer.max_epochs=2", f"hydra.run.dir={run_dir}", f"logger=[{','.join(loggers)}]",
        *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    (run_dir.parent / "console.txt").write_text(result.stdout + result.stderr)
    return run_dir


def test_console_summary_says_where_each_logger_recorded(logged_run):
    console = (logged_run.parent / "console.txt").read_text()
    rows = re.sub(r"[│\s]", "", console)  # a long value folds onto lines with a blank label
    assert f"TensorBoardtensorboard--logdir{logged_run}" in rows
    if HAS["mlflow"]:
        assert f"MLflowmlflowui--backend-store-urisqlite:///{logged_run.parent}/mlflow.db" in rows
    if HAS["wandb"]:
        [offline] = logged_run.glob("wandb/offline-run-*")
        assert f"W&Bwandbsync{offline}" in rows


def test_where_to_look_names_only_the_loggers_of_the_run(tmp_path):
    """logger=csv gets the CSV file and no TensorBoard command (there are no event files)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from goodfit.records.publish import where_to_look

    csv = CSVLogger(tmp_path, name="csv", version="")
    assert where_to_look([csv]) == [("CSV", str(tmp_path / "csv" / "metrics.csv"))]
    board = TensorBoardLogger(tmp_path, name="", version="")
    assert where_to_look([board, csv])[0] == ("TensorBoard", f"tensorboard --logdir {tmp_path}")
    assert where_to_look([]) == []


@pytest.mark.skipif(not HAS["mlflow"], reason="mlflow not installed (pip install -e .[mlflow])")
def test_where_to_look_for_an_mlflow_store_or_server(tmp_path, monkeypatch):
    from goodfit.records.mlflow_logger import MLFlowLogger
    from goodfit.records.publish import where_to_look

    store = f"sqlite:///{tmp_path}/mlflow.db"
    server = "http://127.0.0.1:5000"  # no request is made before the run logs
    assert where_to_look([MLFlowLogger(tracking_uri=store), MLFlowLogger(tracking_uri=server)]) == [
        ("MLflow", f"mlflow ui --backend-store-uri {store}"),
        ("MLflow", server),
    ]
    # no tracking_uri: MLflow's own variable, as Lightning's logger reads it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    assert MLFlowLogger().tracking_uri == store


@pytest.mark.skipif(not HAS["mlflow"], reason="mlflow not installed (pip install -e .[mlflow])")
@pytest.mark.slow
def test_mlflow_store_holds_metrics_params_pictures_and_verdict(logged_run):
    from mlflow.tracking import MlflowClient

    summary = json.loads((logged_run / "summary.json").read_text())
    # the store sits beside the run folder (its parent), a local SQLite file: no server
    client = MlflowClient(tracking_uri=f"sqlite:///{logged_run.parent / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("goodfit")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val/acc")
    assert [(m.step, m.value) for m in history] == [
        (h["epoch"], pytest.approx(h["val_acc"], rel=1e-5)) for h in summary["history"]
    ]
    metrics = run.data.metrics
    assert metrics["test/acc"] == pytest.approx(summary["test_acc"], rel=1e-5)
    assert metrics["best_val_acc"] == pytest.approx(summary["best_val_acc"], rel=1e-5)
    assert run.data.params["choice/model"] == "mlp_good"
    assert float(run.data.params["optimizer.lr"]) == 0.01
    assert run.data.tags["verdict"] == summary["verdict"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"pictures", "verdict.md", "summary.json"} <= artifacts
    pictures = {Path(a.path).stem for a in client.list_artifacts(run.info.run_id, "pictures")}
    assert pictures == PICTURES
    verdict = Path(client.download_artifacts(run.info.run_id, "verdict.md")).read_text()
    assert f"Verdict: {summary['verdict']}" in verdict
    assert summary["verdict_reasons"][0] in verdict


@pytest.mark.skipif(not HAS["wandb"], reason="wandb not installed (pip install -e .[wandb])")
def test_wandb_offline_run_holds_metrics_config_pictures_and_verdict(logged_run):
    from .wandb_read import offline_run

    summary = json.loads((logged_run / "summary.json").read_text())
    run = offline_run(logged_run)
    val_acc = [row["val/acc"] for row in run["history"] if "val/acc" in row]
    assert val_acc == pytest.approx([h["val_acc"] for h in summary["history"]], rel=1e-5)
    assert run["config"]["choice/model"] == "mlp_good" and run["config"]["optimizer.lr"] == 0.01
    assert run["summary"]["best_val_acc"] == pytest.approx(summary["best_val_acc"], rel=1e-5)
    assert run["summary"]["test/acc"] == pytest.approx(summary["test_acc"], rel=1e-5)
    assert run["summary"]["verdict"] == summary["verdict"]
    assert summary["verdict_reasons"][0] in run["summary"]["verdict_markdown"]
    images = list(logged_run.glob("wandb/offline-run-*/files/media/images/views/*.png"))
    assert {p.name.rsplit("_", 2)[0] for p in images} == PICTURES
    [saved] = logged_run.glob("wandb/offline-run-*/files/summary.json")
    assert not saved.is_symlink() and json.loads(saved.read_text()) == summary
    console = (logged_run.parent / "console.txt").read_text()
    assert "Symlinked" not in console  # W&B's warning about a linked file


@pytest.mark.skipif(not HAS["mlflow"], reason="mlflow not installed (pip install -e .[mlflow])")
@pytest.mark.slow
def test_parallel_sweep_shares_one_mlflow_store(synthetic_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    sweep = tmp_path / "sweep"
    run_train(
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer=sgd,adam",
        "seed=1,2", "debug=fast", "logger=mlflow", f"hydra.sweep.dir={sweep}",
        *synthetic_overrides(synthetic_dir),
    )  # fmt: skip
    client = MlflowClient(tracking_uri=f"sqlite:///{sweep / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("goodfit").experiment_id])
    # run names are the job folders, a swept seed nested under its setting
    assert sorted(r.info.run_name for r in runs) == [
        "optimizer=adam/seed=1", "optimizer=adam/seed=2",
        "optimizer=sgd/seed=1", "optimizer=sgd/seed=2",
    ]  # fmt: skip
    assert all("test/acc" in r.data.metrics for r in runs)


@pytest.mark.skipif(not HAS["mlflow"], reason="mlflow not installed (pip install -e .[mlflow])")
@pytest.mark.slow
def test_mlflow_ui_serves_the_run(logged_run):
    """The command docs/loggers.md gives, `mlflow ui --backend-store-uri sqlite:///…`, on the
    store a run wrote: MLflow's own server lists the run with its curves, verdict and pictures."""
    from .servers import free_port, get_bytes, get_json, post_json, serving, venv_command

    summary = json.loads((logged_run / "summary.json").read_text())
    store = f"sqlite:///{logged_run.parent / 'mlflow.db'}"
    port = free_port()
    command = [venv_command("mlflow"), "ui", "--backend-store-uri", store,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with serving(command):
        page = get_bytes(f"{base}/")  # waits for the server
        api = f"{base}/api/2.0/mlflow"
        experiment = get_json(f"{api}/experiments/get-by-name?experiment_name=goodfit")
        experiment_id = experiment["experiment"]["experiment_id"]
        [run] = post_json(f"{api}/runs/search", {"experiment_ids": [experiment_id]})["runs"]
        run_id = run["info"]["run_id"]
        history = get_json(f"{api}/metrics/get-history?run_id={run_id}&metric_key=val/acc")
        artifacts = get_json(f"{api}/artifacts/list?run_id={run_id}")
        picture = get_bytes(
            f"{base}/get-artifact?path=pictures/learning_curves.png&run_uuid={run_id}"
        )
    assert b"<html" in page.lower()
    assert run["info"]["run_name"] == "run"
    assert [(m["step"], m["value"]) for m in history["metrics"]] == [
        (h["epoch"], pytest.approx(h["val_acc"], rel=1e-5)) for h in summary["history"]
    ]
    tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
    assert tags["verdict"] == summary["verdict"]
    assert {"pictures", "verdict.md", "summary.json"} <= {f["path"] for f in artifacts["files"]}
    assert picture.startswith(b"\x89PNG")
