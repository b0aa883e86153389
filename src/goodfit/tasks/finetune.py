"""Transfer learning as the report describes it: a backbone pretrained on a source task, a new
head trained on its bottleneck features (computed once), then the top block unfrozen and tuned
with a slow SGD; and the same network trained from scratch on the same data, for comparison.

`experiment=finetune` runs all of it in one run folder:

    <run>/pretrain/   experiment=pretrain (skipped with transfer.backbone_path=… or
                      pretrained model weights): its own full record and backbone.pt
    <run>/head/       the head on the frozen backbone's features: TensorBoard curves
    <run>/            the fine-tuning run itself: the usual record
    <run>/scratch/    the identical network and data, from random weights
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from goodfit.hydra_ext import hydra_config
from goodfit.hydra_ext.overrides import override_key
from goodfit.lit.rehearsal import rehearse_optimizer
from goodfit.models.backbone import BACKBONE_FILE, backbone_of, load_backbone
from goodfit.records.summary import print_transfer_summary
from goodfit.runtime.atomic import write_json_atomic
from goodfit.runtime.distributed import is_rank_zero
from goodfit.runtime.errors import ConfigError
from goodfit.tasks import assemble, train
from goodfit.tasks.feature_head import train_head

log = logging.getLogger(__name__)

# Command-line overrides that describe the network and the LightningModule that trains it, the
# machine, the data set and its files or how runs are recorded (with every `model.*`,
# `module.*`, `paths.*`, `callbacks.*` and `logger.*` key, and every `datamodule.*` key but
# TARGET_TASK_KEYS), and so are passed on to the pretraining run; the rest describe the target
# task.
FORWARDED_KEYS = ("model", "module", "seed", "trainer", "debug", "paths", "trainer.accelerator",
                  "trainer.devices", "trainer.precision", "datamodule", "perf")  # fmt: skip
TARGET_TASK_KEYS = (
    "datamodule.classes", "datamodule.train_subset", "datamodule.batch_size",
    "datamodule.val_split", "datamodule.val_split_mode", "datamodule.seed",
)  # fmt: skip


# ---------------------------------------------------------------- the runs around the main one


def config_dir() -> Path:
    root = os.environ.get("GOODFIT_ROOT") or Path(__file__).resolve().parents[3]
    return Path(root) / "conf"


@contextmanager
def hydra_compose_ready() -> Iterator[None]:
    """Hydra's compose API: inside `train.py` it is ready; elsewhere (a test calling run())
    it is initialised on goodfit's conf folder for the duration."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield


def command_line_overrides(cfg: DictConfig) -> list[str]:
    """The overrides this study was started with (a resumed study's original ones)."""
    if cfg.get("resume"):
        saved = Path(cfg.resume) / ".hydra" / "overrides.yaml"
        return list(OmegaConf.load(saved)) if saved.is_file() else []
    return hydra_config.task_overrides()


def forwarded(overrides: Iterable[str]) -> list[str]:
    """The overrides about the network, machine and data files (FORWARDED_KEYS); a target
    task's own `model.num_classes` stays behind."""
    kept = []
    for override in overrides:
        key = override_key(override)
        if key == "model.num_classes":
            continue
        group = key.split(".")[0]
        if (
            key in FORWARDED_KEYS
            or group in ("model", "module", "paths", "callbacks", "logger")
            or (group == "datamodule" and key not in TARGET_TASK_KEYS)
        ):
            kept.append(override)
    return kept


def apply_changes(cfg: DictConfig, changes: DictConfig | None) -> None:
    """Merge `changes` into `cfg`, except that a node whose `_target_` changes (another
    optimizer, say) replaces the old node rather than mixing arguments of the two."""
    for key, value in (changes or {}).items():
        old = cfg.get(key)
        if (isinstance(value, DictConfig) and isinstance(old, DictConfig)
                and value.get("_target_") in (None, old.get("_target_"))):  # fmt: skip
            apply_changes(old, value)
        else:
            with open_dict(cfg):
                cfg[key] = value


def pretrain_config(cfg: DictConfig, folder: Path) -> tuple[DictConfig, dict[str, Any]]:
    """`experiment=pretrain` with this run's network, machine and data overrides and the
    changes in `transfer.pretrain`, writing into `folder`; and its group choices."""
    from hydra import compose

    saved_run = Path(cfg.resume) if cfg.get("resume") else None
    overrides = ["experiment=pretrain", *forwarded(command_line_overrides(cfg)),
                 *hydra_config.searchpath_overrides(saved_run)]  # fmt: skip
    with hydra_compose_ready():
        composed = compose("train", overrides=overrides, return_hydra_config=True)
    choices = dict(composed.hydra.runtime.choices)
    with open_dict(composed):
        del composed["hydra"]
        composed.paths.output_dir = str(folder)
        composed.study_dir = str(folder.parent)  # an interrupted step resumes with its study
    apply_changes(composed, cfg.transfer.get("pretrain"))
    return composed, choices


def scratch_config(cfg: DictConfig, folder: Path) -> DictConfig:
    """This run's config (the identical network and data) with the changes in
    `transfer.scratch`, from random weights, writing into `folder`."""
    scratch = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(scratch, True)
    apply_changes(scratch, cfg.transfer.get("scratch"))
    with open_dict(scratch):
        scratch.transfer = None
        scratch.callbacks.pop("unfreeze_top_blocks", None)  # nothing to unfreeze from scratch
        scratch.resume = None
        scratch.name = f"{cfg.get('name')}_scratch"
        scratch.paths.output_dir = str(folder)
        scratch.study_dir = str(folder.parent)
        if "weights_path" in scratch.model:
            scratch.model.weights_path = None
    return scratch


def completed_test_acc(folder: Path) -> float | None:
    """The test accuracy in a finished run folder's summary.json, else None."""
    path = folder / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return float(summary["test_acc"]) if summary.get("status") == "completed" else None


def _fresh(folder: Path) -> None:
    """An unfinished step's folder is replaced when the study reruns it."""
    if folder.exists():
        shutil.rmtree(folder)


def needs_pretraining(cfg: DictConfig) -> bool:
    """No backbone given and no pretrained weights in the network: the study pretrains one."""
    return not (cfg.transfer.get("backbone_path") or cfg.model.get("weights_path"))


def pretrained_backbone(
    cfg: DictConfig, run_dir: Path, pretrain: tuple[DictConfig, dict[str, Any]] | None
) -> tuple[Path | None, dict[str, Any]]:
    """The backbone.pt to load (None: the network's own pretrained weights) and what
    summary.json records of it. Without a given backbone, one is pretrained now in
    `<run>/pretrain/` with `pretrain` (`pretrain_config`'s config and choices), or reused when a
    resumed study finished it."""
    backbone_path = cfg.transfer.get("backbone_path")
    if backbone_path:
        return Path(backbone_path), {"backbone": str(Path(backbone_path).resolve())}
    if pretrain is None:  # the network's own pretrained weights (model.weights_path)
        return None, {"backbone": f"model.weights_path={cfg.model.weights_path}"}
    folder = run_dir / "pretrain"
    path = folder / BACKBONE_FILE
    if not path.is_file():
        _fresh(folder)
        pre_cfg, choices = pretrain
        log.info("Pretraining the backbone on classes %s in %s",
                 pre_cfg.datamodule.classes, folder)  # fmt: skip
        train.run(pre_cfg, choices)
    return path, {"pretrain_test_acc": completed_test_acc(folder), "backbone": str(path)}


def scratch_test_acc(cfg: DictConfig, choices: dict[str, Any], run_dir: Path) -> float:
    """Train the identical network on the identical data from random weights; its test
    accuracy (reused when a resumed study finished it already)."""
    folder = run_dir / "scratch"
    done = completed_test_acc(folder)
    if done is not None:
        return done
    _fresh(folder)
    log.info("Training the same network from scratch on the same data in %s", folder)
    choices = dict(choices)
    for group, change in (cfg.transfer.get("scratch") or {}).items():
        if isinstance(change, DictConfig) and change.get("_target_"):
            choices[group] = change._target_.rsplit(".", 1)[-1].lower()  # e.g. adamw
    return float(train.run(scratch_config(cfg, folder), choices)["test_acc"])


def check_steps(cfg: DictConfig, run_dir: Path, pretrain_cfg: DictConfig | None) -> None:
    """Every step's config checked before the first step trains (`pretrain_cfg`: the
    pretraining run's, None without one): a bad value in the fine-tuning run or the
    from-scratch one would otherwise surface after minutes of pretraining."""
    train.preflight(cfg)
    head_optimizer = (cfg.transfer.get("head") or {}).get("optimizer")
    if head_optimizer is not None:
        rehearse_optimizer(instantiate(head_optimizer), "transfer.head.optimizer",
                           head_optimizer.get("_target_"))  # fmt: skip
    steps = []  # in the order the study runs them
    if pretrain_cfg is not None:
        steps.append(("the pretraining run (experiment=pretrain with transfer.pretrain)",
                      pretrain_cfg))  # fmt: skip
    steps.append(("the from-scratch run (transfer.scratch merged over this config)",
                  scratch_config(cfg, run_dir / "scratch")))  # fmt: skip
    for step, step_cfg in steps:
        try:
            train.preflight(step_cfg)
        except ConfigError as err:
            raise ConfigError(f"In {step}: {err}") from None


def run(cfg: DictConfig, choices: dict[str, Any] | None = None, *,
        resuming: bool = False) -> dict[str, Any]:  # fmt: skip
    """The whole study in one run folder: pretrain (unless a backbone is given), the head on
    bottleneck features, the fine-tuning run itself, and the from-scratch comparison."""
    choices = choices if choices is not None else hydra_config.choices()
    run_dir = Path(cfg.paths.output_dir)
    if not resuming:
        train.check_run_dir_unused(run_dir)
    # Composed once: checked now, trained from later.
    pretrain = pretrain_config(cfg, run_dir / "pretrain") if needs_pretraining(cfg) else None
    check_steps(cfg, run_dir, pretrain[0] if pretrain else None)
    backbone_path, record = pretrained_backbone(cfg, run_dir, pretrain)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    prepared = assemble.prepare(cfg)  # after pretraining, which published its own data facts
    if backbone_path is None:
        backbone_of(prepared.net)  # the network's own pretrained weights are the backbone
    else:
        given = bool(cfg.transfer.get("backbone_path"))
        load_backbone(prepared.net, backbone_path,
                      "transfer.backbone_path" if given else "the pretrained backbone")  # fmt: skip
    record["head_test_acc"] = train_head(
        prepared.net, prepared.datamodule, cfg.transfer.head, int(cfg.seed), run_dir / "head"
    )
    log.info("Head on the frozen backbone: test accuracy %.4f", record["head_test_acc"])
    summary = train.run(cfg, choices, resuming=resuming, prepared=prepared, extra_record=record)
    scratch_acc = scratch_test_acc(cfg, choices, run_dir)
    summary.update(scratch_test_acc=scratch_acc,
                   transfer_gain=round(summary["test_acc"] - scratch_acc, 4))  # fmt: skip
    if is_rank_zero():  # the other processes' summaries lack what only the first one writes
        write_json_atomic(run_dir / "summary.json", summary)
        print_transfer_summary(summary)
    return summary
