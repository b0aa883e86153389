"""Build the network a `model` config describes."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from goodfit.runtime.errors import user_errors_of


def build_network(model_cfg: DictConfig | dict[str, Any]) -> nn.Module:
    """Instantiate the network; `compile: true` (not a network argument) compiles it in place,
    which keeps the state_dict keys, so checkpoints load into an uncompiled network."""
    if isinstance(model_cfg, DictConfig):
        model_cfg = OmegaConf.to_container(model_cfg, resolve=True)
    model_cfg = dict(model_cfg)
    compile_net = bool(model_cfg.pop("compile", False))
    with user_errors_of("model", model_cfg):
        net = instantiate(model_cfg)
    if compile_net:
        net.compile()
    return net
