"""The pictures are valid PNGs of sensible size; the test details are gathered correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from goodfit.data.fashion_mnist import CLASS_NAMES
from goodfit.lit.test_evaluation import FirstMisclassified, TestEvaluation
from goodfit.records import figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

HISTORY = [
    {"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_acc": 1 - 0.3 / e,
     "val_acc": 1 - 0.35 / e}
    for e in range(1, 6)
]  # fmt: skip


def assert_png(path: Path, min_size: tuple[int, int] = (400, 300)) -> tuple[int, int]:
    """A real PNG, not blank, at least `min_size` and at most 3000 pixels a side."""
    from PIL import Image

    assert path.is_file(), f"{path} missing"
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
        extrema = image.convert("L").getextrema()
    assert min_size[0] <= width <= 3000 and min_size[1] <= height <= 3000, (path, image.size)
    assert extrema[0] < extrema[1], f"{path} is blank"
    return width, height


def test_learning_curves_png(tmp_path):
    path = figures.learning_curves(HISTORY, tmp_path / figures.LEARNING_CURVES, "good")
    assert assert_png(path) == (1100, 420)


def test_learning_curves_of_a_run_never_validated(tmp_path):
    """No validation accuracy at all (validation skipped every epoch): the training curves are
    drawn, and the validation band is left out instead of failing."""
    unvalidated = [{**h, "val_loss": None, "val_acc": None} for h in HISTORY]
    path = figures.learning_curves(unvalidated, tmp_path / "curves.png", "x", n_val=600)
    assert_png(path)


def test_confusion_matrix_png(tmp_path):
    matrix = torch.randint(0, 50, (10, 10))
    path = figures.confusion_matrix(matrix, CLASS_NAMES, tmp_path / figures.CONFUSION_MATRIX)
    assert assert_png(path) == (800, 700)


@pytest.mark.parametrize("count", [0, 7, 25])
def test_misclassified_grid_png(tmp_path, count):
    images = torch.rand(count, 1, 28, 28)
    labels, preds = torch.arange(count) % 10, (torch.arange(count) + 1) % 10
    path = figures.misclassified_grid(images, labels, preds, CLASS_NAMES, tmp_path / "m.png")
    assert_png(path, min_size=(500, 250))


def test_misclassified_grid_text_stays_inside_the_picture(monkeypatch, tmp_path):
    """The titles and, with nothing misclassified, the sentence lie within the figure (the
    sentence was centred on the first of five axes and cut off at the left edge)."""
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    for count in (0, 25):
        images = torch.rand(count, 1, 28, 28)
        labels, preds = torch.arange(count) % 10, (torch.arange(count) + 1) % 10
        figures.misclassified_grid(images, labels, preds, CLASS_NAMES, tmp_path / "m.png")
    for fig in drawn:
        fig.canvas.draw()  # lays the figure out, as saving it does
        renderer = fig.canvas.get_renderer()
        texts = [*fig.texts, *(ax.title for ax in fig.axes if ax.get_title())]
        texts += [t for ax in fig.axes for t in ax.texts]
        assert texts
        for text in texts:
            box = text.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
    titles = [
        ax.title.get_window_extent(drawn[1].canvas.get_renderer()) for ax in drawn[1].axes[:5]
    ]
    suptitle = drawn[1]._suptitle.get_window_extent(drawn[1].canvas.get_renderer())
    assert all(suptitle.y0 > box.y1 for box in titles), "the heading clears the first row"


def test_comparison_png(tmp_path):
    runs = [("good", HISTORY), ("bad", HISTORY[:3])]
    assert assert_png(figures.comparison(runs, tmp_path / figures.COMPARISON)) == (1200, 460)


def test_first_misclassified_keeps_the_first_ones_in_order():
    keep = FirstMisclassified(capacity=4)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
    preds = torch.tensor([0, 2, 2, 3, 5, 5, 7, 7, 9, 9, 1, 1])  # wrong at 1, 4, 6, 8, 10
    images = torch.arange(12, dtype=torch.float32).view(12, 1, 1, 1).expand(12, 1, 28, 28)
    for start in range(0, 12, 5):  # batches of 5, 5, 2
        keep.update(images[start : start + 5], labels[start : start + 5], preds[start : start + 5])
    kept_images, kept_labels, kept_preds = keep.collect()
    assert kept_images[:, 0, 0, 0].tolist() == [1, 4, 6, 8]
    assert kept_labels.tolist() == [1, 4, 6, 8] and kept_preds.tolist() == [2, 5, 7, 9]


def test_first_misclassified_with_fewer_than_capacity():
    keep = FirstMisclassified(capacity=25)
    keep.update(torch.zeros(3, 1, 28, 28), torch.tensor([0, 1, 2]), torch.tensor([0, 1, 0]))
    _, labels, preds = keep.collect()
    assert labels.tolist() == [2] and preds.tolist() == [0]


def test_test_evaluation_matches_a_hand_count():
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (300,))
    logits = torch.randn(300, 10)
    logits[torch.arange(300), labels] += 1.5  # mostly right
    evaluation = TestEvaluation(num_classes=10, keep_misclassified=25)
    for start in range(0, 300, 100):
        batch = slice(start, start + 100)
        evaluation.update(torch.zeros(100, 1, 28, 28), logits[batch], labels[batch])
    results = evaluation.compute_and_reset()
    preds = logits.argmax(1)
    expected = torch.zeros(10, 10, dtype=torch.long)
    for t, p in zip(labels.tolist(), preds.tolist(), strict=True):
        expected[t, p] += 1
    assert torch.equal(results.confusion_matrix, expected)
    diag = expected.diag().float()
    assert results.per_class["recall"] == pytest.approx((diag / expected.sum(1)).tolist())
    assert results.per_class["precision"] == pytest.approx((diag / expected.sum(0)).tolist())
    assert len(results.wrong_labels) == min(25, int((preds != labels).sum()))
    assert torch.all(results.wrong_labels != results.wrong_preds)


@pytest.mark.parametrize("epochs", [1, 3, 20])
def test_learning_curves_mark_whole_epochs_only(monkeypatch, tmp_path, epochs):
    """One epoch used to get ticks at 0.96, 0.98, …; every run gets whole epochs."""
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_acc": 0.5,
                "val_acc": 0.5} for e in range(1, epochs + 1)]  # fmt: skip
    figures.learning_curves(history, tmp_path / "c.png", n_val=600)
    for ax in drawn[0].axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert low < 1 and high > epochs


def test_learning_curves_draw_the_training_figures_measured_as_validation(monkeypatch, tmp_path):
    """A dotted third curve on each panel when the history has train_eval figures, none when it
    has not (callbacks.train_eval off)."""
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    measured = [{**h, "train_eval_loss": 0.2, "train_eval_acc": 0.95} for h in HISTORY]
    for history in (measured, HISTORY):
        figures.learning_curves(history, tmp_path / "c.png")
    for fig, expected in zip(drawn, ([0.2, 0.95], []), strict=True):
        for ax, value in zip(fig.axes, expected or [None, None], strict=True):
            lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("training, measured")]
            assert [set(ln.get_ydata()) for ln in lines] == ([{value}] if expected else [])
