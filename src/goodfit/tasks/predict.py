"""Classify image files with a trained model: `python -m goodfit.predict CKPT IMAGE [IMAGE …]`
(CKPT: a checkpoint file or a run folder, whose best checkpoint is used).

Each image is converted to the run's channels and size and normalised exactly as its training
data was (all read from the checkpoint), and named with the run's own classes. Fashion-MNIST
shows light garments on a black background; photos of dark objects on a light background
should be inverted first.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from goodfit.data.folder import image_files
from goodfit.data.images import normalize_images, read_image
from goodfit.runtime.atomic import write_text_atomic
from goodfit.runtime.errors import UserError
from goodfit.tasks.checkpoints import TrainedRun, find_checkpoint, load_trained


def input_preparation(trained: TrainedRun) -> dict[str, Any]:
    """The image shape and normalisation the run's datamodule saved in the checkpoint."""
    target = str(trained.config.datamodule.get("_target_", ""))
    state = trained.checkpoint.get(target.rsplit(".", 1)[-1]) or {}
    shape = state.get("image_shape")
    if not shape:
        raise UserError(
            f"{target} saved no image_shape in the checkpoint, so the images cannot be prepared "
            "as its training data was. Give the datamodule a state_dict() returning "
            '{"image_shape": [channels, height, width], "class_names": [...]}, plus "mean" and '
            '"std" when it standardizes pixels / 255 (goodfit\'s datamodules do; '
            "docs/extending.md), then train again"
        )
    mean, std = state.get("mean"), state.get("std")
    if state.get("normalize") == "standardize" and mean is None:
        raise UserError("the run standardized its data, but the checkpoint holds no mean/std")
    return {"channels": int(shape[0]), "size": (int(shape[1]), int(shape[2])),
            "mean": mean, "std": std, "class_names": state.get("class_names")}  # fmt: skip


def class_names_of(trained: TrainedRun, prep: dict[str, Any]) -> list[str]:
    """The class names the datamodule saved (checkpoints before it did: the module's)."""
    module = trained.module
    names = prep["class_names"] or getattr(module, "class_names", None)
    names = names or dict(getattr(module, "hparams", {})).get("class_names")
    if not names:
        raise UserError("the checkpoint names no classes (neither its datamodule's state nor "
                        "its module's class_names)")  # fmt: skip
    return [str(name) for name in names]


def scorer(module: Any) -> Any:
    """What maps images to class scores: the module itself, or, for a module of one's own
    without a `forward`, the network it was given (`net`)."""
    if type(module).forward is L.LightningModule.forward and hasattr(module, "net"):
        return module.net
    return module


@torch.no_grad()
def classify(module: Any, prep: dict[str, Any], images: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, classes) for uint8 images (N, C, H, W)."""
    return torch.softmax(module(normalize_images(images, prep["mean"], prep["std"])), dim=1)


def describe(probabilities: torch.Tensor, class_names: Sequence[str], top: int = 3) -> str:
    """`Sneaker 0.912 (Sandal 0.051, Ankle boot 0.020)`: the best class, then the runners-up."""
    values, indices = probabilities.topk(min(top, len(class_names)))
    ranked = [f"{class_names[int(i)]} {float(v):.3f}"
              for v, i in zip(values, indices, strict=True)]  # fmt: skip
    return ranked[0] + (f" ({', '.join(ranked[1:])})" if len(ranked) > 1 else "")


BATCH = 256  # images read and classified at once: one forward pass each, memory bounded


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m goodfit.predict", description="Classify images with a trained model."
    )
    parser.add_argument(
        "checkpoint", type=Path, help="a checkpoint (.ckpt) of a goodfit run, or its run folder"
    )
    parser.add_argument("images", type=Path, nargs="+",
                        help="image files (PNG, JPEG, …), or folders of them")  # fmt: skip
    parser.add_argument("--csv", type=Path, metavar="FILE",
                        help="also write each image's class and every class's probability "
                             "to FILE")  # fmt: skip
    parser.add_argument(
        "--trust",
        action="store_true",
        help="build whatever the checkpoint's config names (trusted files only)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.csv and args.csv.expanduser().is_dir():
        print(f"error: --csv {args.csv}: a folder, not a file to write", file=sys.stderr)
        return 2
    try:
        checkpoint = find_checkpoint(args.checkpoint.expanduser(), name="checkpoint")
        trained = load_trained(checkpoint, trust=args.trust, name="checkpoint")
        prep = input_preparation(trained)
        class_names = class_names_of(trained, prep)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    score = scorer(trained.module)
    images = [found for path in args.images for found in _expand(path)]
    if not images:
        print(f"error: no image files in {', '.join(map(str, args.images))}", file=sys.stderr)
        return 2
    results: list[tuple[Path, torch.Tensor]] = []
    for start in range(0, len(images), BATCH):
        readable = _read_images(images[start : start + BATCH], prep)
        if readable:
            batch = torch.stack([image for _, image in readable])
            for (path, _), row in zip(readable, classify(score, prep, batch), strict=True):
                print(f"{path}: {describe(row, class_names)}")
                results.append((path, row))
    if args.csv:
        try:
            write_predictions(args.csv, results, class_names)
        except (UserError, OSError) as err:
            print(f"error: --csv {args.csv}: {err}", file=sys.stderr)
            return 2
    failed = len(images) - len(results)
    if failed:
        print(f"{failed} of {len(images)} images could not be read", file=sys.stderr)
    return 1 if failed else 0


def _read_images(paths: Sequence[Path], prep: dict[str, Any]) -> list[tuple[Path, torch.Tensor]]:
    """The images that can be read, each as the run's channels and size; the others named."""
    readable = []
    for path in paths:
        try:
            readable.append((path, read_image(path, prep["channels"], prep["size"])))
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
    return readable


def write_predictions(path: Path, results: Sequence[tuple[Path, torch.Tensor]],
                      class_names: Sequence[str]) -> None:  # fmt: skip
    """A CSV file: image, class, probability, then each class's probability."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image", "class", "probability", *class_names])
    for image, row in results:
        best = int(row.argmax())
        writer.writerow([str(image), class_names[best], f"{float(row[best]):.6f}",
                         *(f"{float(p):.6f}" for p in row)])  # fmt: skip
    write_text_atomic(path.expanduser(), out.getvalue())
    print(f"{len(results)} predictions written to {path}", file=sys.stderr)


def _expand(path: Path) -> list[Path]:
    """A file as given; a folder as the image files below it."""
    return image_files(path) if path.is_dir() else [path]


if __name__ == "__main__":
    sys.exit(main())
