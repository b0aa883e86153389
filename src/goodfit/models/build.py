"""Build the network a `model` config describes."""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from goodfit.runtime.errors import ConfigError, first_line, user_errors_of
from goodfit.runtime.modes import eval_mode


def build_network(
    model_cfg: DictConfig | dict[str, Any],
    fits: tuple[tuple[int, int, int], int] | None = None,
) -> nn.Module:
    """Instantiate the network; `compile: true` (not a network argument) compiles it in place,
    which keeps the state_dict keys, so checkpoints load into an uncompiled network. `fits`:
    the data's (channels, height, width) and number of classes, checked before compiling."""
    if isinstance(model_cfg, DictConfig):
        model_cfg = OmegaConf.to_container(model_cfg, resolve=True)
    model_cfg = dict(model_cfg)
    compile_net = bool(model_cfg.pop("compile", False))
    with user_errors_of("model", model_cfg):
        net = instantiate(model_cfg)
    if fits is not None:
        check_fits_data(net, *fits, target=str(model_cfg.get("_target_")))
    if compile_net:
        net.compile()
    return net


def check_fits_data(net: nn.Module, image_shape: tuple[int, int, int], num_classes: int,
                    target: str) -> None:  # fmt: skip
    """Two blank images of the data's shape through the network, before any training: one that
    does not take them, or does not give one score per class, is a ConfigError naming the model
    (cross-entropy would fail at the first batch with `IndexError: Target 8 is out of bounds`)."""
    from torch.nn.parameter import is_lazy

    if any(is_lazy(p) for p in net.parameters()):
        return  # the probe would initialise them, drawing random numbers the run would draw later
    shape = "×".join(map(str, image_shape))
    try:
        with torch.no_grad(), eval_mode(net):
            scores = net(torch.zeros(2, *image_shape))
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise ConfigError(
            f"model ({target}) fails on the data's {shape} images: {first_line(err)}"
        ) from None
    got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
    if got != (2, num_classes):
        raise ConfigError(
            f"model ({target}) gives {got} for 2 images of {shape}, not one score per class "
            f"(2, {num_classes}): the data has {num_classes} classes (model.num_classes?)"
        )
