"""Every `_target_` of a config, and a check that each names something importable.

Hydra looks a `_target_` up only when it builds that part, after the data is loaded, and then
says `Error locating target '…'` without the nearest name. `check_targets` looks them all up
before any work and names the closest attribute of the module that did import.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from goodfit.runtime.errors import ConfigError


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
    parts = target.split(".")
    module, imported = None, 0
    for i in range(len(parts), 0, -1):  # the longest prefix that is a module
        name = ".".join(parts[:i])
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and name.startswith(err.name):
                continue  # no such module: a shorter prefix, then an attribute of it
            return f"importing it fails: {err}"  # a module it imports is missing
        except Exception as err:  # the module exists but fails as it is imported
            return f"importing it fails: {type(err).__name__}: {err}"
        imported = i
        break
    if module is None:
        return f"no module named {parts[0]}"
    found: Any = module
    for depth, name in enumerate(parts[imported:], start=imported):
        if not hasattr(found, name):
            owner = ".".join(parts[:depth])
            names = [n for n in dir(found) if not n.startswith("_")]
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"; did you mean {owner}.{close[0]}?" if close else ""
            return f"{owner} has no {name}{hint}"
        found = getattr(found, name)
    return None
