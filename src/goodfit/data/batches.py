"""Batches cut by index from tensors held in memory: no per-sample Python work, no workers."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


class EpochPermutation:
    """A seeded permutation that depends only on (seed, epoch), so a resumed run sees the
    same order. Lightning calls `set_epoch` on a loader's `sampler` before every epoch."""

    def __init__(self, n: int, seed: int, shuffle: bool) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> torch.Tensor | None:
        """The sample order for the current epoch, or None for the natural order."""
        if not self.shuffle:
            return None
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % 2**63)
        return torch.randperm(self.n, generator=generator)


class TensorBatches:
    """An iterable of `(images, labels)` batches over in-memory tensors.

    Shuffled loaders permute the whole tensor once per epoch (one gather, on the device the
    tensors live on) and then yield contiguous slices, which cost nothing per step.

    With several processes (`world_size` > 1) each takes every `world_size`-th sample of the
    same permutation, starting at its `rank`: disjoint shards. A shuffled (training) loader
    drops the remainder so every process runs the same number of steps; an evaluation loader
    keeps every sample exactly once, so synced metrics equal a one-process run's.
    It is stateful: Lightning saves `state_dict()` in checkpoints and, when a run resumes
    mid-epoch, `load_state_dict()` makes the next pass skip the batches already trained on.

    With `steps_per_batch` K > 1 each item holds K consecutive batches in one slice (the last
    may hold fewer), which the module splits back into batches of `batch_size`: Lightning's
    per-batch work is then done once per K optimizer steps. The batches are the same as with
    K = 1; `len()` counts the items.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        steps_per_batch: int = 1,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.images, self.labels = images, labels
        if steps_per_batch < 1:
            raise ValueError(f"steps_per_batch={steps_per_batch}: must be >= 1")
        self.batch_size, self.drop_last = batch_size, drop_last
        self.steps_per_batch = steps_per_batch
        self.rank, self.world_size = rank, world_size
        self.sampler = EpochPermutation(len(images), seed, shuffle)
        self.batch_sampler = None  # Lightning looks for it beside `sampler`, as on a DataLoader
        self._yielded = 0  # batches yielded in the current pass
        self._resume: tuple[int, int] | None = None  # (epoch, first batch) of a resumed pass

    def state_dict(self) -> dict[str, int]:
        """Where the current pass stands: its epoch and the batches already yielded."""
        return {"epoch": self.sampler.epoch, "batches_yielded": self._yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Make the next pass over `state["epoch"]` start after the batches already yielded."""
        self._resume = (int(state["epoch"]), int(state["batches_yielded"]))

    def _shard_size(self) -> int:
        n = len(self.images)
        if self.world_size == 1:
            return n
        if self.sampler.shuffle:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def batches(self) -> int:
        """Batches of `batch_size` in one pass (optimizer steps, when training)."""
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __len__(self) -> int:
        return math.ceil(self.batches() / self.steps_per_batch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = self.images, self.labels
        order = self.sampler.order()
        if self.world_size > 1:
            if order is None:
                order = torch.arange(len(images))
            order = order[self.rank :: self.world_size][: self._shard_size()]
        if order is not None:
            order = order.to(images.device)
            images, labels = images[order], labels[order]
        first = 0
        if self._resume is not None:
            # The epoch is set after the state is loaded, so it is compared here, at first use.
            epoch, skip = self._resume
            first = skip if epoch == self.sampler.epoch else 0
            self._resume = None
        self._yielded = first
        size = self.batch_size * self.steps_per_batch
        end = min(len(images), self.batches() * self.batch_size)
        for i in range(first, len(self)):
            self._yielded = i + 1
            start = i * size
            stop = min(start + size, end)
            yield images[start:stop], labels[start:stop]
