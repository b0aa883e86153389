"""Every experiment and every group option composes and builds; bad values are refused."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from goodfit.hydra_ext.checks import validate
from goodfit.hydra_ext.monitors import check_monitors
from goodfit.models import MLP, build_network
from goodfit.runtime.errors import ConfigError

from .conftest import group_options

GROUPS = ["model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "datamodule",
          "experiment", "debug"]  # fmt: skip


def test_every_group_has_options():
    for group in GROUPS:
        assert group_options(group), f"conf/{group}/ is empty"


@pytest.mark.parametrize("override", [f"{g}={o}" for g in GROUPS for o in group_options(g)])
def test_every_option_composes_and_validates(compose, override):
    cfg = compose(override)
    validate(cfg)
    OmegaConf.to_container(cfg.model, resolve=True)


@pytest.mark.parametrize("choice", group_options("optimizer"))
@pytest.mark.parametrize("model", group_options("model"))
def test_any_optimizer_meets_any_model(compose, choice, model):
    cfg = compose(f"optimizer={choice}", f"model={model}")
    net = build_network(cfg.model)
    optimizer = instantiate(cfg.optimizer)(net.parameters())
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert optimizer.param_groups[0]["lr"] == cfg.optimizer.lr


@pytest.mark.parametrize("choice", [c for c in group_options("scheduler") if c != "none"])
def test_every_scheduler_builds(compose, choice):
    cfg = compose(f"scheduler={choice}")
    optimizer = torch.optim.SGD(MLP(hidden=(8,)).parameters(), lr=0.1)
    kwargs = {"total_steps": 100} if choice == "onecycle" else {}
    scheduler = instantiate(cfg.scheduler.factory)(optimizer, **kwargs)
    assert cfg.scheduler.interval in ("epoch", "step")
    assert hasattr(scheduler, "step")


def test_no_scheduler_by_default(compose):
    assert compose().scheduler is None


def test_seed_experiments(compose):
    good = compose("experiment=good")
    assert good.model.hidden == [784, 100] and good.model.dropout == 0.2
    assert good.optimizer._target_ == "torch.optim.SGD" and good.optimizer.lr == 0.01
    assert good.datamodule.batch_size == 32 and good.trainer.max_epochs == 20
    assert (good.datamodule.val_split, good.datamodule.val_split_mode) == (0.06, "tail")
    bad = compose("experiment=bad")
    assert bad.model.hidden == [784] and bad.model.dropout == 0.0
    assert bad.optimizer._target_ == "torch.optim.RMSprop" and bad.optimizer.lr == 0.001
    assert bad.trainer.max_epochs == 3
    assert (bad.datamodule.val_split, bad.datamodule.val_split_mode) == (0.01, "tail")
    for cfg in (good, bad):
        assert cfg.seed == 42
        assert "early_stopping" not in cfg.callbacks  # every epoch runs


def test_callbacks_and_loggers_can_be_switched_off(compose):
    cfg = compose("callbacks.lr_monitor=null", "callbacks.rich_progress_bar=null", "~logger")
    assert cfg.callbacks.lr_monitor is None and cfg.get("logger") is None


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("datamodule.val_split=1.5", "datamodule.val_split"),
        ("datamodule.val_split=0", "datamodule.val_split"),
        ("optimizer.lr=-0.1", "optimizer.lr"),
        ("datamodule.batch_size=0", "datamodule.batch_size"),
        ("trainer.max_epochs=-3", "trainer.max_epochs"),
        ("model.dropout=1.0", "model.dropout"),
        ("datamodule.val_split_mode=head", "datamodule.val_split_mode"),
        ("seed=-1", "seed"),
        ("datamodule.train_subset=0", "datamodule.train_subset"),
        ("model.compile=yes", "model.compile"),
        ("callbacks.rich_progress_bar.update_every=0", "callbacks.rich_progress_bar.update_every"),
        ("perf.steps_per_batch=0", "perf.steps_per_batch"),
        ("callbacks.rich_progress_bar.refresh_rate=-1", "callbacks.rich_progress_bar.refresh_rate"),
        ("callbacks.rich_model_summary.max_depth=-2", "callbacks.rich_model_summary.max_depth"),
        ("callbacks.model_checkpoint.save_top_k=-2", "callbacks.model_checkpoint.save_top_k"),
        ("callbacks.model_checkpoint.mode=maximum", "callbacks.model_checkpoint.mode"),
        (
            "augmentation=light callbacks.augmentation_preview.n_images=0",
            "callbacks.augmentation_preview.n_images",
        ),
        (
            "augmentation=light callbacks.augmentation_preview.n_versions=-1",
            "callbacks.augmentation_preview.n_versions",
        ),
        (
            "callbacks.stop_on_divergence.check_every_n_steps=0",
            "callbacks.stop_on_divergence.check_every_n_steps",
        ),
        ("callbacks.train_eval.n_images=0", "callbacks.train_eval.n_images"),
        ("callbacks.train_eval.batch_size=-5", "callbacks.train_eval.batch_size"),
        ("+callbacks.train_eval.seed=abc", "callbacks.train_eval.seed"),
        (
            "callbacks=early_stopping callbacks.early_stopping.patience=-1",
            "callbacks.early_stopping.patience",
        ),
        (
            "callbacks=early_stopping callbacks.early_stopping.mode=lowest",
            "callbacks.early_stopping.mode",
        ),
        (
            "callbacks=early_stopping callbacks.early_stopping.min_delta=-0.1",
            "callbacks.early_stopping.min_delta",
        ),
        ("perf.manual_optimization=sometimes", "perf.manual_optimization"),
        ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val"),
        ("trainer.gradient_clip_algorithm=l2", "trainer.gradient_clip_algorithm"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches"),
        ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch"),
        ("trainer.min_epochs=-2", "trainer.min_epochs"),
        ("+trainer.limit_train_batches=0", "trainer.limit_train_batches"),
        ("+trainer.limit_val_batches=0.0", "trainer.limit_val_batches"),
        ("+trainer.limit_test_batches=0", "trainer.limit_test_batches"),
        ("+trainer.limit_test_batches=1.5", "trainer.limit_test_batches"),
        ("scheduler=cosine scheduler.interval=batch", "scheduler.interval"),
        ("+logger.tensorboard.renamed.val=1", "logger.tensorboard.renamed"),
    ],
)
def test_bad_values_refused_with_key_value_and_allowed(compose, override, key):
    cfg = compose(*override.split())  # a group choice first, where the key needs one
    value = override.split()[-1].split("=", 1)[1]
    with pytest.raises(ConfigError, match=rf"{key}=.*{value}.* must be "):
        validate(cfg)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("scheduler=plateau", "scheduler.monitor=val/foo"),
         "scheduler.monitor=val/foo: the run does not log it; it logs train/acc, train/loss, "
         "train/lr, train_eval/acc, train_eval/loss, val/acc, val/loss every epoch; did you "
         "mean scheduler.monitor=val/loss?"),
        (("callbacks.model_checkpoint.monitor=val/accuracy", "~logger"),
         "callbacks.model_checkpoint.monitor=val/accuracy: the run does not log it; it logs "
         "train/acc, train/loss, train_eval/acc, train_eval/loss, val/acc, val/loss every "
         "epoch; did you mean callbacks.model_checkpoint.monitor=val/acc?"),
        (("callbacks=early_stopping", "callbacks.early_stopping.monitor=train_eval/loss",
          "callbacks.train_eval=null", "~logger"),
         "callbacks.early_stopping.monitor=train_eval/loss: the run does not log it; it logs "
         "train/acc, train/loss, val/acc, val/loss every epoch; did you mean "
         "callbacks.early_stopping.monitor=train/loss?"),
    ],
)  # fmt: skip
def test_a_metric_watched_that_the_run_does_not_log_is_refused(compose, overrides, message):
    """Lightning finds out when the first epoch ends (MisconfigurationException)."""
    with pytest.raises(ConfigError) as refused:
        check_monitors(compose(*overrides))
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("callbacks=early_stopping", "callbacks.early_stopping.monitor=val/acc"),
         "callbacks.early_stopping.mode=min with callbacks.early_stopping.monitor=val/acc: a "
         "lower val/acc would count as better; give callbacks.early_stopping.mode=max"),
        (("+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
          "+callbacks.stop.monitor=train_eval/acc"),  # Lightning's default mode: min
         "callbacks.stop.mode=min with callbacks.stop.monitor=train_eval/acc: a lower "
         "train_eval/acc would count as better; give callbacks.stop.mode=max"),
        (("callbacks.model_checkpoint.monitor=val/loss",),
         "callbacks.model_checkpoint.mode=max with callbacks.model_checkpoint.monitor=val/loss: "
         "a higher val/loss would count as better; give callbacks.model_checkpoint.mode=min"),
        (("scheduler=plateau", "scheduler.monitor=val/acc"),
         "scheduler.factory.mode=min with scheduler.monitor=val/acc: a lower val/acc would "
         "count as better; give scheduler.factory.mode=max"),
    ],
)  # fmt: skip
def test_a_loss_or_accuracy_watched_the_wrong_way_round_is_refused(compose, overrides, message):
    """EarlyStopping and ModelCheckpoint default to mode=min: watching an accuracy without
    mode=max stops at its first rise, or keeps the worst epoch. Lightning never says so."""
    with pytest.raises(ConfigError) as refused:
        check_monitors(compose(*overrides))
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "overrides",
    [("scheduler=plateau", "scheduler.monitor=val/acc", "scheduler.factory.mode=max"),
     ("callbacks.model_checkpoint.monitor=val/loss", "callbacks.model_checkpoint.mode=min",
      "callbacks=early_stopping", "callbacks.early_stopping.monitor=train_eval/acc",
      "callbacks.early_stopping.mode=max"),
     ("module._target_=lightning.LightningModule", "callbacks.model_checkpoint.monitor=val/f1"),
     ("scheduler=cosine", "scheduler.monitor=unused"), ("hparams_search=optuna",), (),
     ("callbacks=early_stopping", "callbacks.early_stopping.monitor=train_eval/loss"),
     ("scheduler=plateau", "module._target_=lightning.LightningModule")],
)  # fmt: skip
def test_metrics_watched_that_cannot_be_told_or_do_not_matter_pass(compose, overrides, caplog):
    """A loss or an accuracy watched the right way round; a metric of unknown direction; a
    monitor only a plateau scheduler reads; a module that does not list its metrics; no
    scheduler at all (nothing looked up, so nothing logged); a metric a callback logs
    (callbacks.train_eval's)."""
    with caplog.at_level("ERROR"):
        check_monitors(compose(*overrides))
    assert not caplog.records


def test_a_run_that_would_never_validate_is_refused(compose):
    with pytest.raises(ConfigError, match=r"check_val_every_n_epoch=5 is more than trainer\.max_"
                                          r"epochs=2: the run would never validate"):  # fmt: skip
        validate(compose("trainer.check_val_every_n_epoch=5", "trainer.max_epochs=2"))
    validate(compose("trainer.check_val_every_n_epoch=2", "trainer.max_epochs=2"))


def test_unlimited_epochs_allowed(compose):
    validate(compose("trainer.max_epochs=-1"))


@pytest.mark.parametrize(
    ("override", "key"),
    [("augmentation.hflip=1.5", "augmentation.hflip"),
     ("augmentation.max_shift=-0.1", "augmentation.max_shift"),
     ("augmentation.max_rotation=400", "augmentation.max_rotation"),
     ("augmentation.erase=2", "augmentation.erase")],
)  # fmt: skip
def test_bad_augmentation_values_refused_before_any_work(compose, override, key):
    with pytest.raises(ConfigError, match=rf"{key}=.* must be "):
        validate(compose("augmentation=strong", override))


@pytest.mark.parametrize("optimizer", group_options("optimizer"))
@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_optimizer_composes_with_every_experiment(compose, experiment, optimizer):
    """An experiment sets only what every optimizer takes (lr, weight_decay): each optimizer
    builds with each experiment, and the module takes an optimizer step with it."""
    from goodfit.tasks.assemble import build_module

    cfg = compose(f"experiment={experiment}", f"optimizer={optimizer}")
    validate(cfg)
    net = build_network(cfg.model)
    module = build_module(cfg, net)
    opt = module.optimizer_factory([p for p in module.parameters() if p.requires_grad])
    before = [p.detach().clone() for p in net.parameters()]
    loss = module.net(torch.rand(4, 1, 28, 28)).logsumexp(1).mean()
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


@pytest.mark.parametrize("switched_off", [False, True])
def test_the_trainer_has_the_configured_callbacks_and_no_other(compose, tmp_path, switched_off):
    """Lightning adds a model summary of its own unless told not to; none is added here."""
    from lightning.pytorch.callbacks import ModelSummary

    from goodfit.tasks.assemble import build_callbacks, build_trainer

    cfg = compose(f"paths.output_dir={tmp_path}", "~logger",
                  *(["callbacks.rich_model_summary=null"] if switched_off else []))  # fmt: skip
    callbacks = build_callbacks(cfg)
    trainer = build_trainer(cfg, callbacks, [])
    summaries = [cb for cb in trainer.callbacks if isinstance(cb, ModelSummary)]
    assert len(summaries) == (0 if switched_off else 1)
    assert set(map(id, trainer.callbacks)) == set(map(id, callbacks))


@pytest.mark.parametrize(
    ("overrides", "profiler"),
    [((), "NoProfiler"), (("+trainer.profiler=simple",), "SimpleProfiler")],
)
def test_the_no_op_profiler_gives_way_to_one_asked_for(compose, tmp_path, overrides, profiler):
    """perf.noop_profiler is the default's profiler; `+trainer.profiler=simple` (what
    docs/performance.md tells to time each hook) replaces it with Lightning's."""
    from goodfit.tasks.assemble import build_callbacks, build_trainer

    cfg = compose(f"paths.output_dir={tmp_path}", "~logger", *overrides)
    trainer = build_trainer(cfg, build_callbacks(cfg), [])
    assert type(trainer.profiler).__name__ == profiler


def test_without_a_logger_the_learning_rate_callback_is_off_quietly(compose, caplog, tmp_path):
    """`~logger`: the callback that logs the learning rate has nowhere to log; it is left out
    with a line of information, not a warning in every such run."""
    import logging

    from goodfit.callbacks import EpochLearningRate
    from goodfit.tasks.assemble import build_callbacks

    with caplog.at_level(logging.INFO, logger="goodfit.tasks.assemble"):
        callbacks = build_callbacks(compose("~logger", f"paths.output_dir={tmp_path}"))
    assert not any(isinstance(cb, EpochLearningRate) for cb in callbacks)
    assert [r.levelname for r in caplog.records] == ["INFO"]
    with_logger = build_callbacks(compose(f"paths.output_dir={tmp_path}"))
    assert any(isinstance(cb, EpochLearningRate) for cb in with_logger)
