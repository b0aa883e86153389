"""Every `_target_` of a config, and a check that each names something importable and that
takes the node's keys.

Hydra looks a `_target_` up only when it builds that part, after the data is loaded, and then
says `Error locating target '…'` without the nearest name; a key its class does not take
(`+trainer.max_epoch=3`) fails only then too. `check_targets` looks them all up before any
work, names the closest attribute of the module that did import, and each key the class or
function does not take (where its signature tells: not behind **kwargs) with the nearest one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from goodfit.runtime.errors import ConfigError, not_arguments, parameters_of
from goodfit.runtime.imports import TargetNotFound, locate

# The keys Hydra's instantiate reads in a node (the rest are arguments of its class).
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
# The parts every run builds from a node of its own, each from its `_target_`.
BUILT_PARTS = ("model", "module", "datamodule")
# Keys goodfit takes out of a node before building it: not arguments of its class.
_TAKEN_BY_GOODFIT = {"model": {"compile"}}  # models.build_network compiles the network


def targets(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every (`key`, `_target_`) in a nested config (plain dicts and lists)."""
    for key, found in target_nodes(node, where):
        yield key, str(found["_target_"])


def target_nodes(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (`key`, node) in a nested config (plain dicts and lists) whose node has a
    `_target_`; `key` is "(root)" for the top."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield where or "(root)", node
        for key, value in node.items():
            if key != "_target_":
                yield from target_nodes(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from target_nodes(value, f"{where}[{i}]")


def check_targets(cfg: DictConfig) -> None:
    """Raise ConfigError naming each `_target_` that imports nothing, with the nearest name, and
    each key its class or function does not take."""
    container = OmegaConf.to_container(cfg, resolve=False)
    problems = list(_misspelt_hydra_keys(container)) + _parts_without_target(container)
    for key, node in target_nodes(container):
        target = str(node["_target_"])
        why = _not_found(target)
        if why is not None:
            problems.append(f"{key}._target_={target}: {why}")
        elif "${" not in target:
            problems.extend(_keys_not_taken(key, target, node))
    if problems:
        raise ConfigError("\n".join(problems))


def _misspelt_hydra_keys(node: Any, where: str = "") -> Iterator[str]:
    """A line for each key spelt like one Hydra reads (`_targt_`, `_partail_`): Hydra would
    pass it to the class as an argument, or, without `_target_`, build nothing at all."""
    if isinstance(node, dict):
        for key, value in node.items():
            name, at = str(key), f"{where}.{key}" if where else str(key)
            if name not in HYDRA_KEYS and len(name) > 2 and name[0] == name[-1] == "_":
                close = difflib.get_close_matches(name, sorted(HYDRA_KEYS), n=1, cutoff=0.6)
                if close:
                    yield f"{at}: not a key Hydra reads; did you mean {close[0]}?"
            yield from _misspelt_hydra_keys(value, at)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _misspelt_hydra_keys(value, f"{where}[{i}]")


def _parts_without_target(container: dict[str, Any]) -> list[str]:
    """A line for each part goodfit builds whose node names no class to build."""
    return [
        f"{part}: no _target_ (the class it builds; found {', '.join(map(str, node)) or 'no keys'})"
        for part in BUILT_PARTS
        if isinstance(node := container.get(part), dict) and "_target_" not in node
    ]


def _keys_not_taken(key: str, target: str, node: dict[str, Any]) -> list[str]:
    """Lines naming the keys of `node` that `target` does not take (none when its signature
    cannot tell)."""
    parameters = parameters_of(target)
    if parameters is None:
        return []
    own = _TAKEN_BY_GOODFIT.get(key, set())
    names = [str(k) for k in node if not str(k).startswith("_") and k not in own]
    return not_arguments(key, target, [n for n in names if n not in parameters], parameters)


def _not_found(target: str) -> str | None:
    """Why `target` (`package.module.Name`) cannot be imported; None when it can."""
    if "${" in target:  # an interpolation: resolved, and looked up, when the part is built
        return None
    try:
        locate(target)
    except TargetNotFound as err:
        return str(err)
    return None
