"""Eval mode for a moment, with every submodule's own mode given back after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """`module.eval()` inside the block; after it, each submodule in the mode it had before, as
    Lightning's validation leaves them, not all switched back as one by `module.train()`: a
    part kept in eval mode (a frozen backbone's BatchNorm while a head is fine-tuned) stays so.
    Written here because Lightning's own helper for it is private."""
    modes = [(sub, sub.training) for sub in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for sub, training in modes:
            sub.training = training
