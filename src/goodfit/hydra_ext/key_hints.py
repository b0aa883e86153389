"""A misspelled key on the command line gets the nearest valid name; a path holding `=` gets
the quoting it needs; a group choice that names no option gets the nearest one.

Hydra refuses an unknown key (`trainer.max_epoch=3`) but only suggests appending it with `+`.
When Hydra has refused the command line, `hint_unknown_keys` composes the config the command
line selects and names, for each unknown key, the closest existing one. Hydra also refuses a
value holding `=` unquoted (`ckpt_path=logs/multiruns/<sweep>/optimizer=sgd`: a sweep job's
folder) with a grammar error that names neither; the hint shows the quoted form.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from goodfit.runtime.errors import parameters_of

HYDRA_ERROR_STATUS = 1  # Hydra's exit status when it refuses the command line


def config_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config, nodes and leaves."""
    keys = []
    if isinstance(cfg, DictConfig):
        for key in cfg:
            dotted = f"{prefix}{key}"
            keys.append(dotted)
            keys += config_keys(cfg._get_node(key), dotted + ".")
    elif isinstance(cfg, ListConfig):
        return []
    return keys


def _is_group(config_dirs: Sequence[Path], key: str) -> bool:
    return any((d / key.replace(".", "/")).is_dir() for d in config_dirs)


def _search_path(overrides: Sequence[Any]) -> list[str]:
    """The `hydra.searchpath` entries given on the command line."""
    found: list[str] = []
    for override in overrides:
        if override.key_or_group == "hydra.searchpath":
            value = override.value()
            found += [str(v) for v in (value if isinstance(value, list) else [value])]
    return found


def _config_dirs(config_dir: Path, overrides: Sequence[Any]) -> list[Path] | None:
    """goodfit's config folder and the folders `hydra.searchpath` adds (whose groups gain their
    options); None when an entry is not a folder (`pkg://…`), whose options cannot be listed."""
    dirs = [config_dir]
    for entry in _search_path(overrides):
        if not entry.startswith("file://"):
            return None
        dirs.append(Path(entry[len("file://") :]))
    return dirs


def _parsed_with_dirs(config_dir: Path, args: Sequence[str]) -> tuple[list[Any], list[Path]] | None:
    """The command line's overrides, parsed by Hydra, and the config folders they search; None
    when Hydra cannot parse them (its own message says it all) or a folder cannot be listed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides(
            [a for a in args if not a.startswith("-")]
        )
    except Exception:  # a syntax error
        return None
    config_dirs = _config_dirs(config_dir, overrides)
    return None if config_dirs is None else (overrides, config_dirs)


def unknown_key_hints(config_dir: Path, config_name: str, args: Sequence[str]) -> list[str]:
    """One line per command-line key that the composed config lacks, with the nearest name."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    parsed = _parsed_with_dirs(config_dir, args)
    if parsed is None:
        return []
    overrides, config_dirs = parsed
    search_path = [a for a in args if a.startswith("hydra.searchpath=")]
    choices, keys = list(search_path), []
    for override in overrides:
        key = override.key_or_group
        if override.is_add() or override.is_delete() or key.split(".")[0] == "hydra":
            continue
        if _is_group(config_dirs, key):
            if override.is_sweep_override():  # the first choice of a sweep stands for all
                choices.append(f"{key}={next(iter(override.sweep_string_iterator()))}")
            else:
                choices.append(f"{key}={override.get_value_element_as_str()}")
        else:
            keys.append(key)
    if not keys:
        return []
    try:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=choices)
    except Exception:  # the group choices themselves are wrong; Hydra said so
        return []
    finally:
        GlobalHydra.instance().clear()
    known = config_keys(cfg)
    hints = []
    for key in keys:
        if key in known:
            continue
        target = _target_taking(cfg, key)
        if target:
            value = next((a.partition("=")[2] for a in args if a.startswith(f"{key}=")), "…")
            hints.append(f"{key} is an argument of {target} that the config does not set; "
                         f"add it with +{key}={value}")  # fmt: skip
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6) or same_name(key, known)
        hint = f"did you mean {' or '.join(close)}?" if close else "`--cfg job` lists the keys"
        hints.append(f"{key} is not a key of the config; {hint}")
    return hints


def same_name(key: str, known: Iterable[str], most: int = 3) -> list[str]:
    """The keys named like `key`'s last part, shallowest first: `lr` is `optimizer.lr`;
    eval.py's `data_dir` is what `datamodule.data_dir` meant."""
    name = key.rsplit(".", 1)[-1]
    found = [k for k in known if k.rsplit(".", 1)[-1] == name and k != key]
    return sorted(found, key=lambda k: (k.count("."), k))[:most]


def _target_taking(cfg: DictConfig, key: str) -> str | None:
    """The `_target_` of the node holding `key` when that class or function takes the key as an
    argument (`trainer.limit_train_batches`: Lightning's Trainer does), else None."""
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else None
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    target = str(node._get_node("_target_"))
    parameters = parameters_of(target)
    return target if parameters and name in parameters else None


def choice_hints(config_dir: Path, args: Sequence[str]) -> list[str]:
    """One line per config-group choice that names no option (`experiment=goood`), with the
    nearest option; Hydra lists them all, above its config search path."""
    parsed = _parsed_with_dirs(config_dir, args)
    if parsed is None:
        return []
    overrides, config_dirs = parsed
    hints = []
    for override in overrides:
        key = override.key_or_group
        if override.is_delete() or key.startswith("hydra") or not _is_group(config_dirs, key):
            continue  # hydra/…: Hydra's plugins bring options that conf/ does not hold
        options = sorted({f.stem for d in config_dirs for f in (d / key).glob("*.yaml")})
        values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                  else [override.get_value_element_as_str()])  # fmt: skip
        for value in values:
            if value in options or value == "null" or value.startswith("["):
                continue
            close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
            hint = f"did you mean {key}={close[0]}?" if close else f"one of {', '.join(options)}"
            hints.append(f"{key}={value} is not an option of {key}; {hint}")
    return hints


def quoting_hints(args: Sequence[str]) -> list[str]:
    """One line per command-line override Hydra cannot parse because its value holds an
    unquoted `=` (a sweep job's folder) or `~` (a home folder, which the shell leaves alone after
    `key=`), with the quoted form to type instead."""
    hints = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if arg.startswith("-") or not sep or not {"=", "~"} & set(value) or value[:1] in "'\"":
            continue
        typed = typed_override(key, value)
        if typed != arg:
            mark = "=" if "=" in value else "~"
            hints.append(f"{key}: a value that holds '{mark}' must be quoted for Hydra; type "
                         f"{typed} (with both kinds of quotes)")  # fmt: skip
    return hints


def typed_override(key: str, value: str) -> str:
    """`key=value` as a shell command line must give it for Hydra to read `value` as is: quoted
    (`"key='value'"`) when Hydra's grammar would refuse it or read something else (a sweep
    of a value with commas, a `~` or `=` in a path)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    plain = f"{key}={value}"
    try:
        [override] = OverridesParser.create().parse_overrides([plain])
        if not override.is_sweep_override() and override.value() == value:
            return plain
    except Exception:  # Hydra's grammar error; the quoted form parses
        pass
    return f"\"{key}='{value}'\""


def as_overrides(argv: Sequence[str]) -> list[str] | None:
    """The command line's overrides, with `--config-dir DIR` (`-cd`) as the search-path entry it
    amounts to and other flags left out; None with `--config-path` or `--config-name` (another
    primary config, which the hints do not compose)."""
    overrides, dirs = [], []
    args = iter(argv)
    for arg in args:
        flag, equals, value = arg.partition("=")
        if flag in ("--config-path", "-cp", "--config-name", "-cn"):
            return None
        if flag in ("--config-dir", "-cd"):
            dirs.append(Path(value if equals else next(args, "")).resolve().as_uri())
        elif not arg.startswith("-"):
            overrides.append(arg)
    if dirs and any(o.startswith("hydra.searchpath=") for o in overrides):
        return None  # both: the hints would need to merge them
    return [f"hydra.searchpath=[{','.join(dirs)}]", *overrides] if dirs else overrides


@contextmanager
def hint_unknown_keys(config_dir: Path, config_name: str) -> Iterator[None]:
    """When Hydra refuses the command line, add the nearest valid name of each unknown key."""
    try:
        yield
    except SystemExit as exit_:
        args = as_overrides(sys.argv[1:])
        if exit_.code == HYDRA_ERROR_STATUS and args is not None:
            hints = quoting_hints(args) + choice_hints(config_dir, args)
            for hint in hints + unknown_key_hints(config_dir, config_name, args):
                print(hint, file=sys.stderr)
        raise
