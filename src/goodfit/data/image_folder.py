"""A folder of images, one sub-folder per class (torchvision's ImageFolder layout), decoded once in
worker processes, cached in one file, then held in memory like every goodfit data set."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from goodfit.data import folder_cache
from goodfit.data.decode import available_cores, decode_chunk, map_chunks, probe_chunk
from goodfit.data.folder import IMAGE_EXTENSIONS, Listing, list_folder
from goodfit.data.folder_cache import Decoded
from goodfit.data.in_memory import InMemoryDataModule, RawData
from goodfit.data.splits import split_indices
from goodfit.runtime.errors import ConfigError, DataError

log = logging.getLogger(__name__)

MAX_LISTED = 20  # unreadable images named in an error message


def _size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    return (int(image_size[0]), int(image_size[1]))


class ImageFolderDataModule(InMemoryDataModule):
    """Images in `data_dir/<class>/…` (or `data_dir/{train,val,test}/<class>/…`).

    Args:
        data_dir: the folder. With `train/` and `test/` (and optionally `val/`) sub-folders,
            those are the splits; otherwise `test_split` and `val_split` cut them.
        image_size: the (height, width) images are resized to, one number for a square, or None
            for the most common size in the folder.
        channels: 1 (gray) or 3 (RGB), or None: 3 when any image has colour, else 1.
        test_split: the fraction of a folder without split sub-folders held out for testing.
        split_seed: the seed of that cut (kept apart from `seed`, so runs with other seeds
            test on the same images).
        num_workers: processes decoding the images, or None for every core available.
        skip_bad_images: skip (and log, and count in summary.json) images that cannot be
            decoded, instead of stopping the run.
        cache: keep the decoded images in one file (`.goodfit-cache.npz` in `data_dir`, or in
            `cache_dir`), reused while the files and settings are unchanged.
        extensions: the file name endings counted as images.
        The rest: see InMemoryDataModule.
    """

    title = "Image folder"

    def __init__(
        self,
        data_dir: str | None = None,
        image_size: int | Sequence[int] | None = None,
        channels: int | None = None,
        test_split: float = 0.2,
        split_seed: int = 0,
        num_workers: int | None = None,
        skip_bad_images: bool = False,
        cache: bool = True,
        cache_dir: str | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        val_split_mode: str = "random",
        **common: Any,
    ) -> None:
        super().__init__(val_split_mode=val_split_mode, **common)
        self.data_dir, self.image_size, self.channels = data_dir, _size(image_size), channels
        self.test_split, self.split_seed = test_split, split_seed
        self.num_workers, self.skip_bad_images = num_workers, skip_bad_images
        self.cache, self.cache_dir = cache, cache_dir
        self.extensions = tuple(e.lower() for e in extensions)
        self.listing: Listing | None = None

    def prepare_data(self) -> None:
        """List and check the folder (classes, splits, files) before anything is decoded."""
        if not self.data_dir:
            raise ConfigError(
                "datamodule.data_dir is not set: give the folder of class sub-folders, "
                "e.g. datamodule.data_dir=/path/to/images"
            )
        self.listing = list_folder(self.data_dir, self.extensions)

    def _key(self, listing: Listing) -> str:
        settings = {"format": folder_cache.FORMAT, "image_size": self.image_size,
                    "channels": self.channels, "skip_bad_images": self.skip_bad_images,
                    "class_names": listing.class_names}  # fmt: skip
        text = json.dumps(settings, sort_keys=True) + listing.fingerprint()
        return hashlib.sha256(text.encode()).hexdigest()

    def read(self) -> RawData:
        if self.listing is None:
            self.prepare_data()
        listing = self.listing
        path = folder_cache.cache_path(listing.root, self.cache_dir)
        key = self._key(listing)
        decoded = folder_cache.load(path, key) if self.cache else None
        if decoded is not None and not self._fits(decoded, listing):
            log.warning("The image cache %s does not match the folder; rebuilding it", path)
            decoded = None
        if decoded is None:
            decoded = self._decode(listing)
            if self.cache and folder_cache.save(path, key, decoded):
                log.info("Decoded images cached in %s", path)
        else:
            log.info("Images loaded from the cache %s", path)
        for skipped in decoded.skipped:
            log.warning("Skipped an image that cannot be decoded: %s", listing.root / skipped)
        self.summary_facts = {"skipped_images": len(decoded.skipped),
                              "skipped_paths": list(decoded.skipped)}  # fmt: skip
        return self._raw(decoded, listing)

    @staticmethod
    def _fits(decoded: Decoded, listing: Listing) -> bool:
        n = len(decoded.labels)
        return (decoded.class_names == listing.class_names
                and n + len(decoded.skipped) == len(listing.paths)
                and (n == 0 or 0 <= int(decoded.labels.min()) <= int(decoded.labels.max())
                     < len(listing.class_names))
                and set(np.unique(decoded.splits).tolist()) <= {0, 1, 2})  # fmt: skip

    def _decode(self, listing: Listing) -> Decoded:
        """Decode every image in worker processes: first their headers when the size or the
        channels are to be found, then the pixels."""
        paths = [str(listing.root / p) for p in listing.paths]
        workers = self.num_workers or available_cores()
        size, channels, bad = self.image_size, self.channels, {}
        log.info("Decoding %d images of %s in %d process(es)", len(paths), listing.root, workers)
        if size is None or channels is None:
            probes = [p for chunk in map_chunks(probe_chunk, paths, workers) for p in chunk]
            bad = {i: p for i, p in enumerate(probes) if isinstance(p, str)}
            self._stop_unless_skipping(bad)
            good = [p for p in probes if not isinstance(p, str)]
            if not good:
                raise DataError(f"{listing.root}: none of its {len(paths)} images can be decoded")
            if size is None:
                size = Counter((h, w) for h, w, _ in good).most_common(1)[0][0]
            if channels is None:
                channels = 3 if any(colour for _, _, colour in good) else 1
        keep = [i for i in range(len(paths)) if i not in bad]
        chunks = map_chunks(decode_chunk, [paths[i] for i in keep], workers, channels, size)
        offset, failed = 0, {}
        for images, errors in chunks:
            failed.update({keep[offset + k]: message for k, message in errors})
            offset += len(images)
        self._stop_unless_skipping(failed)
        images = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros((0, 1, 1, 1))
        if failed:
            kept_ok = [k for k, i in enumerate(keep) if i not in failed]
            images, rows = images[kept_ok], [keep[k] for k in kept_ok]
        else:
            rows = keep
        decoded = Decoded(
            images=np.ascontiguousarray(images, dtype=np.uint8),
            labels=np.array([listing.labels[i] for i in rows], dtype=np.int64),
            splits=np.array([listing.splits[i] for i in rows], dtype=np.int8),
            class_names=listing.class_names,
            skipped=tuple(listing.paths[i] for i in sorted({**bad, **failed})),
        )  # fmt: skip
        self._check_every_class_kept(decoded, listing)
        return decoded

    def _stop_unless_skipping(self, bad: dict[int, str]) -> None:
        if not bad or self.skip_bad_images:
            return
        messages = [bad[i] for i in sorted(bad)]
        more = f"\n  … and {len(messages) - MAX_LISTED} more" if len(messages) > MAX_LISTED else ""
        raise DataError(
            f"{len(messages)} image(s) cannot be decoded:\n  "
            + "\n  ".join(messages[:MAX_LISTED])
            + more
            + "\nRemove or replace them, or set datamodule.skip_bad_images=true to skip them."
        )

    @staticmethod
    def _check_every_class_kept(decoded: Decoded, listing: Listing) -> None:
        """Skipping unreadable images must not empty a class of a split."""
        present = set(zip(decoded.splits.tolist(), decoded.labels.tolist(), strict=True))
        for split, label in sorted(set(zip(listing.splits, listing.labels, strict=True))):
            if (split, label) not in present:
                name = listing.class_names[label]
                folder = listing.folder_of(split, label)
                raise DataError(f"{folder}: class '{name}' has no readable images")

    def _raw(self, decoded: Decoded, listing: Listing) -> RawData:
        """The splits: the folder's own, or cut from the one pool by `test_split`."""
        images = torch.from_numpy(decoded.images)
        labels = torch.from_numpy(decoded.labels)
        splits = torch.from_numpy(decoded.splits)

        def part(code: int) -> tuple[torch.Tensor, torch.Tensor]:
            mask = splits == code
            return images[mask], labels[mask]

        if listing.has_splits:
            val = part(1) if bool((splits == 1).any()) else None
            train, test = part(0), part(2)
        else:
            kept, held = split_indices(len(labels), self.test_split, "random", self.split_seed,
                                       key="datamodule.test_split")  # fmt: skip
            kept, held = kept.sort().values, held.sort().values  # file order within each
            train, test, val = (images[kept], labels[kept]), (images[held], labels[held]), None
        return RawData(train=train, test=test, val=val, class_names=listing.class_names,
                       source=str(listing.root))  # fmt: skip
