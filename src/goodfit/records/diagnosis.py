"""Fit diagnosis: a verdict on a run from its per-epoch history and its data sizes alone.

Pure functions of plain numbers (no torch, no files), so the training run and the report on old
run folders reach the same verdict. The thresholds are `conf/diagnosis/default.yaml`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from goodfit.records.chance import judge_at_chance, near_chance
from goodfit.records.findings import (
    GOOD_FIT,
    NOT_JUDGED,
    OVERFITTING,
    TOO_SHORT,
    UNDERFITTING,
    UNRELIABLE_VALIDATION,
    Findings,
    pct,
)
from goodfit.records.fit_thresholds import Thresholds
from goodfit.records.intervals import wilson_interval


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


def _check_gap(train: Sequence[float], val: Sequence[float], t: Thresholds,
               found: Findings) -> float:  # fmt: skip
    """The generalization gap (the report's measure of a good fit): final val − train loss."""
    gap = val[-1] - train[-1]
    relative_gap = gap / max(abs(train[-1]), 1e-12)
    side = "above" if gap >= 0 else "below"
    text = (f"The final validation loss ({val[-1]:.4f}) is {abs(gap):.4f} {side} the final "
            f"training loss ({train[-1]:.4f}), {pct(abs(relative_gap))} of it")  # fmt: skip
    if relative_gap > t.max_relative_gap:
        found.add(f"{text}: a gap wider than the {pct(t.max_relative_gap)} allowed.", OVERFITTING)
    elif gap >= 0:
        found.add(f"{text}: within the {pct(t.max_relative_gap)} allowed.")
    else:
        found.add(f"{text}: no gap (the training loss is averaged over the epoch as the "
                  "model learned, with dropout or augmentation on; validation comes at its "
                  "end).")  # fmt: skip
    return gap


def _eval_mode_gap(last: Mapping[str, Any], gap: float, found: Findings) -> float | None:
    """The gap to the training loss measured as validation is (callbacks.train_eval), said
    beside the curve's: information, not a verdict (the thresholds apply to the curve's)."""
    measured = last.get("train_eval_loss")
    if measured is None:
        return None
    eval_gap = float(last["val_loss"]) - float(measured)
    found.add(f"Measured as validation is (eval mode, the same weights: train_eval/loss), the "
              f"final training loss is {float(measured):.4f} and the gap {eval_gap:+.4f}, "
              f"{pct(abs(eval_gap) / max(abs(float(measured)), 1e-12))} of it, against "
              f"{gap:+.4f} from the training curve, whose epoch mean (dropout on, weights "
              "still changing) the verdict's limits apply to.")  # fmt: skip
    return eval_gap


def _check_val_minimum(
    train: Sequence[float], val: Sequence[float], numbers: Sequence[int], t: Thresholds,
    found: Findings,
) -> tuple[int, float]:  # fmt: skip
    """Did the validation loss turn upwards after its minimum? Its index and the rise after."""
    best = min(range(len(val)), key=val.__getitem__)
    rise = (val[-1] - val[best]) / max(abs(val[best]), 1e-12)
    lowest = f"The validation loss was lowest at epoch {numbers[best]} ({val[best]:.4f})"
    if best == len(val) - 1:
        found.add(f"The validation loss was lowest at the last epoch ({numbers[best]}).")
    elif rise > t.max_val_loss_rise:
        found.add(f"{lowest} and ended {pct(rise)} above it, more than the "
                  f"{pct(t.max_val_loss_rise)} allowed.", OVERFITTING)  # fmt: skip
    else:
        found.add(f"{lowest} and ended only {pct(rise)} above it "
                  f"(allowed: {pct(t.max_val_loss_rise)}).")  # fmt: skip
    ups = [numbers[i] for i in range(1, len(val))
           if val[i] > val[i - 1] and train[i] < train[i - 1]]  # fmt: skip
    if ups and OVERFITTING in found.labels:
        found.add("The validation loss went up while the training loss went down at epoch"
                  f"{'s' if len(ups) > 1 else ''} {', '.join(map(str, ups))}.")  # fmt: skip
    return best, rise


def _check_trend(train: Sequence[float], val: Sequence[float], numbers: Sequence[int],
                 t: Thresholds, found: Findings) -> bool | None:  # fmt: skip
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
    rates = (f"training {pct(train_rate)} and validation {pct(val_rate)} per epoch "
             f"over the last {span} epoch{'s' if span > 1 else ''}")  # fmt: skip
    if still_falling and min(train_rate, val_rate) > t.underfit_rate:
        found.add(f"Both losses were still falling fast at the end ({rates}, above the "
                  f"{pct(t.underfit_rate)} allowed): the model has more to learn; train "
                  "longer.", UNDERFITTING)  # fmt: skip
    elif still_falling:
        found.add(f"Both losses were still falling at the end ({rates}), but not both faster "
                  f"than the {pct(t.underfit_rate)} that counts as underfitting.")  # fmt: skip
    else:
        found.add(f"The losses were not both falling at the end ({rates}).")
    return still_falling


def _check_val_width(val_accs: Sequence[float], n_val: int, t: Thresholds,
                     found: Findings) -> tuple[float, float] | None:  # fmt: skip
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


def _training_loss_curve(
    history: Sequence[Mapping[str, Any]],
) -> tuple[Sequence[Mapping[str, Any]], str | None]:
    """The history to judge, and what stood in for its training loss: a module that logs no
    `train/loss` is judged on the training loss measured as validation's (`train_eval/loss`)."""
    if any(h.get("train_loss") is not None for h in history) or not any(
        h.get("train_eval_loss") is not None for h in history
    ):
        return history, None
    said = ("The module logs no training loss (train/loss): the training loss judged is the one "
            "measured as validation's (train_eval/loss).")  # fmt: skip
    return [{**h, "train_loss": h.get("train_eval_loss")} for h in history], said


def _not_judged(
    history: Sequence[Mapping[str, Any]], n_val: int, test_ci: tuple[float, float] | None
) -> Diagnosis:
    """The verdict of a run without both curves: which one is missing."""
    if n_val > 0 and any(h.get("val_loss") is not None for h in history):
        reason = ("No training loss was recorded (train/loss, or train_eval/loss from "
                  "callbacks.train_eval), so the fit cannot be judged.")  # fmt: skip
        return Diagnosis([NOT_JUDGED], [reason], None, None, None, None, None, test_ci)
    reason = "No validation loss was recorded, so the fit cannot be judged."
    return Diagnosis([UNRELIABLE_VALIDATION], [reason], None, None, None, None, None, test_ci)


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
    history, stand_in = _training_loss_curve(history)
    epochs = [
        h for h in history if h.get("val_loss") is not None and h.get("train_loss") is not None
    ]
    if not epochs or n_val <= 0:
        return _not_judged(history, n_val, test_ci)

    train = [float(h["train_loss"]) for h in epochs]
    val = [float(h["val_loss"]) for h in epochs]
    numbers = [int(h.get("epoch", i + 1)) for i, h in enumerate(epochs)]
    found = Findings()
    if stand_in:
        found.add(stand_in)
    gap = _check_gap(train, val, t, found)
    eval_gap = None if stand_in else _eval_mode_gap(epochs[-1], gap, found)
    best, rise = _check_val_minimum(train, val, numbers, t, found)
    still_falling = _check_trend(train, val, numbers, t, found)
    val_accs = [float(h["val_acc"]) for h in epochs if h.get("val_acc") is not None]
    val_ci = _check_val_width(val_accs, n_val, t, found)
    at_chance = near_chance(val_accs, test_acc, num_classes, t.chance_margin)
    if at_chance:  # the first thing to say: nothing else matters while it does not generalize
        train_accs = [float(h["train_acc"]) for h in epochs if h.get("train_acc") is not None]
        measured_acc = epochs[-1].get("train_eval_acc")
        measured_acc = None if measured_acc is None else float(measured_acc)
        judge_at_chance(at_chance, train_accs, measured_acc, found)
    if not found.labels:
        found.labels.append(GOOD_FIT if still_falling is not None else TOO_SHORT)
    return Diagnosis(found.labels, found.reasons, generalization_gap=gap,
                     best_val_loss_epoch=numbers[best], val_loss_rise=rise,
                     still_falling=still_falling, val_acc_ci95=val_ci,
                     test_acc_ci95=test_ci, eval_mode_gap=eval_gap)  # fmt: skip
