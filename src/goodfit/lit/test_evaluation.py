"""What the test set tells beyond loss and accuracy: the confusion matrix, per-class figures, and
a few misclassified images, all accumulated on the device (no host sync per step)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassPrecision,
    MulticlassRecall,
)


@dataclass
class TestResults:
    """The test set's details, on the CPU."""

    __test__ = False  # not a pytest test class, despite its name

    confusion_matrix: Tensor  # (C, C) int64: rows are true classes, columns predictions
    per_class: dict[str, list[float]]  # accuracy, precision, recall: one value per class
    wrong_images: Tensor  # (K, C, H, W) the first misclassified test images
    wrong_labels: Tensor  # (K,) their true classes
    wrong_preds: Tensor  # (K,) what the model predicted


class FirstMisclassified(nn.Module):
    """Keeps the first `capacity` misclassified samples in fixed-size device buffers.

    Every operation has a fixed shape (a stable sort moves the wrong ones to the front), so
    nothing waits on the host until `collect()` at the end.
    """

    def __init__(self, capacity: int = 25) -> None:
        super().__init__()
        self.capacity = capacity
        self.images: Tensor | None = None
        self.labels: Tensor | None = None
        self.preds: Tensor | None = None
        self.valid: Tensor | None = None
        self.image_shape: tuple[int, ...] = (0, 0, 0)  # (C, H, W) of the images seen

    def reset(self) -> None:
        self.images = self.labels = self.preds = self.valid = None

    def update(self, images: Tensor, labels: Tensor, preds: Tensor) -> None:
        wrong = preds != labels
        self.image_shape = tuple(images.shape[1:])
        if self.valid is not None:  # older samples first, so the buffer keeps the first ones
            images = torch.cat([self.images, images])
            labels = torch.cat([self.labels, labels])
            preds = torch.cat([self.preds, preds])
            wrong = torch.cat([self.valid, wrong])
        order = torch.sort(wrong.to(torch.uint8), descending=True, stable=True).indices
        keep = order[: self.capacity]
        self.images = images[keep].detach()
        self.labels, self.preds, self.valid = labels[keep], preds[keep], wrong[keep]

    def collect(self) -> tuple[Tensor, Tensor, Tensor]:
        """The kept misclassified samples (one host sync)."""
        if self.valid is None:
            empty = torch.empty(0, dtype=torch.long)
            return torch.empty(0, *self.image_shape), empty, empty.clone()
        valid = self.valid.cpu()
        return self.images.cpu()[valid], self.labels.cpu()[valid], self.preds.cpu()[valid]


class TestEvaluation(nn.Module):
    """Confusion matrix, per-class accuracy/precision/recall, and misclassified examples."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, num_classes: int, keep_misclassified: int = 25) -> None:
        super().__init__()
        kwargs = {"num_classes": num_classes, "validate_args": False}
        self.confusion = MulticlassConfusionMatrix(**kwargs)
        self.per_class = MetricCollection(
            {
                "accuracy": MulticlassAccuracy(average=None, **kwargs),
                "precision": MulticlassPrecision(average=None, **kwargs),
                "recall": MulticlassRecall(average=None, **kwargs),
            }
        )
        self.misclassified = FirstMisclassified(keep_misclassified)

    def update(self, images: Tensor, logits: Tensor, labels: Tensor) -> None:
        preds = logits.detach().argmax(dim=1)
        self.confusion.update(preds, labels)
        self.per_class.update(preds, labels)
        self.misclassified.update(images, labels, preds)

    def compute_and_reset(self) -> TestResults:
        per_class = {name: value.cpu().tolist() for name, value in self.per_class.compute().items()}
        images, labels, preds = self.misclassified.collect()
        results = TestResults(self.confusion.compute().cpu(), per_class, images, labels, preds)
        self.confusion.reset()
        self.per_class.reset()
        self.misclassified.reset()
        return results
