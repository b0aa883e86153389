"""Checks on the composed config, run before any work: each error names key, value, allowed."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from goodfit.runtime.errors import ConfigError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _at_least(low: int, note: str = "") -> tuple[Callable[[Any], bool], str]:
    """The rule for an integer >= `low`; `note` follows the allowed values (" (steps)")."""
    return (lambda v: _is_int(v) and v >= low), f"an integer >= {low}{note}"


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _image_size(v: Any) -> bool:
    if v is None or (_is_int(v) and v >= 1):
        return True
    return _is_list(v) and len(v) == 2 and all(_is_int(n) and n >= 1 for n in v)


def _is_list(v: Any) -> bool:
    return isinstance(v, (list, tuple, ListConfig))


FILE_KEYS = {"train_images", "train_labels", "test_images", "test_labels"}

# The datamodules' own keys (conf/datamodule/*.yaml); a key a datamodule lacks is not checked.
DATA_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "datamodule.hflip": (lambda v: _is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "datamodule.image_size": (
        _image_size,
        "an integer >= 1, [height, width], or null for the most common size",
    ),
    "datamodule.channels": (
        lambda v: v is None or (_is_int(v) and v in (1, 3)),
        "1 (gray), 3 (RGB), or null to decide from the images",
    ),
    "datamodule.test_split": (lambda v: _is_number(v) and 0 < v < 1, "a fraction in (0, 1)"),
    "datamodule.split_seed": _at_least(0),
    "datamodule.num_workers": (
        lambda v: v is None or (_is_int(v) and v >= 1),
        "an integer >= 1, or null for every core available",
    ),
    "datamodule.skip_bad_images": (_is_bool, "true or false"),
    "datamodule.cache": (_is_bool, "true or false"),
    "datamodule.cache_dir": (
        lambda v: v is None or (isinstance(v, str) and v != ""),
        "a folder, or null for the data folder itself",
    ),
    "datamodule.extensions": (
        lambda v: (
            _is_list(v) and len(v) > 0 and all(isinstance(e, str) and e.startswith(".") for e in v)
        ),
        "a list of file name endings such as [.png, .jpg]",
    ),
    "datamodule.download": (_is_bool, "true or false"),
    "datamodule.verify_checksums": (_is_bool, "true or false"),
    "datamodule.transpose": (_is_bool, "true or false"),
    "datamodule.label_offset": _at_least(0),
    "datamodule.class_names": (
        lambda v: (
            _is_list(v)
            and len(v) >= 2
            and len(set(map(str, v))) == len(v)
            and all(isinstance(n, (str, int)) and not _is_bool(n) for n in v)
        ),
        "a list of at least two distinct names, in label order",
    ),
    "datamodule.files": (
        lambda v: (
            isinstance(v, (dict, DictConfig))
            and set(v) == FILE_KEYS
            and all(isinstance(n, str) and n for n in v.values())
        ),
        f"file names for exactly {sorted(FILE_KEYS)}",
    ),
}

# key → (check, what is allowed). A key absent from the config is not checked.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _at_least(0),
    "datamodule.val_split": (lambda v: _is_number(v) and 0 < v < 1, "a fraction in (0, 1)"),
    "datamodule.val_split_mode": (lambda v: v in ("tail", "random"), "'tail' or 'random'"),
    "datamodule.normalize": (lambda v: v in ("scale", "standardize"), "'scale' or 'standardize'"),
    "datamodule.batch_size": _at_least(1),
    "datamodule.eval_batch_size": _at_least(1),
    "trainer.max_epochs": (
        lambda v: v is None or (_is_int(v) and (v >= 1 or v == -1)),
        "an integer >= 1, or -1 for no limit",
    ),
    "datamodule.train_subset": (
        lambda v: v is None or (_is_int(v) and v >= 1),
        "an integer >= 1 (images per class), or null for all",
    ),
    "optimizer.lr": (lambda v: _is_number(v) and 0 < v < math.inf, "a finite number > 0"),
    "model.compile": (lambda v: isinstance(v, bool), "true or false"),
    "augmentation.max_shift": (lambda v: _is_number(v) and 0 <= v <= 1, "a fraction in [0, 1]"),
    "augmentation.max_rotation": (lambda v: _is_number(v) and 0 <= v <= 180, "degrees in [0, 180]"),
    "augmentation.hflip": (lambda v: _is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "augmentation.erase": (lambda v: _is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "callbacks.rich_progress_bar.update_every": _at_least(1, " (batches)"),
    "callbacks.rich_progress_bar.refresh_rate": _at_least(0, " (redraws per second; 0: no bar)"),
    "callbacks.rich_model_summary.max_depth": (
        lambda v: _is_int(v) and v >= -1,
        "an integer >= 1 (levels of layers), 0 for no summary or -1 for every level",
    ),
    **{
        f"callbacks.{name}.save_top_k": (
            lambda v: _is_int(v) and v >= -1,
            "an integer >= 0 (checkpoints kept), or -1 for all",
        )
        for name in ("model_checkpoint", "last_checkpoint")
    },
    **{
        f"callbacks.{name}.mode": (lambda v: v in ("min", "max"), "'min' or 'max'")
        for name in ("model_checkpoint", "last_checkpoint")
    },
    "callbacks.augmentation_preview.n_images": _at_least(1),
    "callbacks.augmentation_preview.n_versions": _at_least(1),
    "callbacks.stop_on_divergence.check_every_n_steps": _at_least(1, " (steps)"),
    "callbacks.train_eval.n_images": (
        lambda v: v is None or (_is_int(v) and v >= 1),
        "an integer >= 1, or null for as many as the validation set",
    ),
    "callbacks.train_eval.batch_size": _at_least(1),
    "callbacks.train_eval.seed": _at_least(0),
    "callbacks.early_stopping.patience": _at_least(0),
    "callbacks.early_stopping.mode": (lambda v: v in ("min", "max"), "'min' or 'max'"),
    "callbacks.early_stopping.min_delta": (
        lambda v: _is_number(v) and 0 <= v < math.inf,
        "a finite number >= 0",
    ),
    "resume": (lambda v: v is None or isinstance(v, str), "a run folder, auto, or null"),
    "model.dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "datamodule.classes": (
        lambda v: (
            v is None
            or (
                _is_list(v)
                and len(v) > 0
                and len(set(v)) == len(v)
                and all((_is_int(c) and c >= 0) or isinstance(c, str) for c in v)
            )
        ),
        "distinct class numbers (>= 0, below the number of classes) or class names, or null "
        "for all",
    ),
    "save_backbone": (lambda v: isinstance(v, bool), "true or false"),
    "perf.manual_optimization": (lambda v: isinstance(v, bool), "true or false"),
    "perf.steps_per_batch": _at_least(1),
    "perf.fast_dispatch": (lambda v: isinstance(v, bool), "true or false"),
    "perf.noop_profiler": (lambda v: isinstance(v, bool), "true or false"),
    "trust_checkpoint": (lambda v: isinstance(v, bool), "true or false"),
    "trainer.gradient_clip_val": (
        lambda v: v is None or (_is_number(v) and v >= 0),
        "a number >= 0, or null for no clipping",
    ),
    "trainer.gradient_clip_algorithm": (
        lambda v: v in (None, "norm", "value"),
        "'norm' or 'value' (null: norm)",
    ),
    "trainer.accumulate_grad_batches": _at_least(1),
    "trainer.check_val_every_n_epoch": (
        lambda v: v is None or (_is_int(v) and v >= 1),
        "an integer >= 1 (epochs), or null to validate by trainer.val_check_interval alone",
    ),
    **{
        f"trainer.limit_{stage}_batches": (
            lambda v: v is None or (_is_int(v) and v >= 1) or (isinstance(v, float) and 0 < v <= 1),
            f"an integer >= 1 (batches) or a fraction in (0, 1]; 0 would {would}",
        )
        for stage, would in (
            ("train", "train nothing (eval.py tests a trained model)"),
            ("val", "never validate (no validation curve, no best checkpoint, no verdict)"),
            ("test", "test nothing (the run's record is its test figures)"),
        )
    },
    "trainer.min_epochs": (lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0"),
    "scheduler.interval": (lambda v: v in ("epoch", "step"), "'epoch' or 'step'"),
    **DATA_RULES,
    "transfer.unfreeze_top_blocks": _at_least(1),
    "transfer.unfreeze_at_epoch": _at_least(0),
    "transfer.top_lr_ratio": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "transfer.head.epochs": _at_least(1),
    "transfer.head.batch_size": _at_least(1),
    "logger.tensorboard.renamed": (
        lambda v: (
            v is None
            or (
                isinstance(v, Mapping) and all(isinstance(x, str) for x in [*v.keys(), *v.values()])
            )
        ),
        "a mapping of tag prefix to its replacement, both text (e.g. {test/: verdict/test_}), "
        "or {}",
    ),  # fmt: skip
    "callbacks.optuna_pruning.monitor": (
        lambda v: isinstance(v, str) and v != "",
        "the name of a metric the run logs every epoch (e.g. val/acc)",
    ),
}


def _cross_key_problems(cfg: DictConfig) -> list[str]:
    """Values allowed alone but not together."""
    steps = OmegaConf.select(cfg, "perf.steps_per_batch", default=1)
    manual = OmegaConf.select(cfg, "perf.manual_optimization", default=False)
    if _is_int(steps) and steps > 1 and manual is False:
        return [f"perf.steps_per_batch={steps} needs perf.manual_optimization=true (Lightning's "
                "automatic optimization takes one step per batch); or use perf=fast"]  # fmt: skip
    every = OmegaConf.select(cfg, "trainer.check_val_every_n_epoch", default=None)
    epochs = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    if _is_int(every) and _is_int(epochs) and epochs >= 1 and every > epochs:
        return [f"trainer.check_val_every_n_epoch={every} is more than trainer.max_epochs="
                f"{epochs}: the run would never validate (no validation curve, no best "
                "checkpoint, no verdict)"]  # fmt: skip
    classes = OmegaConf.select(cfg, "datamodule.classes", default=None)
    names = OmegaConf.select(cfg, "datamodule.class_names", default=None)
    numbers = [c for c in classes or () if _is_int(c)]
    if numbers and names and max(numbers) >= len(names):
        return [f"datamodule.classes={list(classes)} is not allowed: must be class numbers "
                f"in 0..{len(names) - 1} (datamodule.class_names has {len(names)})"]  # fmt: skip
    return []


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that is not allowed."""
    problems = []
    for key, (check, allowed) in RULES.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is _MISSING:
            continue
        if not check(value):
            problems.append(f"{key}={value!r} is not allowed: must be {allowed}")
    if not problems:
        problems = _cross_key_problems(cfg)
    if problems:
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(problems))


_MISSING = object()
