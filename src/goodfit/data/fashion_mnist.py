"""The Fashion-MNIST LightningDataModule: four IDX files, found on disk (or downloaded as a last
resort), checked against the standard files' checksums, held in memory."""

from __future__ import annotations

from typing import Any

from goodfit.data.idx_data import IDXDataModule
from goodfit.data.locate import FASHION_MNIST, FILES, SYSTEM_DIR, FoundFiles, locate
from goodfit.data.splits import per_class_subset, relabel, split_indices

__all__ = ["CLASS_NAMES", "FashionMNISTDataModule", "FoundFiles", "locate", "per_class_subset",
           "relabel", "split_indices"]  # fmt: skip

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# SHA-256 of the decoded bytes (header excluded) of the standard files, so a gzip'd and a
# plain copy check alike. Only files with the standard number of samples are checked.
STANDARD_SHA256 = {
    "train_images": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
    "train_labels": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
    "test_images": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
    "test_labels": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
}
STANDARD_SIZES = {"train": 60_000, "test": 10_000}


class FashionMNISTDataModule(IDXDataModule):
    """Fashion-MNIST from IDX files, held in memory (on the accelerator when there is one).

    `classes` keeps only those class numbers (0..9), renumbered in that order; the rest of the
    arguments are InMemoryDataModule's."""

    def __init__(
        self,
        data_dir: str | None = None,
        system_dir: str | None = str(SYSTEM_DIR),
        download: bool = True,
        verify_checksums: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(
            data_dir, name="Fashion-MNIST", class_names=CLASS_NAMES, files=FILES,
            checksums=STANDARD_SHA256, standard_sizes=STANDARD_SIZES,
            torchvision_name="FashionMNIST", system_dir=system_dir, download=download,
            verify_checksums=verify_checksums, image_hw=(28, 28),
            install_hint=FASHION_MNIST.install_hint, **common,
        )  # fmt: skip
