"""The evaluation task: test a checkpoint on the test set, as its training run's test did."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from goodfit.runtime.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint in `cfg.ckpt_path`; print and return its test loss and accuracy."""
    import lightning as L
    from hydra.utils import instantiate

    from goodfit.hydra_ext.key_hints import typed_override
    from goodfit.records.intervals import wilson_interval
    from goodfit.records.summary import print_table
    from goodfit.tasks.assemble import TRAINER_REFUSALS, quiet_library_noise
    from goodfit.tasks.checkpoints import find_checkpoint, load_trained
    from goodfit.tasks.record import evaluated_sizes

    quiet_library_noise()
    ckpt = find_checkpoint(Path(cfg.ckpt_path).expanduser(), name="ckpt_path",
                           typed=lambda run: typed_override("ckpt_path", str(run)))  # fmt: skip
    trained = load_trained(ckpt, trust=bool(cfg.get("trust_checkpoint")))
    run_cfg = trained.config
    datamodule = _test_data(run_cfg, cfg.get("data_dir"))
    accelerator = cfg.get("accelerator") or run_cfg.trainer.accelerator
    try:
        trainer: L.Trainer = instantiate(run_cfg.trainer, _partial_=True)(
            accelerator=accelerator,
            devices=1,  # one process, even for a model trained with DDP: the same test set
            num_nodes=1,
            strategy="auto",
            logger=False,
            callbacks=[],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    except TRAINER_REFUSALS as err:
        whose = "" if cfg.get("accelerator") else " (the training run's setting)"
        raise ConfigError(
            f"accelerator={accelerator}{whose}: Lightning refuses it on this machine: {err}; "
            "give accelerator=cpu, or accelerator=auto"
        ) from None
    # The checkpoint's own datamodule state (e.g. its normalisation) is restored with it.
    metrics = trainer.test(trained.module, datamodule=datamodule, ckpt_path=str(ckpt),
                           weights_only=True, verbose=False)[0]  # fmt: skip
    result = {
        "checkpoint": str(ckpt),
        "test_loss": float(metrics["test/loss"]),
        "test_acc": float(metrics["test/acc"]),
        "n_test": evaluated_sizes(trainer, trained.module, datamodule.sizes)["n_test"],
    }
    low, high = wilson_interval(result["test_acc"], result["n_test"])
    print_table(
        f"goodfit eval: {run_cfg.get('name')}",
        [("checkpoint", ckpt), ("test images", f"{result['n_test']:,}"),
         ("test loss", f"{result['test_loss']:.4f}"),
         ("test accuracy", f"{result['test_acc']:.4f}  (95% interval {low:.4f} to {high:.4f})")],
    )  # fmt: skip
    return result


def _test_data(run_cfg: DictConfig, data_dir: str | None) -> Any:
    """The training run's datamodule, reading from `data_dir` when given; data no longer where
    the run found it is a DataError that says how to point eval.py at it."""
    from hydra.utils import instantiate

    from goodfit.tasks.assemble import check_data_dir_given

    if data_dir:
        default = run_cfg.datamodule.get("data_dir")  # where the run read its data
        run_cfg.datamodule.data_dir = data_dir
        check_data_dir_given(run_cfg.datamodule, default, key="data_dir")
    try:
        datamodule = instantiate(run_cfg.datamodule)
        datamodule.prepare_data()
    except DataError as err:
        if data_dir:
            raise
        raise type(err)(f"{err}\nThat is where the training run read its data; if it has moved, "
                        "give eval.py data_dir=<the folder it is in now>") from None  # fmt: skip
    return datamodule
