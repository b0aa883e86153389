"""Write an IDX data set (Fashion-MNIST by default) as an image folder of PNG files.

    python scripts/idx_to_image_folder.py OUT [--data-dir DIR] [--class-names A B …]

OUT gets `train/<class>/<n>.png` and `test/<class>/<n>.png`, where `<n>` is the image's
position in its IDX file (zero-padded), so the folder keeps the files' order: goodfit reads
numbered files in that order, and `datamodule.val_split_mode=tail` then holds out the same
images as it does on the IDX files. PNG is lossless: the pixels are the IDX files' own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from goodfit.data.fashion_mnist import CLASS_NAMES
from goodfit.data.idx import read_idx
from goodfit.data.locate import SYSTEM_DIR, locate
from goodfit.runtime.errors import UserError


def folder_name(class_name: str) -> str:
    """A class name usable as a folder name (`T-shirt/top` → `T-shirt_top`)."""
    return class_name.replace("/", "_").replace("\\", "_").strip() or "_"


def write_split(images: np.ndarray, labels: np.ndarray, names: list[str], out: Path) -> int:
    """Every image of one split as `out/<class>/<position>.png`; returns how many."""
    width = max(5, len(str(len(images) - 1)))
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    for position, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image).save(out / names[int(label)] / f"{position:0{width}d}.png")
    return len(images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (train/ and test/ inside)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"the four IDX files (default: found as Fashion-MNIST is: ./data, "
                             f"then {SYSTEM_DIR})")  # fmt: skip
    parser.add_argument("--class-names", nargs="+", default=list(CLASS_NAMES),
                        help="one name per label (default: Fashion-MNIST's)")  # fmt: skip
    args = parser.parse_args(argv)
    names = [folder_name(n) for n in args.class_names]
    if len(set(names)) != len(names):
        parser.error(f"--class-names: two classes would share a folder: {names}")
    try:
        if args.data_dir is not None:
            found = locate(args.data_dir, None, download=False)
        else:
            found = locate(Path("data"), SYSTEM_DIR, download=False)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for part in ("train", "test"):
        images = read_idx(found.paths[f"{part}_images"], ndim=3).numpy()
        labels = read_idx(found.paths[f"{part}_labels"], ndim=1).numpy()
        if len(labels) and int(labels.max()) >= len(names):
            parser.error(f"label {int(labels.max())} has no name (--class-names gives "
                         f"{len(names)})")  # fmt: skip
        count = write_split(images, labels, names, args.out / part)
        print(f"{args.out / part}: {count} images from {found.paths[f'{part}_images']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
