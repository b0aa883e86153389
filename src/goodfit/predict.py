"""Classify image files with a trained model: `python -m goodfit.predict CKPT IMAGE [IMAGE …]`.

Each image is converted to 28×28 grayscale and normalised exactly as the model's training
data was (read from the checkpoint). Fashion-MNIST shows light garments on a black
background; photos of dark objects on a light background should be inverted first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from goodfit.data.fashion_mnist import CLASS_NAMES, normalize_images

IMAGE_SIZE = (28, 28)


class PredictError(Exception):
    """A checkpoint or an image that cannot be used; the message names it."""


def load_model(ckpt_path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network of a goodfit checkpoint, in eval mode, and its datamodule's normalisation."""
    from goodfit.models import build_network

    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        config = checkpoint["goodfit_config"]
    except Exception as err:  # damaged, missing, or not a goodfit checkpoint
        raise PredictError(f"{ckpt_path}: not a readable goodfit checkpoint ({err})") from err
    net = build_network({**config["model"], "compile": False})
    weights = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items()
               if k.startswith("net.")}  # fmt: skip
    net.load_state_dict(weights)
    net.eval()
    normalization = checkpoint.get("FashionMNISTDataModule") or {
        "normalize": config["datamodule"].get("normalize", "scale"), "mean": None, "std": None
    }  # fmt: skip
    if normalization["normalize"] == "standardize" and normalization["mean"] is None:
        raise PredictError(f"{ckpt_path}: standardized training data, but no mean/std saved")
    return net, normalization


def read_image(path: Path) -> torch.Tensor:
    """An image file as a uint8 (28, 28) grayscale tensor."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            gray = image.convert("L")
            if gray.size != IMAGE_SIZE:
                gray = gray.resize(IMAGE_SIZE, Image.Resampling.BILINEAR)
            return torch.from_numpy(np.asarray(gray, dtype=np.uint8).copy())
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise PredictError(f"{path}: cannot read image ({err})") from err


@torch.no_grad()
def classify(net: nn.Module, normalization: dict[str, Any], images: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, 10) for uint8 images (N, 28, 28)."""
    inputs = normalize_images(images, normalization["mean"], normalization["std"])
    return torch.softmax(net(inputs), dim=1)


def describe(probabilities: torch.Tensor, top: int = 3) -> str:
    """`Sneaker 0.912 (Sandal 0.051, Ankle boot 0.020)`: the best class, then the runners-up."""
    values, indices = probabilities.topk(top)
    ranked = [f"{CLASS_NAMES[int(i)]} {float(v):.3f}" for v, i in zip(values, indices, strict=True)]
    return f"{ranked[0]} ({', '.join(ranked[1:])})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m goodfit.predict", description="Classify images with a trained model."
    )
    parser.add_argument("checkpoint", type=Path, help="a checkpoint (.ckpt) of a goodfit run")
    parser.add_argument("images", type=Path, nargs="+", help="PNG or JPEG files")
    args = parser.parse_args(argv)
    try:
        net, normalization = load_model(args.checkpoint)
    except PredictError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.images:
        try:
            image = read_image(path)
        except PredictError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: {describe(classify(net, normalization, image[None])[0])}")
    if failed:
        print(f"{failed} of {len(args.images)} images could not be read", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
