"""The run's pictures as PNG files: learning curves, confusion matrix, misclassified images, and
the report's comparison of several runs or of groups of runs (seeds).

matplotlib is imported inside the functions (it costs start-up time) and drawn with the Agg
canvas directly, without pyplot, so no global figure state and no display are involved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from goodfit.data.images import display_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import Tensor

LEARNING_CURVES = "learning_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"
MISCLASSIFIED = "misclassified.png"
COMPARISON = "comparison.png"
TEST_ACCURACIES = "test_accuracies.png"
DPI = 100


def _figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(int(h["epoch"]), float(h[key])) for h in history if h.get(key) is not None]
    return [e for e, _ in points], [v for _, v in points]


# (history prefix, line style, legend) of each curve of learning_curves.png
_CURVES = (("train", "-o", "training (epoch mean)"), ("val", "--s", "validation"),
           ("train_eval", ":^", "training, measured as validation"))  # fmt: skip


def learning_curves(
    history: Sequence[Mapping[str, Any]], path: Path, title: str = "", n_val: int | None = None
) -> Path:
    """Loss and accuracy per epoch, training against validation, side by side; with `n_val`,
    the validation accuracy's 95% Wilson band shows how far apart epochs must be to differ."""
    fig = _figure(11, 4.2)
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        for stage, style, label in _CURVES:
            epochs, values = _series(history, f"{stage}_{metric}")
            if stage == "train_eval" and not values:
                continue  # callbacks.train_eval switched off
            label = label if values else f"{label} (not logged)"  # a module of one's own
            ax.plot(epochs, values, style, markersize=4, label=label)
            if metric == "acc" and stage == "val" and n_val and values:
                from goodfit.records.intervals import wilson_interval

                low, high = zip(*(wilson_interval(v, n_val) for v in values), strict=True)
                band = f"validation 95% interval (n={n_val:,})"
                ax.fill_between(epochs, low, high, color="C1", alpha=0.15, label=band)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy loss")
        ax.set_title("accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
        epochs = [int(h["epoch"]) for h in history if h.get("epoch") is not None]
        if epochs:  # whole epochs only, also for a run of one (else ticks at 0.96, 0.98, …)
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion_matrix(
    matrix: Tensor, class_names: Sequence[str], path: Path, title: str = ""
) -> Path:
    """Counts of true (rows) against predicted (columns) classes, with the class names (and the
    counts in the cells, up to 30 classes)."""
    counts = matrix.cpu().numpy() if hasattr(matrix, "cpu") else matrix
    n = len(class_names)
    scale = max(1.0, n / 12)  # room for every class name
    fig = _figure(8 * scale, 7 * scale)
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8, label="test images")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix (test set)")
    threshold = counts.max() / 2 if counts.size else 0
    for i in range(n if n <= 30 else 0):
        for j in range(n):
            color = "white" if counts[i, j] > threshold else "black"
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8, color=color)
    return _save(fig, path)


def misclassified_grid(
    images: Tensor, labels: Tensor, preds: Tensor, class_names: Sequence[str], path: Path,
    columns: int = 5,
) -> Path:  # fmt: skip
    """Misclassified test images, each titled with its true and predicted class."""
    count = len(labels)
    rows = max(1, -(-count // columns))
    height = 2.3 * rows + 0.9
    # A fixed layout: the constrained one solves for 25 axes (1.3 s against 0.6 to 0.8 s, side
    # by side on 2 cores), and these axes are all alike.
    fig = _figure(2 * columns, height, layout=None)
    fig.suptitle(
        f"Misclassified test images (first {count}): true → predicted", y=1 - 0.15 / height
    )
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.95 / height, wspace=0.05,
                        hspace=0.25)  # fmt: skip
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k < count:
            ax.imshow(display_image(images[k]), cmap="gray")
            true, pred = class_names[int(labels[k])], class_names[int(preds[k])]
            ax.set_title(f"{true}\n→ {pred}", fontsize=9)
    if count == 0:
        fig.text(0.5, 0.5, "none: every test image was classified correctly", ha="center")
    return _save(fig, path)


def comparison(runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], path: Path) -> Path:
    """Every run's training (solid) and validation (dashed) curves on one loss and one accuracy
    chart, one colour per run."""
    fig = _figure(12, 4.6)
    axes = fig.subplots(1, 2)
    for k, (label, history) in enumerate(runs):
        color = f"C{k % 10}"
        for ax, metric in zip(axes, ("loss", "acc"), strict=True):
            for stage, style in (("train", "-o"), ("val", "--s")):
                epochs, values = _series(history, f"{stage}_{metric}")
                curve = "training" if stage == "train" else "validation"
                ax.plot(
                    epochs, values, style, color=color, markersize=3, label=f"{label} ({curve})"
                )
    _label_curve_axes(axes, "")
    return _save(fig, path)


def _label_curve_axes(axes: Sequence[Any], prefix: str) -> None:
    """Titles, labels, grid and legend of a loss and an accuracy panel of learning curves."""
    for ax, name in zip(axes, ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(f"{prefix}{name}: training (solid) and validation (dashed)")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)
    axes[1].legend(fontsize=8, loc="lower right")


def _band(
    histories: Sequence[Sequence[Mapping[str, Any]]], key: str
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per epoch over the runs that reached it: the mean, and a band of ±1 sample standard
    deviation with three runs or more, else min–max (a single run: no band)."""
    import numpy as np

    per_epoch: dict[int, list[float]] = {}
    for history in histories:
        for epoch, value in zip(*_series(history, key), strict=True):
            per_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(per_epoch)
    mean, low, high = [], [], []
    for epoch in epochs:
        values = np.asarray(per_epoch[epoch])
        mean.append(float(values.mean()))
        if len(values) >= 3:
            std = float(values.std(ddof=1))
            low.append(mean[-1] - std)
            high.append(mean[-1] + std)
        else:
            low.append(float(values.min()))
            high.append(float(values.max()))
    return epochs, mean, low, high


def group_comparison(
    groups: Sequence[tuple[str, Sequence[Sequence[Mapping[str, Any]]]]], path: Path
) -> Path:
    """Each group's mean training (solid) and validation (dashed) curves over its runs, with a
    band (±1 std over the runs; min–max with fewer than three), one colour per group."""
    fig = _figure(12, 4.6)
    axes = fig.subplots(1, 2)
    for k, (name, histories) in enumerate(groups):
        color = f"C{k % 10}"
        for ax, metric in zip(axes, ("loss", "acc"), strict=True):
            for stage, style in (("train", "-o"), ("val", "--s")):
                epochs, mean, low, high = _band(histories, f"{stage}_{metric}")
                curve = "training" if stage == "train" else "validation"
                label = f"{name} ({curve}, {len(histories)} runs)"
                ax.plot(epochs, mean, style, color=color, markersize=3, label=label)
                ax.fill_between(epochs, low, high, color=color, alpha=0.15, linewidth=0)
    _label_curve_axes(axes, "mean ")
    fig.suptitle("Bands: ±1 standard deviation over the runs (min–max with fewer than 3 runs)")
    return _save(fig, path)


def accuracy_points(
    groups: Sequence[tuple[str, Sequence[float], float | None, Sequence[float] | None]],
    path: Path,
) -> Path:
    """Each group's test accuracies as points (one per run), with the mean and its 95%
    interval beside them; `groups` holds (name, accuracies, mean, interval or None)."""
    import numpy as np

    fig = _figure(max(5.0, 2.2 * len(groups) + 2), 4.6)
    ax = fig.subplots()
    for k, (name, values, mean, ci) in enumerate(groups):
        color = f"C{k % 10}"
        # Spread the points sideways by rank so equal values stay visible; no randomness.
        offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0] * len(values)
        ax.plot(k - 0.1 + np.asarray(offsets), values, "o", color=color, alpha=0.7,
                label=f"{name}: {len(values)} runs")  # fmt: skip
        if mean is None:
            continue
        if ci is not None:
            ax.errorbar(k + 0.25, mean, yerr=[[mean - ci[0]], [ci[1] - mean]], fmt="D",
                        color=color, capsize=6, markersize=7)  # fmt: skip
        else:
            ax.plot(k + 0.25, mean, "D", color=color, markersize=7)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy of each run (points)\nmean and its 95% interval (diamond, bar)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_run_pictures(
    run_dir: Path, history: Sequence[Mapping[str, Any]], results: Any, class_names: Sequence[str],
    title: str = "", n_val: int | None = None,
) -> dict[str, Path]:  # fmt: skip
    """Draw a run's pictures into its folder: the learning curves from `history` (none without
    one), the confusion matrix and the misclassified images from `results`, the module's
    TestResults (None for a module that keeps none). Returns {name: path}."""
    pictures = {}
    if history:
        pictures["learning_curves"] = learning_curves(history, run_dir / LEARNING_CURVES, title,
                                                      n_val)  # fmt: skip
    if results is not None:
        pictures["confusion_matrix"] = confusion_matrix(
            results.confusion_matrix, class_names, run_dir / CONFUSION_MATRIX,
            f"Confusion matrix (test set){': ' + title if title else ''}",
        )  # fmt: skip
        pictures["misclassified"] = misclassified_grid(
            results.wrong_images, results.wrong_labels, results.wrong_preds, class_names,
            run_dir / MISCLASSIFIED,
        )  # fmt: skip
    return pictures
