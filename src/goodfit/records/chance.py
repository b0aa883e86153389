"""Held-out accuracy at chance: the first thing a verdict says, before any curve's shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from goodfit.records.findings import OVERFITTING, UNDERFITTING, Findings


@dataclass(frozen=True)
class AtChance:
    """The best validation or test accuracy, and chance and the limit it stayed below."""

    best: float
    chance: float
    limit: float
    num_classes: int


def near_chance(val_accs: Sequence[float], test_acc: float | None, num_classes: int | None,
                 margin: float) -> AtChance | None:  # fmt: skip
    """Whether the best accuracy on held-out images stays within `margin` of the way from chance
    (1 / classes) to perfect; None when it does not (or the classes are unknown)."""
    if not num_classes or num_classes < 2:
        return None
    accuracies = [*val_accs, *([test_acc] if test_acc is not None else [])]
    if not accuracies:
        return None
    chance = 1.0 / num_classes
    limit = chance + margin * (1.0 - chance)
    best = max(accuracies)
    return AtChance(best, chance, limit, num_classes) if best < limit else None


def judge_at_chance(
    at: AtChance, train_accs: Sequence[float], measured_acc: float | None, found: Findings
) -> None:
    """Held-out accuracy at chance comes first in the verdict. With the training accuracy at
    chance too, the model learns nothing: underfitting, and a gap between its losses is no
    overfitting. With the training accuracy well above it, the model fits its training images
    alone: overfitting. The training accuracy is the one measured as validation is
    (`measured_acc`, callbacks.train_eval) when recorded: the curve's is an epoch's mean in
    training mode, which batch norm's batch statistics can lift above what the model does."""
    where = (f"The best accuracy ({at.best:.4f}) stays near chance ({at.chance:.4f} for "
             f"{at.num_classes} classes; below {at.limit:.4f})")  # fmt: skip
    train_acc = measured_acc if measured_acc is not None else (train_accs or [None])[-1]
    measured = " measured as validation is (train_eval/acc)" if measured_acc is not None else ""
    if train_acc is not None and train_acc >= at.limit:
        label = OVERFITTING
        reason = (f"{where} on held-out images, while the training accuracy{measured} reached "
                  f"{train_acc:.4f}: the model fits its training images without learning "
                  "what carries over to others.")  # fmt: skip
    else:
        label = UNDERFITTING
        reason = (f"{where}: the model is not learning. Check the learning rate, the data and "
                  "the batch size.")  # fmt: skip
        if measured and train_accs and train_accs[-1] >= at.limit:
            reason += (f" The training curve's accuracy reached {train_accs[-1]:.4f} (the "
                       "epoch's mean in training mode), but measured as validation is "
                       f"(train_eval/acc) the training images are at {measured_acc:.4f}, near "
                       "chance too.")  # fmt: skip
        if OVERFITTING in found.labels:
            found.labels.remove(OVERFITTING)
            found.reasons.append(
                "With its accuracy at chance the model has learned nothing to overfit: its "
                "losses' gap is not counted as overfitting."
            )
    if label in found.labels:
        found.labels.remove(label)
    found.labels.insert(0, label)
    found.reasons.insert(0, reason)
