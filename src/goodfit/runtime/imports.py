"""The object a `_target_` names, found as Hydra finds it, but quietly and with the reason.

Hydra's `get_object` logs an ERROR for every name it cannot find, and its message names neither
the part that is missing nor the nearest one. The config checks look names up before any work,
often only to ask, so they use this instead.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any


class TargetNotFound(ImportError):
    """`target` imports nothing; the message says why (and the nearest name, when there is one)."""


def locate(target: str) -> Any:
    """The object `package.module.Name` names; TargetNotFound when it cannot be imported."""
    parts = target.split(".")
    module, imported = None, 0
    for i in range(len(parts), 0, -1):  # the longest prefix that is a module
        name = ".".join(parts[:i])
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and name.startswith(err.name):
                continue  # no such module: a shorter prefix, then an attribute of it
            raise TargetNotFound(f"importing it fails: {err}") from None
        except Exception as err:  # the module exists but fails as it is imported
            raise TargetNotFound(f"importing it fails: {type(err).__name__}: {err}") from None
        imported = i
        break
    if module is None:
        raise TargetNotFound(f"no module named {parts[0]}")
    found: Any = module
    for depth, name in enumerate(parts[imported:], start=imported):
        if not hasattr(found, name):
            owner = ".".join(parts[:depth])
            names = [n for n in dir(found) if not n.startswith("_")]
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"; did you mean {owner}.{close[0]}?" if close else ""
            raise TargetNotFound(f"{owner} has no {name}{hint}")
        found = getattr(found, name)
    return found


def class_or_none(target: Any) -> type | None:
    """The class a `_target_` names; None for none, a function, or a name that imports nothing
    (Hydra says so when it builds that part)."""
    if not target:
        return None
    try:
        found = locate(str(target))
    except TargetNotFound:
        return None
    return found if isinstance(found, type) else None
