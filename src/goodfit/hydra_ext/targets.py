"""Every `_target_` of a config, and a check that each names something importable.

Hydra looks a `_target_` up only when it builds that part, after the data is loaded, and then
says `Error locating target '…'` without the nearest name. `check_targets` looks them all up
before any work and names the closest attribute of the module that did import.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from goodfit.runtime.errors import ConfigError
from goodfit.runtime.imports import TargetNotFound, locate


def targets(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every (`key`, `_target_`) in a nested config (plain dicts and lists)."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "_target_":
                yield where or "(root)", str(value)
            else:
                yield from targets(value, path)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from targets(value, f"{where}[{i}]")


def check_targets(cfg: DictConfig) -> None:
    """Raise ConfigError naming each `_target_` that imports nothing, with the nearest name."""
    container = OmegaConf.to_container(cfg, resolve=False)
    problems = [f"{key}._target_={target}: {why}" for key, target in targets(container)
                if (why := _not_found(target)) is not None]  # fmt: skip
    if problems:
        raise ConfigError("\n".join(problems))


def _not_found(target: str) -> str | None:
    """Why `target` (`package.module.Name`) cannot be imported; None when it can."""
    if "${" in target:  # an interpolation: resolved, and looked up, when the part is built
        return None
    try:
        locate(target)
    except TargetNotFound as err:
        return str(err)
    return None
