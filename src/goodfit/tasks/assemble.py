"""Build a run's parts from its config: the data, the network, the LightningModule, the
callbacks, the loggers and the Trainer. Each part comes from its config group alone."""

from __future__ import annotations

import difflib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from goodfit.data.contract import check_contract, data_facts
from goodfit.hydra_ext.resolvers import publish_data_facts
from goodfit.lit.rehearsal import rehearse_optimizer
from goodfit.models import build_network
from goodfit.runtime.checkpoint_io import RunCheckpointIO, hparams_not_data
from goodfit.runtime.errors import ConfigError, parameters_of, user_errors_of

log = logging.getLogger(__name__)

# What Lightning raises while building a Trainer it refuses: no such device here, a precision
# it does not know, an accelerator's package missing.
TRAINER_REFUSALS = (MisconfigurationException, ValueError, ModuleNotFoundError)


@dataclass
class Prepared:
    """The data (loaded) and the network, built before the module: the fine-tuning study loads a
    backbone into the network and trains a head on the data before the run trains."""

    datamodule: Any
    net: nn.Module


def quiet_library_noise() -> None:
    """One copy of each log line, and none of the warnings that do not apply to goodfit."""
    if logging.getLogger().handlers:  # Hydra's handlers print and file every record already
        logging.getLogger("lightning").handlers.clear()
    # Lightning's own use of a torch API that torch deprecated; nothing a run can change.
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
    # goodfit's own callbacks restore their state from the checkpoint when they are present.
    warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint.*")
    # Lightning advertises a cloud logger at every Trainer; it says nothing about the run.
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _drop_advert not in rank_zero.filters:  # once per process, however many runs
        rank_zero.addFilter(_drop_advert)


def _drop_advert(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip:")


def build_datamodule(cfg: DictConfig) -> Any:
    """The configured datamodule, its data found, loaded and checked against the contract; its
    class names and image shape published for `${data:…}` in the model and module configs."""
    with user_errors_of("augmentation", cfg.get("augmentation")):
        augmentation = instantiate(cfg.augmentation) if cfg.get("augmentation") else None
    check_data_dir_given(cfg.datamodule, cfg.paths.get("data_dir"))
    with user_errors_of("datamodule", cfg.datamodule):
        datamodule = instantiate(cfg.datamodule, **_augmentation_argument(cfg, augmentation))
    check_hparams_are_data("datamodule", datamodule)
    datamodule.prepare_data()  # fail on missing or damaged data before building anything else
    datamodule.setup("fit")
    check_contract(datamodule)
    _check_batch_size(datamodule)
    publish_data_facts(data_facts(datamodule))
    return datamodule


def check_data_dir_given(node: DictConfig, default: Any, key: str = "datamodule.data_dir") -> None:
    """A data folder (`key`) pointed somewhere that does not exist, for data also found in the
    datamodule's `system_dir`: the search would quietly read the system's copy instead of the
    one meant (a typo in the path). The default folder (`default`) may well be missing."""
    given, system = node.get("data_dir"), node.get("system_dir")
    if not given or not system or str(given) == str(default):
        return
    if not Path(str(given)).expanduser().exists() and Path(str(system)).is_dir():
        raise ConfigError(
            f"{key}={given}: no such folder. Give the folder that holds the data, or leave "
            f"{key} out to read the copy in {system} (datamodule.system_dir)"
        )


def _augmentation_argument(cfg: DictConfig, augmentation: Any) -> dict[str, Any]:
    """`augmentation=` for a datamodule that takes it (goodfit's do); none for one of your own
    that does not, which then cannot be given an augmentation."""
    target = str(cfg.datamodule.get("_target_"))
    parameters = parameters_of(target)
    if parameters is None or "augmentation" in parameters:
        return {"augmentation": augmentation}
    if augmentation is not None:
        raise ConfigError(
            f"augmentation: the datamodule ({target}) takes no `augmentation` argument; choose "
            "augmentation=none, or give it one (an nn.Module applied to training batches)"
        )
    return {}


def _check_batch_size(datamodule: Any) -> None:
    """A batch larger than the training set would make each epoch one short step."""
    batch_size, n_train = getattr(datamodule, "batch_size", None), datamodule.sizes["n_train"]
    if isinstance(batch_size, int) and batch_size > n_train:
        raise ConfigError(
            f"datamodule.batch_size={batch_size} is larger than the {n_train} training images: "
            f"each epoch would be a single step on fewer images; choose at most {n_train}"
        )


def check_optimizer(cfg: DictConfig) -> None:
    """The `optimizer` group's values, tried on a stand-in parameter before any work (torch
    checks them only when the optimizer is built, once fit has started)."""
    if cfg.get("optimizer") is None:
        return
    with user_errors_of("optimizer"):
        factory = instantiate(cfg.optimizer)
    if callable(factory):  # a partial; anything else the module builds its own way
        rehearse_optimizer(factory, target=cfg.optimizer.get("_target_"))


def prepare(cfg: DictConfig) -> Prepared:
    datamodule = build_datamodule(cfg)
    fits = (tuple(datamodule.image_shape), len(datamodule.class_names))
    return Prepared(datamodule, build_network(cfg.model, fits=fits))


def build_module(cfg: DictConfig, net: nn.Module) -> L.LightningModule:
    """The `module` group's LightningModule, given the network (built from the `model` group)."""
    with user_errors_of("module", cfg.module):
        module = instantiate(cfg.module, _partial_=True)(net=net)
    if not isinstance(module, L.LightningModule):
        raise ConfigError(
            f"module._target_={cfg.module.get('_target_')}: builds a {type(module).__name__}, "
            "not a LightningModule"
        )
    warn_misspelled_hooks("module", module, L.LightningModule)
    check_hparams_are_data("module", module)
    return module


def check_hparams_are_data(key: str, obj: Any) -> None:
    """Refuse, before any work, hyper-parameters that would make the run's checkpoints
    unopenable: goodfit opens checkpoints as data only (to test the best one, resume, eval,
    predict), and `save_hyperparameters()` without `ignore` saves the network and partials."""
    refused = hparams_not_data(obj)
    if refused:
        named = ", ".join(f"`{name}` ({kind})" for name, kind in refused.items())
        raise ConfigError(
            f"{key}: {type(obj).__name__} saves {named} with save_hyperparameters(), so none of "
            "the run's checkpoints could be opened: goodfit opens them as data only (tensors and "
            "plain values), to test the best one, to resume, in eval.py and predict. Leave them "
            f"out: self.save_hyperparameters(ignore={list(refused)})"
        )


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The callbacks of conf/callbacks (and any added with +callbacks.<name>), skipping those
    set to null. Nothing is added that the config does not list."""
    callbacks = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None:
            continue
        if name == "lr_monitor" and not cfg.get("logger"):
            log.info("callbacks.lr_monitor is off: it logs to a logger, and there is none")
            continue
        with user_errors_of(f"callbacks.{name}", cb_cfg):
            callback = instantiate(cb_cfg)
        if not isinstance(callback, L.Callback):
            raise ConfigError(f"callbacks.{name}: {type(callback).__name__} is not a Callback")
        warn_misspelled_hooks(f"callbacks.{name}", callback, L.Callback)
        callbacks.append(callback)
    return callbacks


def warn_misspelled_hooks(key: str, obj: Any, base: type) -> None:
    """Lightning calls hooks by their exact names, so a method named like one but misspelt
    (`on_train_epoch_ended`) is silently never called: say so when the object is built."""
    hooks = [n for n in dir(base) if n.startswith("on_")]
    for name in sorted(set(dir(type(obj))) - set(dir(base))):
        close = difflib.get_close_matches(name, hooks, n=1, cutoff=0.85)
        if name.startswith("on_") and close:
            log.warning("%s: %s.%s is not a Lightning hook and will never be called; did you "
                        "mean %s?", key, type(obj).__name__, name, close[0])  # fmt: skip


def build_loggers(cfg: DictConfig) -> list[Any]:
    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if logger_cfg is not None:
            with user_errors_of(f"logger.{name}", logger_cfg):
                loggers.append(instantiate(logger_cfg))
    return loggers


def build_trainer(cfg: DictConfig, callbacks: list[Any], loggers: list[Any],
                  **overrides: Any) -> L.Trainer:  # fmt: skip
    """The `trainer` group's Trainer with the run's callbacks and loggers; checkpoints written
    atomically, with the run's resolved config inside, and opened only as data."""
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar

    if cfg.get("perf", {}).get("noop_profiler") and not cfg.trainer.get("profiler"):
        from goodfit.runtime.profiler import NoProfiler

        overrides.setdefault("profiler", NoProfiler())
    run_config = OmegaConf.to_container(cfg, resolve=True)
    factory = instantiate(cfg.trainer, _partial_=True)
    try:
        with user_errors_of("trainer", cfg.trainer):
            return factory(
                callbacks=callbacks,
                logger=loggers or False,
                enable_checkpointing=any(isinstance(cb, ModelCheckpoint) for cb in callbacks),
                enable_progress_bar=any(isinstance(cb, ProgressBar) for cb in callbacks),
                # the model summary is the configured callback or none: Lightning would add one
                # when none is configured (callbacks.rich_model_summary=null)
                enable_model_summary=False,
                plugins=[RunCheckpointIO(run_config)],
                **overrides,
            )
    except ConfigError:
        raise
    except TRAINER_REFUSALS as err:
        raise ConfigError(_trainer_refusal(cfg, err)) from None


def _trainer_refusal(cfg: DictConfig, err: Exception) -> str:
    """Lightning's reason for refusing the Trainer, with the key it is about: the one whose value
    the message quotes (`Precision 'fp8' is invalid`), else the devices asked for."""
    for key, value in cfg.trainer.items():
        if isinstance(value, str | int) and f"'{value}'" in str(err):
            return f"trainer.{key}={value}: Lightning refuses it: {err}"
    settings = ", ".join(f"{k}={cfg.trainer.get(k)}" for k in ("accelerator", "devices"))
    return f"trainer ({settings}): Lightning refuses it on this machine: {err}{_device_hint(cfg)}"


def _device_hint(cfg: DictConfig) -> str:
    if str(cfg.trainer.get("accelerator")) in ("gpu", "cuda") and not torch.cuda.is_available():
        return f"; {NO_GPU}"
    return ""


NO_GPU = ("this machine has no CUDA GPU that torch can use: trainer=default takes a GPU when "
          "there is one, trainer=cpu runs on the CPU")  # fmt: skip


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU asked for on a machine without one is refused before any work (Lightning refuses
    it only when the Trainer is built, once the data is read)."""
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    accelerator = str(cfg.trainer.get("accelerator"))
    if accelerator == "gpu" and MPSAccelerator.is_available():
        return  # Lightning's "gpu" is Apple's MPS there
    if accelerator in ("gpu", "cuda") and not CUDAAccelerator.is_available():
        if cfg.get("resume") not in (None, "auto"):  # a resumed run keeps its own trainer
            raise ConfigError(f"resume={cfg.resume}: the run trains with trainer.accelerator="
                              f"{accelerator}, and this machine has no CUDA GPU that torch can "
                              "use; resume it on a machine with one")  # fmt: skip
        raise ConfigError(f"trainer.accelerator={accelerator}: {NO_GPU}")
