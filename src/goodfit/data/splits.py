"""Which samples go where: validation and test cuts, class subsets, per-class subsets.
Bad settings raise ConfigError (a ValueError) naming the key."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Literal

import torch

from goodfit.runtime.errors import ConfigError


def split_indices(
    n: int, val_split: float, mode: Literal["tail", "random"], seed: int,
    key: str = "datamodule.val_split",
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Kept and held-out indices. `tail` is Keras's `validation_split`: the last fraction,
    unshuffled. `random` is a seeded random subset (in random order)."""
    if not 0.0 < val_split < 1.0:
        raise ConfigError(f"{key}={val_split}: must be in (0, 1)")
    # Keras: split_at = floor(n * (1 - split)); the epsilon keeps 0.94 * 60000 at 56400.
    n_train = max(1, min(n - 1, math.floor(n * (1.0 - val_split) + 1e-9)))
    n_val = n - n_train
    if mode == "tail":
        order = torch.arange(n)
    elif mode == "random":
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    else:
        raise ConfigError(f"datamodule.val_split_mode={mode!r}: must be 'tail' or 'random'")
    return order[: n - n_val], order[n - n_val :]


def per_class_subset(labels: torch.Tensor, indices: torch.Tensor, per_class: int,
                     seed: int) -> torch.Tensor:  # fmt: skip
    """`per_class` of `indices` for every class, chosen at random with `seed` (in data order)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in labels.unique().tolist():
        members = indices[labels == label]
        if len(members) < per_class:
            raise ConfigError(
                f"datamodule.train_subset={per_class}: class {label} has only {len(members)} "
                "training images"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values


def check_classes(classes: Sequence[int | str] | None,
                  class_names: Sequence[str]) -> tuple[int, ...] | None:  # fmt: skip
    """`datamodule.classes`: distinct classes, each a number in 0..n-1 or a name of
    `class_names`, as numbers; None for all."""
    if classes is None:
        return None
    n_classes = len(class_names)
    numbers = tuple(_class_number(c, class_names) for c in classes)
    valid = all(isinstance(c, int) and 0 <= c < n_classes for c in numbers)
    if not numbers or not valid or len(set(numbers)) != len(numbers):
        raise ConfigError(
            f"datamodule.classes={list(classes)}: must be distinct class numbers in "
            f"0..{n_classes - 1} or names of the data's classes (at least one), or null for "
            f"all {n_classes}: {', '.join(map(str, class_names))}"
        )
    return numbers


def _class_number(value: int | str, class_names: Sequence[str]) -> int | None:
    """A class given by number as it is, by name as its number (a name it does not have: a
    ConfigError with the nearest one)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    if isinstance(value, int):
        return value
    if value in class_names:
        return list(class_names).index(value)
    close = difflib.get_close_matches(value, list(class_names), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f": one of {', '.join(class_names)}"
    raise ConfigError(f"datamodule.classes: the data has no class named {value!r}{hint}")


def relabel(labels: torch.Tensor, classes: Sequence[int],
            n_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Labels renumbered 0..len(classes)-1 in the order of `classes` (others -1), and the mask
    of the samples whose class is kept."""
    mapping = torch.full((n_classes,), -1, dtype=labels.dtype)
    mapping[list(classes)] = torch.arange(len(classes), dtype=labels.dtype)
    new = mapping[labels]
    return new, new >= 0
