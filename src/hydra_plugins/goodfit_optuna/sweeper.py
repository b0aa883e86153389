"""A Hydra sweeper that runs an Optuna study through its ask/tell API.

Each of `n_jobs` threads asks the study for a trial, launches it through the configured Hydra
launcher as job number <trial number> (so its folder is named after the trial, unique in the
study), and tells the study how it ended; then it asks again: no batch waits for its slowest
trial. Other processes with the same storage (a SLURM array, a second terminal) do the same,
until the study holds `n_trials` trials. A shared lock in the sweep folder makes the count and
the ask one step, so workers never run more trials than asked for.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from goodfit.runtime.errors import EXIT_USER_ERROR, ConfigError

log = logging.getLogger(__name__)

ASK_LOCK = "optuna-ask"  # <sweep folder>/optuna-ask.lock while a worker asks for a trial
RESULTS_FILE = "optimization_results.yaml"


class GoodfitOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self._lock = threading.Lock()  # this process's threads: ask and tell one at a time
        self._launched = 0
        self._failures: list[Any] = []

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:  # fmt: skip
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    # -- settings ------------------------------------------------------------------------------
    def _checked(self) -> dict[str, Any]:
        """The settings, each bad value refused with its key before any trial runs."""
        from goodfit.hydra_ext.optuna_study import build_pruner

        s = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
             for k, v in self.settings.items()}  # fmt: skip
        problems = []
        if s["direction"] not in ("maximize", "minimize"):
            problems.append(f"hydra.sweeper.direction={s['direction']!r}: maximize or minimize")
        problems += _against_the_objective(s["direction"], self.config)
        for key in ("n_trials", "n_jobs"):
            if not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < 1:
                problems.append(f"hydra.sweeper.{key}={s[key]!r}: an integer >= 1")
        if not 0.0 <= float(s["max_failure_rate"]) <= 1.0:
            problems.append(f"hydra.sweeper.max_failure_rate={s['max_failure_rate']!r}: 0 to 1")
        if not isinstance(s["sampler"], dict) or "_target_" not in s["sampler"]:
            problems.append("hydra.sweeper.sampler: a node with _target_ (optuna.samplers.…)")
        if s["n_jobs"] > 1 and _runs_in_process(self.launcher):
            problems.append(
                f"hydra.sweeper.n_jobs={s['n_jobs']} runs trials at the same time, which needs "
                "a launcher that starts processes: hydra/launcher=joblib, submitit_local or slurm"
            )
        if problems:
            raise ConfigError("Invalid search settings:\n  " + "\n  ".join(problems))
        build_pruner(s["pruner"])  # refuses a bad pruner now, not inside the first trial
        return s

    # -- the search ----------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> None:
        import optuna

        from goodfit.hydra_ext.optuna_study import dashboard_command, open_storage
        from hydra_plugins.goodfit_optuna.search_space import keys_not_in, parse_search_space

        assert self.config is not None
        try:
            s = self._checked()
            space, fixed = parse_search_space(s["params"], arguments)
            if not space:
                raise ConfigError("hydra.sweeper.params: no search space (e.g. x: interval(0, 1))")
            if unknown := keys_not_in(self.config, space):
                raise ConfigError(
                    "hydra.sweeper.params searches keys every trial would refuse:\n  "
                    + "\n  ".join(unknown)
                    + "\nSearch the keys of your run: a search config "
                    "of your own (a copy of conf/hparams_search/optuna.yaml under another name, "
                    "in your config folder) lists them."
                )
        except ConfigError as err:  # one message and status 2, as a single run's bad value
            log.error("%s", err)
            raise SystemExit(EXIT_USER_ERROR) from None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        storage = open_storage(s["storage"], sweep_dir)
        study = optuna.create_study(
            study_name=s["study_name"], storage=storage, direction=s["direction"],
            load_if_exists=True,
        )  # fmt: skip
        if s["fail_stale_trials"]:
            _fail_running_trials(study)
        log.info("Study %s: %d trials stored, %d wanted; %s", s["study_name"], len(study.trials),
                 s["n_trials"], dashboard_command(s["storage"], sweep_dir))  # fmt: skip
        search = _Search(self, study, storage, space, fixed, s, sweep_dir)
        if s["n_jobs"] == 1:
            search.work()  # in the main thread: a job run in this process handles signals
        else:  # each thread waits on jobs that run in other processes
            with ThreadPoolExecutor(s["n_jobs"], thread_name_prefix="trial") as pool:
                for future in [pool.submit(search.work) for _ in range(s["n_jobs"])]:
                    future.result()
        write_results(study, s, sweep_dir)
        if search.too_many_failures():  # the sweep fails with the first failed trial's error
            self._failures[0].return_value  # noqa: B018 (JobReturn raises the job's error)


class _Search:
    """One process's share of the search: ask, launch, tell, until the study is full."""

    def __init__(self, sweeper: GoodfitOptunaSweeper, study: Any, storage: Any,
                 space: dict[str, Any], fixed: list[str], settings: dict[str, Any],
                 sweep_dir: Path) -> None:  # fmt: skip
        self.sweeper, self.study, self.storage = sweeper, study, storage
        self.space, self.fixed = space, fixed
        self.s, self.sweep_dir = settings, sweep_dir

    def work(self) -> None:
        while (asked := self.ask()) is not None:
            trial, overrides = asked
            try:
                [job] = self.sweeper.launcher.launch([overrides], initial_job_idx=trial.number)
            except BaseException:  # the launcher itself failed (Ctrl-C, a refused submission)
                from optuna.trial import TrialState

                self.study.tell(trial, state=TrialState.FAIL)
                raise
            with self.sweeper._lock:
                self.tell(trial, job)

    def too_many_failures(self) -> bool:
        failed, launched = len(self.sweeper._failures), self.sweeper._launched
        return failed > 0 and failed > self.s["max_failure_rate"] * launched

    def ask(self) -> tuple[Any, list[str]] | None:
        """The next trial and its overrides, or None when the study holds n_trials."""
        from optuna.storages.journal import JournalFileSymlinkLock
        from optuna.trial import TrialState

        from hydra_plugins.goodfit_optuna.search_space import as_overrides, suggest

        counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        with self.sweeper._lock:
            if self.too_many_failures():
                return None
            lock = JournalFileSymlinkLock(str(self.sweep_dir / ASK_LOCK))
            lock.acquire()  # other workers on this sweep folder, maybe on other machines
            try:
                if len(self.study.get_trials(deepcopy=False, states=counted)) >= self.s["n_trials"]:
                    return None
                trial = self.study.ask()
                # Each trial draws from its own seed (seed + its number): the same trials for
                # the same seed, new ones when a search continues, none shared by two workers.
                self.study.sampler = self.sampler_for(trial.number)
                values = suggest(trial, self.space)
            finally:
                lock.release()
            self.sweeper._launched += 1
        log.info("Trial %d: %s", trial.number, " ".join(as_overrides(values)))
        return trial, [*self.fixed, *as_overrides(values)]

    def sampler_for(self, number: int) -> Any:
        from hydra.utils import instantiate

        config = dict(self.s["sampler"])
        if config.get("seed") is not None:
            config["seed"] = int(config["seed"]) + number
        return instantiate(config)

    def tell(self, trial: Any, job: Any) -> None:
        """Completed with the task's value, pruned (the pruning callback marked it) or failed."""
        from hydra.core.utils import JobStatus
        from optuna.trial import TrialState

        from goodfit.hydra_ext.optuna_study import PRUNED_AT_EPOCH, frozen_trial

        stored = frozen_trial(self.storage, self.study.study_name, trial.number)
        if job.status == JobStatus.COMPLETED and PRUNED_AT_EPOCH in stored.user_attrs:
            self.study.tell(trial, state=TrialState.PRUNED)
            log.info("Trial %d pruned after epoch %d", trial.number,
                     stored.user_attrs[PRUNED_AT_EPOCH])  # fmt: skip
            return
        value = job.return_value if job.status == JobStatus.COMPLETED else None
        if isinstance(value, (int, float)) and not math.isnan(value):
            self.study.tell(trial, float(value))
            log.info("Trial %d: %.4g", trial.number, value)
            return
        self.study.tell(trial, state=TrialState.FAIL)
        self.sweeper._failures.append(job)
        log.warning("Trial %d failed: %s", trial.number, _reason(job, value))


def _against_the_objective(direction: str, config: DictConfig | None) -> list[str]:
    """The settings that would turn the search against what train.py returns, the run's best
    val/acc: minimizing it, or a pruner ranking each epoch's loss as the study ranks val/acc."""
    from goodfit.hydra_ext.monitors import better_mode

    problems = []
    if direction == "minimize":
        problems.append("hydra.sweeper.direction='minimize': each trial returns its best "
                        "val/acc, which the search must maximize")  # fmt: skip
    monitor = OmegaConf.select(config, "callbacks.optuna_pruning.monitor") if config else None
    if monitor is not None and better_mode(str(monitor)) == "min":
        problems.append(
            f"callbacks.optuna_pruning.monitor={monitor}: the pruner ranks each epoch's value "
            "as the study ranks val/acc, higher first, so the trials with the lowest loss would "
            "be pruned first; watch val/acc (or train_eval/acc)"
        )
    return problems


def _reason(job: Any, value: Any) -> str:
    try:
        job.return_value  # noqa: B018 (raises the job's error when it failed)
    except Exception as err:  # noqa: BLE001 (any error a task can raise)
        return f"{type(err).__name__}: {err}"
    return f"it returned {value!r}, not a number"


def _runs_in_process(launcher: Any) -> bool:
    """Hydra's basic launcher runs each job in this process, one at a time."""
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    return isinstance(launcher, BasicLauncher)


def _fail_running_trials(study: Any) -> None:
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        log.warning("Trial %d was left running; marked failed", trial.number)


def write_results(study: Any, settings: dict[str, Any], sweep_dir: Path) -> None:
    """optimization_results.yaml: the best trial's values, the count of trials by state, and
    where the study is stored."""
    from goodfit.hydra_ext.optuna_study import dashboard_command, storage_location
    from goodfit.runtime.atomic import write_text_atomic
    from hydra_plugins.goodfit_optuna.search_space import as_overrides

    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    results: dict[str, Any] = {
        "name": "optuna", "study_name": study.study_name, "direction": settings["direction"],
        "storage": storage_location(settings["storage"], sweep_dir), "trials": states,
        "dashboard": dashboard_command(settings["storage"], sweep_dir),
    }  # fmt: skip
    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if completed:
        best = study.best_trial
        results.update(best_trial=best.number, best_params=best.params, best_value=best.value)
        log.info("Best trial %d: %.4g with %s", best.number, best.value,
                 " ".join(as_overrides(best.params)))  # fmt: skip
    write_text_atomic(sweep_dir / RESULTS_FILE, OmegaConf.to_yaml(OmegaConf.create(results)))
