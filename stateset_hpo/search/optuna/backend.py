"""The standalone Optuna backend: one process (or several sharing a storage), no Ray cluster.

Each trial runs in this process (`trial_runner.run_one`). Every training iteration goes to Optuna with
`trial.report`, and `trial.should_prune()` stops the trial there (a real pruner, unlike the
system this replaces). The study itself is the record: each trial's metric history and
error are stored as user attributes, so the summary is assembled from the study, including
trials that earlier runs or other processes added to a persistent study.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Dict, List, Optional, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from ...callbacks import fire
from ...config import HPOConfig
from ...constraints import constraint_names, violations
from ...library_logs import logger_level
from ...lifecycle import TrialOutcome
from ...results import HPOResult, TrialStatus, json_safe
from ...space import SearchSpace
from ...study_monitor import StudyControl
from ...trial import TrialSpec, iteration_episodes, max_episodes, planned_iterations
from ...warm_start import first_points, of_study
from ..random_start import random_start
from ..trial_runner import in_process_resources, run_one, study_deadline
from .pruners import build_pruner
from .space import DefineByRun, finished_trials
from .samplers import build_sampler
from ...masking import masked
from .storage import open_storage


def open_study(config: HPOConfig, spec: TrialSpec, space: SearchSpace, resume: bool = False) -> optuna.Study:
    """Create or load the study (sampler, pruner, storage); raises ValueError on bad settings
    before any trial runs."""
    oc = config.optuna_config
    objectives = config.objectives
    storage = open_storage(oc["storage"])
    name = config.resolved_study_name
    sampler = build_sampler(oc, random_start(config, spec, space), len(objectives), config.seed)
    pruner = build_pruner(oc, max_episodes(spec, space), iteration_episodes(spec, space))
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=[d for _, d in objectives],
                                    sampler=sampler, pruner=pruner)
        # Only the process that creates the study enqueues the defaults: two processes starting
        # together on one storage would otherwise both find no baseline yet and run it twice.
        study.enqueue_trial(space.baseline())
        tell_warm_start(study, config, space)
    except optuna.exceptions.DuplicatedStudyError:
        if not (oc["load_if_exists"] or resume):
            raise ValueError(f"optuna study {name!r} already exists in {masked(oc['storage'])!r}; set "
                             "optuna_config['load_if_exists'] to continue it or choose another study_name") from None
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except ValueError as exc:
        raise ValueError(f"optuna study {name!r}: {exc}") from None
    if [d.name.lower() for d in study.directions] != [d for _, d in objectives]:
        raise ValueError(f"optuna study {name!r} in {masked(oc['storage'])!r} has directions "
                         f"{[d.name.lower() for d in study.directions]}, this config {[d for _, d in objectives]}")
    return study


WARM_START = "warm_start"  # the user attribute of an earlier study's trial told to this one


def tell_warm_start(study: optuna.Study, config: HPOConfig, space: SearchSpace) -> None:
    """A new study's warm start (warm_start.py): comparable earlier trials as finished trials of
    this study, which the sampler reads but the results leave out; else the earlier best run first."""
    warm = of_study(config, space)
    if warm is None:
        return
    study.add_trials(finished_trials(space, warm.told, **{WARM_START: warm.source}))
    for params in first_points(config, space)[1:]:
        study.enqueue_trial(params)


def run_optuna(config: HPOConfig, spec: TrialSpec, space: SearchSpace, callbacks: Sequence[Any], control: StudyControl,
               resume: bool = False) -> List[HPOResult]:
    with logger_level("optuna", logging.INFO if config.library_logs else logging.WARNING):
        study = open_study(config, spec, space, resume)
    suggest = DefineByRun(space)
    objectives = config.objectives
    prunes = config.optuna_config["pruner"] != "none"
    deadline = study_deadline(config)
    resources = list(in_process_resources(config))  # kept with each trial, to rebuild its cost from the study
    lock = threading.Lock()  # callbacks may run from n_parallel_trials threads; keep them in order

    def notify(hook: str, *args: Any) -> None:
        with lock:
            fire(callbacks, hook, *args)

    def objective(trial: optuna.Trial):
        def prune(metrics: Dict[str, float], step: int) -> Optional[str]:
            if not prunes:
                return None
            value = metrics.get(objectives[0][0])
            if value is None:  # not measured at this iteration (eval_every > 1): the pruner waits for one
                return None
            episodes = int(metrics.get("episodes", step))  # equal compute across batch sizes
            trial.report(value, episodes)
            return f"pruned by the {config.optuna_config['pruner']} pruner at iteration {step} ({episodes} episodes)" \
                if trial.should_prune() else None

        try:
            result = run_one(config, spec, str(trial.number), suggest(trial), notify, prune, deadline,
                             wandb=config.wandb_logging if config.log_to_wandb else None)
            # the study is the record: a later run of a stored study rebuilds the summary from these
            trial.set_user_attr("history", json_safe(result.history))
            trial.set_user_attr("training_time", result.training_time)
            trial.set_user_attr("resources", resources)
            if result.checkpoint_path is not None:
                trial.set_user_attr("checkpoint_path", result.checkpoint_path)
            if config.constraints and result.history:  # Optuna's constrained samplers (tpe, gp, nsga2) read them
                for name, value in zip(constraint_names(config.constraints),
                                       violations(result.metrics, config.constraints)):
                    trial.set_constraint(name, min(value, UNREPORTED))
            if result.stop_reason is not None:
                trial.set_user_attr("stopped_by", result.stopped_by)
                trial.set_user_attr("stop_reason", result.stop_reason)
        except KeyboardInterrupt:  # Ctrl+C / SIGTERM: Optuna records it as failed; --resume runs it again
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", "interrupted (Ctrl+C or SIGTERM) before it finished")
            raise
        if result.status is TrialStatus.FAILED:
            trial.set_user_attr("error", result.error)
            raise TrialFailed(result.error)
        if result.status is TrialStatus.PRUNED:
            raise optuna.TrialPruned()
        values = [result.metrics[metric] for metric, _ in objectives]
        return values[0] if len(values) == 1 else values

    def on_end(study: optuna.Study, frozen: FrozenTrial) -> None:
        # early_stopping_patience ran out, or the next trial would exceed the budget (the trials
        # running in other threads finish either way)
        if control.ended_early():
            study.stop()

    n_trials = config.n_trials
    if resume:  # finish this study's n_trials (a plain rerun of a stored study adds n_trials more)
        trials = study.get_trials(deepcopy=False)
        replaced = superseded(trials)
        stopped = interrupted(trials, replaced)
        n_trials -= sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                        and t.number not in replaced and t not in stopped and WARM_START not in t.user_attrs
                        for t in trials)
        for t in stopped:  # an interrupted trial runs again first, with its own parameters
            study.enqueue_trial(t.params, user_attrs={"rerun_of": t.number})
    with logger_level("optuna", logging.INFO if config.library_logs else logging.WARNING), \
            one_line_failures():
        study.optimize(objective, n_trials=max(0, n_trials), timeout=config.timeout,
                       n_jobs=config.n_parallel_trials, catch=(TrialFailed,), callbacks=[on_end],
                       # collect a trained model's memory between trials (not needed for a custom objective)
                       gc_after_trial=spec.objective is None, show_progress_bar=False)
    trials = study.get_trials(deepcopy=False)
    replaced = superseded(trials)
    return [result_of(t, spec, objectives[0][0]) for t in trials  # (a warm start's earlier trials are not this study's)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) and t.number not in replaced
            and WARM_START not in t.user_attrs]


def interrupted(trials: Sequence[FrozenTrial], replaced: set) -> List[FrozenTrial]:
    """Failed trials that were stopped, not failing on their own (Ctrl+C or SIGTERM, wherever
    in the trial it landed: a trial that fails on its own always has its error recorded), and
    not run again yet (not in ``replaced``, the `superseded` trials)."""
    return [t for t in trials if t.state is TrialState.FAIL and t.number not in replaced
            and (t.user_attrs.get("interrupted") or "error" not in t.user_attrs)]


def superseded(trials: Sequence[FrozenTrial]) -> set:
    """Failed trials that ran again under a new number, which stands for them in the results
    (else one trial would count twice, once as failed): a trial interrupted by Ctrl+C or
    SIGTERM (run again on --resume) and one left running by a killed process (run again by
    the storage's heartbeat callback)."""
    # ("failed_trial": where RetryHeartbeatStaleTrialCallback records the trial a retry replaces)
    return {n for t in trials for n in (t.user_attrs.get("rerun_of"), t.system_attrs.get("failed_trial"))
            if n is not None}


UNREPORTED = 1e12  # the violation of a bound on a metric the trial did not report (JSON has no infinity)


class TrialFailed(Exception):
    """Tells Optuna that the trial failed (the error is already recorded with the trial)."""


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (TrialFailed, KeyboardInterrupt)):
            record.exc_info = None
        return True


@contextlib.contextmanager
def one_line_failures():
    """Optuna logs every failed trial with a traceback; for a trial whose error the study has
    recorded (TrialFailed) or an interrupt, the traceback is of our own plumbing and only
    buries the progress lines: keep Optuna's one-line message."""
    logger, quiet = logging.getLogger("optuna.study._optimize"), _NoTraceback()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def result_of(frozen: FrozenTrial, spec: TrialSpec, metric: str) -> HPOResult:
    """An HPOResult from a finished Optuna trial, as recorded in the study."""
    error = None
    if frozen.state == TrialState.FAIL:
        error = frozen.user_attrs.get("error") or "trial failed (no error recorded)"
    return TrialOutcome(str(frozen.number), dict(frozen.params), list(frozen.user_attrs.get("history", [])),
                        planned_iterations(spec, frozen.params), error=error,
                        checkpoint_path=frozen.user_attrs.get("checkpoint_path"),
                        training_time=float(frozen.user_attrs.get("training_time", 0.0)),
                        stopped_by=frozen.user_attrs.get("stopped_by"), stop_reason=frozen.user_attrs.get("stop_reason"),
                        resources=tuple(frozen.user_attrs.get("resources", (0.0, 0.0)))).result(metric)
