"""Small data sets written as a user would bring them: image folders, IDX files, CIFAR batches.

Each class has its own colour and pattern, so a model learns them in a few steps."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from goodfit.data.idx import write_idx

# Ten colours with ten different gray levels (their means), so gray copies differ too.
COLOURS = [(220, 30, 30), (30, 200, 60), (40, 50, 230), (240, 220, 40), (250, 250, 250),
           (10, 10, 10), (120, 0, 160), (0, 160, 160), (200, 120, 0), (90, 90, 90)]  # fmt: skip


def class_image(label: int, height: int, width: int, rng: np.random.Generator,
                gray: bool = False) -> np.ndarray:  # fmt: skip
    """A noisy image of class `label`: a colour and a stripe position of its own."""
    image = np.zeros((height, width, 3), dtype=np.float64)
    image[:] = COLOURS[label % len(COLOURS)]
    top = ((label % 4) * height) // 4
    band = slice(top, top + max(1, height // 4))
    image[band] = 255 - image[band]
    image += rng.normal(0, 12, image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image.mean(axis=2).astype(np.uint8) if gray else image


def write_image_folder(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog", "owl"),
    per_class: int = 12,
    splits: tuple[str, ...] | None = None,
    size: tuple[int, int] = (12, 10),
    odd: tuple[int, int] | None = (15, 9),
    gray: bool = False,
    some_gray: bool = False,
    seed: int = 0,
) -> Path:
    """`root/<class>/NNNN.png|jpg` (or `root/<split>/<class>/…`): PNG and JPEG files (about a
    third JPEG), mostly of `size` (height, width), every fifth of the `odd` size, numbered
    across the classes; gray (`gray`), or RGB with every seventh gray (`some_gray`)."""
    rng = np.random.default_rng(seed)
    number = 0
    for split in splits or (None,):
        base = root / split if split else root
        count = per_class if split in (None, "train") else max(2, per_class // 3)
        for _ in range(count):
            for label, name in enumerate(classes):
                folder = base / name
                folder.mkdir(parents=True, exist_ok=True)
                h, w = odd if (odd and number % 5 == 4) else size
                array = class_image(label, h, w, rng, gray or (some_gray and number % 7 == 3))
                suffix = ".jpg" if rng.random() < 0.3 else ".png"
                image = Image.fromarray(array)
                image.save(folder / f"{number:04d}{suffix}", quality=95)
                number += 1
    return root


def write_idx_set(folder: Path, n_train: int = 120, n_test: int = 40, classes: int = 10,
                  size: tuple[int, int] = (28, 28), names: dict[str, str] | None = None,
                  gz: bool = True) -> Path:  # fmt: skip
    """Four IDX files (MNIST's names unless `names` says otherwise) of learnable gray images."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or {
        "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
    }  # fmt: skip
    suffix = ".gz" if gz else ""
    rng = np.random.default_rng(1)
    for part, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % classes).astype(np.uint8)
        images = np.stack([class_image(int(c), *size, rng, gray=True) for c in labels])
        write_idx(folder / (names[f"{part}_images"] + suffix), images)
        write_idx(folder / (names[f"{part}_labels"] + suffix), labels)
    return folder


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]  # fmt: skip


def write_cifar(root: Path, per_batch: int = 20, test: int = 30) -> Path:
    """CIFAR-10's python version in `root/cifar-10-batches-py/`, pickled as the original is
    (protocol 2, a dict holding a uint8 `data` array and a list of `labels`)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)

    def batch(name: str, n: int) -> None:
        labels = [c % 10 for c in range(n)]
        images = np.stack([class_image(c, 32, 32, rng).transpose(2, 0, 1) for c in labels])
        data = {"batch_label": name, "labels": labels, "data": images.reshape(n, -1),
                "filenames": [f"{name}_{k}.png" for k in range(n)]}  # fmt: skip
        (folder / name).write_bytes(pickle.dumps(data, protocol=2))

    for i in range(1, 6):
        batch(f"data_batch_{i}", per_batch)
    batch("test_batch", test)
    meta = {"label_names": CIFAR_NAMES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root
