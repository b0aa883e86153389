"""The fit diagnosis on synthetic and on the real seed histories, and the Wilson intervals."""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from goodfit.records.diagnosis import (
    GOOD_FIT,
    OVERFITTING,
    TOO_SHORT,
    UNDERFITTING,
    UNRELIABLE_VALIDATION,
    Thresholds,
    diagnose,
    wilson_interval,
)
from goodfit.runtime.errors import ConfigError

from .conftest import ROOT, run_train


def history(train_loss: list[float], val_loss: list[float], val_acc: list[float] | None = None,
            train_acc: float = 0.9):  # fmt: skip
    val_acc = val_acc or [0.9] * len(train_loss)
    return [
        {"epoch": i + 1, "train_loss": t, "val_loss": v, "train_acc": train_acc, "val_acc": a}
        for i, (t, v, a) in enumerate(zip(train_loss, val_loss, val_acc, strict=True))
    ]


def quadratic_wilson(p: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson bounds as the roots of (p - x)^2 = z^2 x (1 - x) / n: a second derivation."""
    a, b, c = 1 + z * z / n, -(2 * p + z * z / n), p * p
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


# The real per-epoch figures of the seed experiments (seed 42): epoch, train loss, val loss,
# train acc, val acc. good: epochs 16 and earlier trimmed except a few.
REAL_GOOD = [(1, 0.7838, 0.5108, 0.7376, 0.8267), (5, 0.4176, 0.379, 0.8534, 0.8622),
             (10, 0.352, 0.3319, 0.873, 0.8794), (15, 0.3156, 0.3162, 0.8868, 0.8831),
             (17, 0.3029, 0.3051, 0.8907, 0.8903), (18, 0.2992, 0.3024, 0.8923, 0.8864),
             (19, 0.2945, 0.3079, 0.8927, 0.8831), (20, 0.2895, 0.2987, 0.896, 0.8872)]  # fmt: skip
REAL_BAD = [(1, 0.4978, 0.4334, 0.8239, 0.835), (2, 0.3886, 0.4884, 0.8651, 0.8333),
            (3, 0.3597, 0.4295, 0.8766, 0.8667)]  # fmt: skip


def as_history(rows):
    keys = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def test_wilson_interval_known_values():
    assert wilson_interval(0.5, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson_interval(0.8784, 10_000) == pytest.approx((0.8718, 0.8847), abs=1e-4)
    for p, n in ((0.5, 100), (0.8784, 10_000), (0.8667, 600), (0.1, 7)):
        assert wilson_interval(p, n) == pytest.approx(quadratic_wilson(p, n), abs=1e-12)


def test_wilson_interval_edges():
    assert wilson_interval(1.0, 36)[1] == 1.0 and wilson_interval(1.0, 36)[0] < 1.0
    assert wilson_interval(0.0, 36)[0] == 0.0 and wilson_interval(0.0, 36)[1] > 0.0
    assert wilson_interval(0.5, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="proportion"):
        wilson_interval(1.5, 10)


def test_good_fit():
    train = [1.0, 0.6, 0.45, 0.40, 0.395, 0.392, 0.390, 0.389]
    val = [0.8, 0.55, 0.45, 0.41, 0.404, 0.401, 0.400, 0.399]
    d = diagnose(history(train, val), n_val=5000, n_test=10_000, test_acc=0.88)
    assert d.labels == [GOOD_FIT] and d.verdict == "good fit"
    assert d.generalization_gap == pytest.approx(0.010)
    assert d.best_val_loss_epoch == 8 and d.val_loss_rise == 0.0
    assert any("is 0.0100 above the final training loss (0.3890), 2.6% of it: within the 10.0% "
               "allowed" in r for r in d.reasons)  # fmt: skip
    assert any("narrow enough" in r for r in d.reasons)
    below = diagnose(history([1.78, 1.2], [0.98, 0.9]), n_val=5000)
    assert any("is 0.3000 below the final training loss (1.2000), 25.0% of it: no gap" in r
               for r in below.reasons)  # fmt: skip
    assert d.test_acc_ci95 == pytest.approx(wilson_interval(0.88, 10_000))


def test_clear_overfit():
    d = diagnose(history([1.0, 0.5, 0.3, 0.15, 0.08, 0.04], [0.8, 0.5, 0.42, 0.48, 0.55, 0.63]),
                 n_val=5000)  # fmt: skip
    assert d.labels == [OVERFITTING]
    assert d.best_val_loss_epoch == 3
    assert d.val_loss_rise == pytest.approx(0.63 / 0.42 - 1)
    assert d.generalization_gap == pytest.approx(0.59)
    text = " ".join(d.reasons)
    assert "wider than the 10.0% allowed" in text
    assert "lowest at epoch 3" in text and "more than the 5.0% allowed" in text
    assert "went up while the training loss went down at epochs 4, 5, 6" in text


def test_val_loss_turning_up_alone_is_overfitting():
    d = diagnose(history([0.5, 0.4, 0.35, 0.33, 0.32], [0.40, 0.34, 0.33, 0.345, 0.36]), 5000)
    assert d.labels == [OVERFITTING]
    assert any("lowest at epoch 3" in r for r in d.reasons)


def test_underfit():
    d = diagnose(history([2.0, 1.6, 1.3, 1.1, 0.95], [1.9, 1.55, 1.28, 1.08, 0.93]), 5000)
    assert d.labels == [UNDERFITTING] and d.still_falling is True
    assert any("still falling fast" in r and "train longer" in r for r in d.reasons)


def test_tiny_validation_set_is_unreliable():
    rows = history([0.5, 0.45, 0.42], [0.47, 0.46, 0.45], [0.84, 0.86, 0.85])
    d = diagnose(rows, n_val=60)
    assert UNRELIABLE_VALIDATION in d.labels and GOOD_FIT not in d.labels
    assert d.val_acc_ci95 == pytest.approx(wilson_interval(0.85, 60))
    text = " ".join(d.reasons)
    assert "on 60 images" in text and "wider than the 0.0400 allowed" in text
    assert "cannot tell them apart" in text
    # The same curves on a large validation set are a good fit.
    assert diagnose(rows, n_val=20_000).labels == [GOOD_FIT]


def test_one_epoch_with_nothing_wrong_is_too_short_to_judge():
    """One epoch gives no trend: the run is not called a good fit."""
    d = diagnose(history([0.6], [0.5]), n_val=5000)
    assert d.labels == [TOO_SHORT] and d.verdict == "too short to judge"
    assert d.still_falling is None
    assert any("Only one epoch ran" in r and "2 epochs or more" in r for r in d.reasons)
    # What one epoch can show is still said: a wide gap, a small validation set.
    assert diagnose(history([0.3], [0.5]), n_val=5000).labels == [OVERFITTING]
    assert diagnose(history([0.6], [0.5]), n_val=60).labels == [UNRELIABLE_VALIDATION]
    # Two epochs give a trend, and with nothing wrong, a good fit.
    assert diagnose(history([0.6, 0.599], [0.5, 0.499]), n_val=5000).labels == [GOOD_FIT]


def test_trend_is_per_epoch_when_validation_skips_epochs():
    """trainer.check_val_every_n_epoch=2: the rates are per epoch, not per validated epoch, and a
    run validated once is said to be that, not to have run one epoch."""
    rows = [
        {"epoch": e, "train_loss": t, "val_loss": v, "val_acc": 0.9}
        for e, t, v in [(2, 1.0, 1.0), (4, 0.96, 0.96), (6, 0.93, 0.93), (8, 0.9, 0.9)]
    ]
    rows += [{"epoch": 9, "train_loss": 0.89, "val_loss": None, "val_acc": None}]  # fmt: skip
    d = diagnose(rows, n_val=20_000)
    # 10% over 6 epochs: 1.85% an epoch, below the 3% of underfitting (5.6% per validation).
    assert d.labels == [GOOD_FIT] and d.still_falling is True
    assert any("training 1.9% and validation 1.9% per epoch over the last 6 epochs" in r
               for r in d.reasons)  # fmt: skip
    once = diagnose(rows[:1] + rows[-1:], n_val=20_000)
    assert once.labels == [TOO_SHORT]
    assert any(r.startswith("Only one epoch (epoch 2) was validated") for r in once.reasons)


def test_no_validation_cannot_be_judged():
    rows = [{"epoch": 1, "train_loss": 0.5, "val_loss": None, "val_acc": None}]
    d = diagnose(rows, n_val=0)
    assert d.labels == [UNRELIABLE_VALIDATION] and d.generalization_gap is None


def test_real_seed_runs():
    """The calibration the thresholds were chosen for: good is a good fit, bad is not."""
    good = diagnose(as_history(REAL_GOOD), n_val=3600, n_test=10_000, test_acc=0.8784)
    assert good.verdict == "good fit"
    assert good.still_falling is True, "good's losses still fall slowly, yet it is no underfit"
    bad = diagnose(as_history(REAL_BAD), n_val=600, n_test=10_000, test_acc=0.8556)
    assert bad.labels == [OVERFITTING, UNRELIABLE_VALIDATION]
    assert bad.generalization_gap == pytest.approx(0.0698)
    assert bad.val_acc_ci95[1] - bad.val_acc_ci95[0] > 0.05


def test_summary_keys():
    data = diagnose(as_history(REAL_BAD), 600, 10_000, 0.8556).to_summary()
    assert data["verdict"] == "overfitting, unreliable validation"
    assert isinstance(data["verdict_reasons"], list) and data["verdict_reasons"]
    assert {"generalization_gap", "val_acc_ci95", "test_acc_ci95"} <= data.keys()
    assert len(data["test_acc_ci95"]) == 2


def test_thresholds_yaml_equals_defaults():
    yaml = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "diagnosis" / "default.yaml"))
    assert Thresholds.from_mapping(yaml) == Thresholds()


def test_bad_thresholds_name_the_key():
    with pytest.raises(ConfigError, match=r"diagnosis\.max_relative_gap=-0\.1"):
        Thresholds.from_mapping({"max_relative_gap": -0.1})
    with pytest.raises(ConfigError, match=r"diagnosis\.trend_window=0"):
        Thresholds.from_mapping({"trend_window": 0})
    with pytest.raises(ConfigError, match=r"diagnosis\.max_gap is not a known threshold"):
        Thresholds.from_mapping({"max_gap": 0.1})


def test_train_refuses_bad_threshold_before_training(synthetic_dir, tmp_path):
    from .conftest import synthetic_overrides

    result = run_train(
        "diagnosis.underfit_rate=-1", f"hydra.run.dir={tmp_path / 'run'}",
        *synthetic_overrides(synthetic_dir), check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "diagnosis.underfit_rate=-1" in result.stdout + result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_at_chance_a_gap_is_not_overfitting_unless_the_training_images_are_learnt():
    """One short epoch of a network with batch norm: validation far above training loss, every
    accuracy at chance. The model learned nothing, so "underfitting" alone (it was called
    "underfitting, overfitting"). A model at chance on held-out images but well above it on its
    training images memorizes them: "overfitting", not "not learning"."""
    nothing = history([2.64], [16.98], [0.11], train_acc=0.16)
    d = diagnose(nothing, n_val=6000, n_test=10_000, test_acc=0.11, num_classes=10)
    assert d.labels == [UNDERFITTING]
    assert "not learning" in d.reasons[0] and "not counted as overfitting" in d.reasons[-1]
    memorized = history([0.40, 0.10, 0.02], [2.40, 2.60, 2.90], [0.11, 0.10, 0.10],
                        train_acc=0.99)  # fmt: skip
    d = diagnose(memorized, n_val=6000, n_test=10_000, test_acc=0.10, num_classes=10)
    assert d.labels[0] == OVERFITTING and UNDERFITTING not in d.labels
    assert "training accuracy reached 0.9900" in d.reasons[0]
    assert "not learning" not in " ".join(d.reasons)


def test_at_chance_the_training_accuracy_measured_as_validation_decides():
    """One short epoch of a ResNet on 100 images: the curve's training accuracy (training mode,
    batch statistics) reached 0.20, but measured as validation is (callbacks.train_eval) the
    training images are at chance like the held-out ones: the model learned nothing that eval
    mode shows, so "underfitting", not "fits its training images" (it was "overfitting")."""
    curves = history([2.14], [2.30], [0.10], train_acc=0.20)
    measured = [{**h, "train_eval_loss": 2.29, "train_eval_acc": 0.11} for h in curves]
    d = diagnose(measured, n_val=2000, n_test=2000, test_acc=0.10, num_classes=10)
    assert d.labels[0] == UNDERFITTING and OVERFITTING not in d.labels
    assert "not learning" in d.reasons[0]
    assert "training curve's accuracy reached 0.2000" in d.reasons[0]
    assert "(train_eval/acc) the training images are at 0.1100" in d.reasons[0]
    assert diagnose(curves, n_val=2000, n_test=2000, test_acc=0.10,
                    num_classes=10).labels[0] == OVERFITTING  # without the measurement  # fmt: skip
    learnt = [{**h, "train_eval_acc": 0.95} for h in curves]
    d = diagnose(learnt, n_val=2000, n_test=2000, test_acc=0.10, num_classes=10)
    assert d.labels[0] == OVERFITTING
    assert (
        "training accuracy measured as validation is (train_eval/acc) reached 0.9500"
        in (d.reasons[0])
    )


def test_accuracy_near_chance_is_never_a_good_fit():
    """A model that learned nothing can have flat, close curves: the verdict must not be good."""
    flat = [2.30, 2.30, 2.30]
    near_chance = history(flat, flat, [0.13, 0.12, 0.13], train_acc=0.12)
    d = diagnose(near_chance, n_val=5000, n_test=10_000, test_acc=0.13, num_classes=10)
    assert d.labels[0] == UNDERFITTING and GOOD_FIT not in d.labels
    assert "near chance" in d.reasons[0] and "not learning" in d.reasons[0]
    without_classes = diagnose(near_chance, n_val=5000, n_test=10_000, test_acc=0.13)
    assert without_classes.labels == [GOOD_FIT], "the check needs the number of classes"
    learned = history(flat, flat, [0.85, 0.86, 0.86])
    assert diagnose(learned, n_val=5000, test_acc=0.86, num_classes=10).labels == [GOOD_FIT]
    two_classes = history(flat, flat, [0.52, 0.53, 0.53], train_acc=0.52)
    assert UNDERFITTING in diagnose(two_classes, n_val=5000, num_classes=2).labels


def test_the_gap_measured_in_eval_mode_is_said_beside_the_curves_and_leaves_the_verdict():
    """With train_eval_loss in the history (callbacks.train_eval), eval_mode_gap is the final
    validation loss minus it, a reason says both gaps, and the verdict stays the curves'."""
    curves = history([0.50, 0.40, 0.300, 0.295], [0.45, 0.38, 0.305, 0.300])
    measured = [{**h, "train_eval_loss": 0.24} for h in curves]
    plain, alike = diagnose(curves, n_val=5000), diagnose(measured, n_val=5000)
    assert plain.eval_mode_gap is None
    assert alike.eval_mode_gap == pytest.approx(0.06)
    assert alike.labels == plain.labels and alike.generalization_gap == plain.generalization_gap
    [said] = [r for r in alike.reasons if "train_eval/loss" in r]
    assert "final training loss is 0.2400 and the gap +0.0600, 25.0% of it" in said
    assert "against +0.0050 from the training curve" in said
    assert alike.to_summary()["eval_mode_gap"] == pytest.approx(0.06)


def test_a_missing_training_curve_is_named_and_the_measured_one_stands_in():
    """A module that logs no train/loss was told "No validation loss was recorded"."""
    rows = [{"epoch": e, "train_loss": None, "val_loss": 0.5, "val_acc": 0.8} for e in (1, 2)]
    d = diagnose(rows, n_val=5000)
    assert d.labels == ["not judged"] and d.reasons == [
        "No training loss was recorded (train/loss, or train_eval/loss from "
        "callbacks.train_eval), so the fit cannot be judged."
    ]
    measured = [{**row, "train_eval_loss": 0.3} for row in rows]
    d = diagnose(measured, n_val=5000)
    assert OVERFITTING in d.labels and d.generalization_gap == pytest.approx(0.2)
    assert d.reasons[0].startswith("The module logs no training loss (train/loss)")
    assert d.eval_mode_gap is None  # the same loss: no second gap to set beside it
