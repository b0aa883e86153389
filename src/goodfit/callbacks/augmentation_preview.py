"""See what the augmentation does: a few training images, each beside augmented versions."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from goodfit.data.images import display_image
from goodfit.runtime.errors import require_count

log = logging.getLogger(__name__)

PREVIEW_FILE = "augmentation_preview.png"


class AugmentationPreview(L.Callback):
    """At the start of fit, writes `augmentation_preview.png` into `out_dir` and logs it to
    TensorBoard: `n_images` rows, each an original image and `n_versions` augmented ones.
    The augmentation's random draws do not change training's random stream. A datamodule that
    keeps no training images in memory (`train.images`, as goodfit's do) gets none."""

    def __init__(self, out_dir: str | Path, n_images: int = 6, n_versions: int = 7) -> None:
        self.out_dir = Path(out_dir)
        self.n_images = require_count("AugmentationPreview: n_images", n_images)
        self.n_versions = require_count("AugmentationPreview: n_versions", n_versions)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        augmentation = getattr(datamodule, "augmentation", None)
        if augmentation is None or not trainer.is_global_zero:
            return
        train = getattr(datamodule, "train", None)
        if not isinstance(getattr(train, "images", None), torch.Tensor):
            log.info("callbacks.augmentation_preview: %s keeps no training images in memory "
                     "(train.images); no preview", type(datamodule).__name__)  # fmt: skip
            return
        images = train.images[: self.n_images]
        with torch.random.fork_rng(devices=[images.device] if images.is_cuda else []):
            torch.manual_seed(0)
            versions = [augmentation(images) for _ in range(self.n_versions)]
        grid = torch.stack([images, *versions], dim=1).cpu()  # (rows, 1 + versions, C, H, W)
        figure = preview_figure(grid)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        figure.savefig(self.out_dir / PREVIEW_FILE, dpi=100)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure("views/augmentation_preview", figure, global_step=0)
        import matplotlib.pyplot as plt

        plt.close(figure)


def preview_figure(grid: torch.Tensor):  # -> matplotlib Figure (imported lazily)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = grid.shape[:2]
    figure, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            axis = axes[r][c]
            axis.imshow(display_image(grid[r, c]), cmap="gray")
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title("original" if c == 0 else f"augmented {c}", fontsize=7)
    figure.tight_layout()
    return figure
