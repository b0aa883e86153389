"""Fit diagnosis: a verdict on a run from its per-epoch history and its data sizes alone.

Pure functions of plain numbers (no torch, no files), so the training run and the report on old
run folders reach the same verdict. The thresholds are `conf/diagnosis/default.yaml`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from goodfit.records.fit_thresholds import Thresholds
from goodfit.records.intervals import wilson_interval

GOOD_FIT = "good fit"
OVERFITTING = "overfitting"
UNDERFITTING = "underfitting"
UNRELIABLE_VALIDATION = "unreliable validation"
# One epoch gives no trend: whether the model had more to learn is unknown.
TOO_SHORT = "too short to judge"


@dataclass
class Diagnosis:
    """The verdict (one or more labels), the sentences behind it, and the figures it used."""

    labels: list[str]
    reasons: list[str]
    generalization_gap: float | None
    best_val_loss_epoch: int | None
    val_loss_rise: float | None
    still_falling: bool | None
    val_acc_ci95: tuple[float, float] | None
    test_acc_ci95: tuple[float, float] | None
    eval_mode_gap: float | None = None  # the gap to train_eval/loss (callbacks.train_eval)

    @property
    def verdict(self) -> str:
        return ", ".join(self.labels)

    def to_summary(self) -> dict[str, Any]:
        """The keys this diagnosis adds to summary.json."""
        data = asdict(self)
        del data["labels"]
        data = {"verdict": self.verdict, "verdict_reasons": data.pop("reasons"), **data}
        for key in ("val_acc_ci95", "test_acc_ci95"):
            data[key] = list(data[key]) if data[key] is not None else None
        return data


def _relative_fall_per_epoch(values: Sequence[float], epochs: int, window: int) -> float:
    """How much a loss fell per epoch over its last `window` recorded values, which span
    `epochs` epochs, as a fraction of its final value (negative when it rose)."""
    start, end = values[-1 - window], values[-1]
    return (start - end) / epochs / max(abs(end), 1e-12)


@dataclass(frozen=True)
class _AtChance:
    """The best validation or test accuracy, and chance and the limit it stayed below."""

    best: float
    chance: float
    limit: float
    num_classes: int


def _near_chance(val_accs: Sequence[float], test_acc: float | None, num_classes: int | None,
                 margin: float) -> _AtChance | None:  # fmt: skip
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
    return _AtChance(best, chance, limit, num_classes) if best < limit else None


def _judge_at_chance(
    at: _AtChance, train_accs: Sequence[float], measured_acc: float | None, found: _Findings
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


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


class _Findings:
    """The labels and the sentences behind them, in the order the checks ran."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.reasons: list[str] = []

    def add(self, reason: str, label: str | None = None) -> None:
        if label is not None and label not in self.labels:
            self.labels.append(label)
        self.reasons.append(reason)


def _check_gap(train: Sequence[float], val: Sequence[float], t: Thresholds,
               found: _Findings) -> float:  # fmt: skip
    """The generalization gap (the report's measure of a good fit): final val − train loss."""
    gap = val[-1] - train[-1]
    relative_gap = gap / max(abs(train[-1]), 1e-12)
    side = "above" if gap >= 0 else "below"
    text = (f"The final validation loss ({val[-1]:.4f}) is {abs(gap):.4f} {side} the final "
            f"training loss ({train[-1]:.4f}), {_pct(abs(relative_gap))} of it")  # fmt: skip
    if relative_gap > t.max_relative_gap:
        found.add(f"{text}: a gap wider than the {_pct(t.max_relative_gap)} allowed.", OVERFITTING)
    elif gap >= 0:
        found.add(f"{text}: within the {_pct(t.max_relative_gap)} allowed.")
    else:
        found.add(f"{text}: no gap (the training loss is averaged over the epoch as the "
                  "model learned, with dropout or augmentation on; validation comes at its "
                  "end).")  # fmt: skip
    return gap


def _eval_mode_gap(last: Mapping[str, Any], gap: float, found: _Findings) -> float | None:
    """The gap to the training loss measured as validation is (callbacks.train_eval), said
    beside the curve's: information, not a verdict (the thresholds apply to the curve's)."""
    measured = last.get("train_eval_loss")
    if measured is None:
        return None
    eval_gap = float(last["val_loss"]) - float(measured)
    found.add(f"Measured as validation is (eval mode, the same weights: train_eval/loss), the "
              f"final training loss is {float(measured):.4f} and the gap {eval_gap:+.4f}, "
              f"{_pct(abs(eval_gap) / max(abs(float(measured)), 1e-12))} of it, against "
              f"{gap:+.4f} from the training curve, whose epoch mean (dropout on, weights "
              "still changing) the verdict's limits apply to.")  # fmt: skip
    return eval_gap


def _check_val_minimum(
    train: Sequence[float], val: Sequence[float], numbers: Sequence[int], t: Thresholds,
    found: _Findings,
) -> tuple[int, float]:  # fmt: skip
    """Did the validation loss turn upwards after its minimum? Its index and the rise after."""
    best = min(range(len(val)), key=val.__getitem__)
    rise = (val[-1] - val[best]) / max(abs(val[best]), 1e-12)
    lowest = f"The validation loss was lowest at epoch {numbers[best]} ({val[best]:.4f})"
    if best == len(val) - 1:
        found.add(f"The validation loss was lowest at the last epoch ({numbers[best]}).")
    elif rise > t.max_val_loss_rise:
        found.add(f"{lowest} and ended {_pct(rise)} above it, more than the "
                  f"{_pct(t.max_val_loss_rise)} allowed.", OVERFITTING)  # fmt: skip
    else:
        found.add(f"{lowest} and ended only {_pct(rise)} above it "
                  f"(allowed: {_pct(t.max_val_loss_rise)}).")  # fmt: skip
    ups = [numbers[i] for i in range(1, len(val))
           if val[i] > val[i - 1] and train[i] < train[i - 1]]  # fmt: skip
    if ups and OVERFITTING in found.labels:
        found.add("The validation loss went up while the training loss went down at epoch"
                  f"{'s' if len(ups) > 1 else ''} {', '.join(map(str, ups))}.")  # fmt: skip
    return best, rise


def _check_trend(train: Sequence[float], val: Sequence[float], numbers: Sequence[int],
                 t: Thresholds, found: _Findings) -> bool | None:  # fmt: skip
    """Were both losses still falling when training stopped? None after a single validated
    epoch. `numbers` are the epochs of the values (every n-th when validation skips some)."""
    if len(train) < 2:
        ran = ("Only one epoch ran" if numbers[0] == 1
               else f"Only one epoch (epoch {numbers[0]}) was validated")  # fmt: skip
        found.add(f"{ran}, so the trend of the losses is unknown: whether the model had more "
                  "to learn cannot be told. Train 2 epochs or more to judge it.")  # fmt: skip
        return None
    window = min(t.trend_window, len(train) - 1)
    span = numbers[-1] - numbers[-1 - window]
    train_rate = _relative_fall_per_epoch(train, span, window)
    val_rate = _relative_fall_per_epoch(val, span, window)
    still_falling = train_rate > t.falling_rate and val_rate > t.falling_rate
    rates = (f"training {_pct(train_rate)} and validation {_pct(val_rate)} per epoch "
             f"over the last {span} epoch{'s' if span > 1 else ''}")  # fmt: skip
    if still_falling and min(train_rate, val_rate) > t.underfit_rate:
        found.add(f"Both losses were still falling fast at the end ({rates}, above the "
                  f"{_pct(t.underfit_rate)} allowed): the model has more to learn; train "
                  "longer.", UNDERFITTING)  # fmt: skip
    elif still_falling:
        found.add(f"Both losses were still falling at the end ({rates}), but not both faster "
                  f"than the {_pct(t.underfit_rate)} that counts as underfitting.")  # fmt: skip
    else:
        found.add(f"The losses were not both falling at the end ({rates}).")
    return still_falling


def _check_val_width(val_accs: Sequence[float], n_val: int, t: Thresholds,
                     found: _Findings) -> tuple[float, float] | None:  # fmt: skip
    """Is the validation set large enough to tell epochs apart? The final accuracy's interval."""
    if not val_accs:
        return None
    val_ci = wilson_interval(val_accs[-1], n_val)
    width = val_ci[1] - val_ci[0]
    images = f"{n_val:,} image" + ("s" if n_val != 1 else "")
    text = (f"The final validation accuracy {val_accs[-1]:.4f} on {images} has a 95% "
            f"interval of {val_ci[0]:.4f} to {val_ci[1]:.4f} (width {width:.4f})")  # fmt: skip
    if width <= t.max_val_ci_width:
        found.add(f"{text}: narrow enough to compare epochs.")
        return val_ci
    found.add(f"{text}, wider than the {t.max_val_ci_width:.4f} allowed: differences between "
              "epochs smaller than that are noise.", UNRELIABLE_VALIDATION)  # fmt: skip
    if len(val_accs) > 1 and max(val_accs) - min(val_accs) < width:
        found.add(f"All {len(val_accs)} epochs' validation accuracies ({min(val_accs):.4f} to "
                  f"{max(val_accs):.4f}) lie within one interval width, so the validation "
                  "curve cannot tell them apart.")  # fmt: skip
    return val_ci


def diagnose(
    history: Sequence[Mapping[str, Any]],
    n_val: int,
    n_test: int | None = None,
    test_acc: float | None = None,
    thresholds: Thresholds | None = None,
    num_classes: int | None = None,
) -> Diagnosis:
    """Judge a run by its learning curves: `history` holds one entry per epoch with
    `train_loss`, `val_loss` and `val_acc` (as in summary.json). With `num_classes`, a run whose
    accuracy stays near chance is underfitting whatever its curves look like. A run of one
    epoch with nothing wrong found is "too short to judge", never a good fit."""
    t = thresholds or Thresholds()
    test_ci = wilson_interval(test_acc, n_test) if test_acc is not None and n_test else None
    epochs = [
        h for h in history if h.get("val_loss") is not None and h.get("train_loss") is not None
    ]
    if not epochs or n_val <= 0:
        reason = "No validation loss was recorded, so the fit cannot be judged."
        return Diagnosis([UNRELIABLE_VALIDATION], [reason], None, None, None, None, None, test_ci)

    train = [float(h["train_loss"]) for h in epochs]
    val = [float(h["val_loss"]) for h in epochs]
    numbers = [int(h.get("epoch", i + 1)) for i, h in enumerate(epochs)]
    found = _Findings()
    gap = _check_gap(train, val, t, found)
    eval_gap = _eval_mode_gap(epochs[-1], gap, found)
    best, rise = _check_val_minimum(train, val, numbers, t, found)
    still_falling = _check_trend(train, val, numbers, t, found)
    val_accs = [float(h["val_acc"]) for h in epochs if h.get("val_acc") is not None]
    val_ci = _check_val_width(val_accs, n_val, t, found)
    at_chance = _near_chance(val_accs, test_acc, num_classes, t.chance_margin)
    if at_chance:  # the first thing to say: nothing else matters while it does not generalize
        train_accs = [float(h["train_acc"]) for h in epochs if h.get("train_acc") is not None]
        measured_acc = epochs[-1].get("train_eval_acc")
        measured_acc = None if measured_acc is None else float(measured_acc)
        _judge_at_chance(at_chance, train_accs, measured_acc, found)
    if not found.labels:
        found.labels.append(GOOD_FIT if still_falling is not None else TOO_SHORT)
    return Diagnosis(found.labels, found.reasons, generalization_gap=gap,
                     best_val_loss_epoch=numbers[best], val_loss_rise=rise,
                     still_falling=still_falling, val_acc_ci95=val_ci,
                     test_acc_ci95=test_ci, eval_mode_gap=eval_gap)  # fmt: skip
