"""OmegaConf resolvers the configs use; registered when goodfit's entry points import this."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from goodfit.hydra_ext import hydra_config
from goodfit.hydra_ext.overrides import override_key
from goodfit.hydra_ext.run_folder import auto_resume_state

# Drawn once per process: two runs started in the same second get different folders.
RUN_UID = secrets.token_hex(3)


def swept_keys(sweep_dir: Path) -> set[str] | None:
    """Keys given several values on the command line, read from the sweep's multirun.yaml
    (written by Hydra's basic sweeper before it launches); None when it cannot be known."""
    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file():
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = hydra_config.override_strings(OmegaConf.load(saved).hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(overrides)
    return {o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()}


def _short(override: str) -> str:
    """`optimizer.lr=0.00029380279387035364` → `optimizer.lr=0.0002938`: a label, not a value."""
    key, _, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return f"{key}={number:.4g}" if "." in value or "e" in value.lower() else override


SEED_KEY = "seed"


# Bytes of a folder name made from overrides or a run's name: file systems take 255, and a run
# folder adds its start time and a suffix around it.
FOLDER_PART_BYTES = 200


def folder_part(text: Any) -> str:
    """`text` as one folder name that a shell command can hold unquoted: each run of slashes or
    whitespace becomes `_` (`name=a/b` would nest a folder; `name='my exp'` would split the
    printed `tensorboard --logdir` command). A name too long for a file system keeps its start
    and ends in a digest of the whole, so two long names stay apart."""
    name = re.sub(r"[\s/\\]+", "_", str(text))
    if len(name.encode()) <= FOLDER_PART_BYTES:
        return name
    digest = "~" + hashlib.sha1(name.encode()).hexdigest()[:10]
    kept = name.encode()[: FOLDER_PART_BYTES - len(digest)].decode(errors="ignore")
    return kept + digest


def job_dirname(
    sweep_dir: str, task_overrides: Sequence[str], job_num: int | str, search_params: Any = None
) -> str:
    """A multirun job's folder, named after the overrides its sweep varies (`optimizer=sgd`).

    Overrides shared by every job (a data folder, a number of epochs) stay out of the name.
    A swept `seed` becomes a sub-folder (`experiment=good/seed=1`), so TensorBoard's run names
    group one setting's seeds together. A search (goodfit's Optuna sweeper) varies the keys of
    `hydra.sweeper.params` and runs trial N as job N; its trials are named `trial<N>-…`, since
    a search may try the same values twice. When the varied keys are unknown, every override
    is used. `/` or whitespace in a value is replaced (`folder_part`).
    """
    overrides = [str(o) for o in task_overrides]
    if search_params:
        varied = {str(key) for key in search_params}
        name = ",".join(_short(o) for o in overrides if override_key(o) in varied)
        return folder_part(f"trial{job_num}-{name}")
    swept = swept_keys(Path(sweep_dir))
    if swept is not None:
        overrides = [o for o in overrides if override_key(o) in swept]
    seeds = [o for o in overrides if override_key(o) == SEED_KEY]
    rest = [o for o in overrides if override_key(o) != SEED_KEY]
    name = folder_part(",".join(rest))
    if seeds:
        return f"{name}/{seeds[0]}" if name else seeds[0]
    return name or f"job{job_num}"


def run_name() -> str:
    """The run's name in the loggers: its folder relative to the sweep folder in a multirun
    (`experiment=good/seed=1`, `trial3-…`), else the run folder's name."""
    output = hydra_config.output_dir()
    if output is None:
        return "run"
    sweep = hydra_config.sweep_dir()
    if sweep is not None and Path(output).is_relative_to(sweep):
        return Path(output).relative_to(sweep).as_posix()
    return Path(output).name


def logger_root() -> str:
    """Where loggers that keep one store for many runs (MLflow) put it: the sweep folder in a
    multirun, else the run folder's parent (`logs/runs`)."""
    sweep = hydra_config.sweep_dir()
    if sweep is not None:
        return str(Path(sweep).resolve())
    output = hydra_config.output_dir()
    return str(Path(output).resolve().parent) if output else str(Path.cwd())


# Facts about the run's data (class names, image shape), published by the train task once the
# datamodule has loaded, read by `${data:…}` in the model and module configs: shapes flow from
# the data to the networks, so no config types in 784 or 10.
_DATA_FACTS: dict[str, Any] = {}


def publish_data_facts(facts: dict[str, Any]) -> None:
    """Make `${data:<name>}` resolve to `facts[name]` (the previous run's facts are dropped)."""
    _DATA_FACTS.clear()
    _DATA_FACTS.update(facts)


def data_fact(name: str) -> Any:
    if name not in _DATA_FACTS:
        known = ", ".join(sorted(_DATA_FACTS)) or "none: the data is not loaded yet"
        raise KeyError(f"${{data:{name}}}: no such fact about the data (known: {known})")
    value = _DATA_FACTS[name]
    return list(value) if isinstance(value, tuple) else value


def resume_or(resume: str | None, new_run_dir: str) -> str:
    """The run folder: the one being resumed (`resume=<folder>`), else a new one (also for
    `resume=auto`, which continues whatever run that folder holds)."""
    return resume if resume and resume != "auto" else new_run_dir


def unless_resuming(resume: str | None, run_dir: str, value: str) -> str | None:
    """`value`, or None when resuming (the resumed folder keeps its original `.hydra/`);
    `resume=auto` keeps it when `run_dir` holds a run to continue or a finished one (a new run
    writes its own over what a run refused at its start left)."""
    if resume == "auto":
        return None if auto_resume_state(Path(run_dir)) != "new" else value
    return None if resume else value


def register() -> None:
    """Register goodfit's resolvers with OmegaConf (once per process)."""
    resolvers = {
        "goodfit.uid": lambda: RUN_UID,
        "goodfit.folder_part": folder_part,
        "goodfit.job_dir": job_dirname,
        "goodfit.run_name": run_name,
        "goodfit.logger_root": logger_root,
        "goodfit.resume_or": resume_or,
        "data": data_fact,
        "goodfit.unless_resuming": unless_resuming,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


register()
