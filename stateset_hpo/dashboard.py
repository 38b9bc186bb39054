"""Every backend's trials, live, in an Optuna storage that optuna-dashboard reads.

Optuna users watch studies in optuna-dashboard; Ray Tune and W&B studies have no such view of
our trials (their parameters, each iteration's objective, why a trial was stopped, what it
cost). `DashboardMirror` is a study callback: as trials start, report and end on the driver,
it writes them into an Optuna storage through Optuna's own storage API (create_new_trial,
set_trial_intermediate_value, set_trial_user_attr, set_trial_state_values), so the dashboard,
`optuna.load_study` and Optuna's plots read a Ray or W&B study like any Optuna study. A
persistent Optuna-backend study needs no mirror: the dashboard reads its storage directly.

``HPOConfig.dashboard_storage``: "auto" (default) mirrors into a journal file in output_dir
(no database; a write takes about a millisecond), or the Optuna backend's own storage when it
has one; a URL (``sqlite:///study.db``) or journal path mirrors there; None turns it off.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

from .config import HPOConfig
from .results import HPOResult, TrialStatus
from .search.base import get_backend
from .search.optuna.space import to_optuna

JOURNAL_NAME = "dashboard.journal"
_STATES = {TrialStatus.SUCCESS: "COMPLETE", TrialStatus.PRUNED: "PRUNED", TrialStatus.FAILED: "FAIL"}


def dashboard_storage(config: HPOConfig) -> Optional[str]:
    """The storage optuna-dashboard should open for this study, or None when there is none."""
    choice = config.dashboard_storage
    if choice != "auto":
        return choice
    return get_backend(config.backend).optuna_storage(config) or str(Path(config.output_dir) / JOURNAL_NAME)


def needs_mirror(config: HPOConfig) -> bool:
    """Whether the study's trials must be copied into the dashboard storage (not when the
    Optuna backend already keeps its study there)."""
    storage = dashboard_storage(config)
    return storage is not None and storage != get_backend(config.backend).optuna_storage(config)


def dashboard_command(config: HPOConfig) -> Optional[str]:
    from .masking import masked

    storage = dashboard_storage(config)
    return None if storage is None else f"optuna-dashboard {masked(storage)}"


class DashboardMirror:
    """Copies the study's trials into an Optuna storage as they run (see the module docstring).

    A failure to write (a full disk, a locked database) warns once and stops the mirror; the
    study itself goes on."""

    def __init__(self, config: HPOConfig, study_name: str, resume: bool = False) -> None:
        self.config, self.study_name, self.resume = config, study_name, resume
        self.url = dashboard_storage(config)
        self.lock = threading.Lock()
        self.trials: Dict[str, int] = {}  # our trial id -> the storage's trial id
        self.distributions: Dict[str, Any] = {}
        self.storage = self.study_id = None
        self.broken = False

    def _guarded(self, what: str, write) -> None:
        if self.broken:
            return
        with self.lock:
            try:
                write()
            except Exception as exc:  # noqa: BLE001 (whatever the storage raises, the study goes on)
                self.broken = True
                warnings.warn(f"the optuna-dashboard copy of the study stopped at {what} ({type(exc).__name__}: "
                              f"{exc}); the study goes on and its results are in {self.config.output_dir}")

    def on_hpo_start(self, search_space, n_trials: int) -> None:
        self._guarded("the study's start", lambda: self._open(search_space))

    def _open(self, search_space) -> None:
        import optuna

        from .library_logs import logger_level
        from .search.optuna.storage import open_storage

        self.distributions = to_optuna(search_space)
        self.storage = open_storage(self.url)
        names = [s.study_name for s in self.storage.get_all_studies()]
        name = self.study_name
        if name in names and not self.resume:
            if self.config.dashboard_storage == "auto":  # our own file, of this output_dir: this run replaces it
                optuna.delete_study(study_name=name, storage=self.storage)
            else:  # a shared storage: keep the earlier study, add this one beside it
                name = next(f"{self.study_name}-{i}" for i in range(2, 10_000) if f"{self.study_name}-{i}" not in names)
        with logger_level("optuna", logging.WARNING):  # ("A new study created ...")
            study = optuna.create_study(storage=self.storage, study_name=name, load_if_exists=True,
                                        directions=list(self.config.directions or [self.config.direction]))
        self.study_id = study._study_id
        self.study_name = name
        self.storage.set_study_user_attr(self.study_id, "objective_metrics",
                                         list(self.config.objective_metrics or [self.config.objective_metric]))
        if self.resume:  # trials an earlier run left running resume under the same ids
            for trial in study.get_trials(deepcopy=False):
                if trial.state.name == "RUNNING" and "trial_id" in trial.user_attrs:
                    self.trials[trial.user_attrs["trial_id"]] = trial._trial_id

    def on_trial_start(self, trial_id: str, params: Dict[str, Any]) -> None:
        self._guarded(f"trial {trial_id}'s start", lambda: self._start(str(trial_id), params))

    def _start(self, trial_id: str, params: Dict[str, Any]) -> None:
        import optuna

        if self.study_id is None or trial_id in self.trials:
            return
        inside, outside = {}, {"trial_id": trial_id}
        for name, value in params.items():
            d = self.distributions.get(name)
            if d is not None and _fits(d, value):
                inside[name] = value
            else:  # a fixed or derived setting, or a value PBT moved outside the space
                outside[f"param:{name}"] = value if isinstance(value, (int, float, str, bool)) else repr(value)
        template = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, params=inside,
                                             distributions={n: self.distributions[n] for n in inside},
                                             user_attrs=outside)
        self.trials[trial_id] = self.storage.create_new_trial(self.study_id, template_trial=template)

    def on_trial_result(self, trial_id: str, metrics: Dict[str, Any]) -> None:
        self._guarded(f"trial {trial_id}'s iteration", lambda: self._report(str(trial_id), metrics))

    def _report(self, trial_id: str, metrics: Dict[str, Any]) -> None:
        number = self.trials.get(trial_id)
        value = metrics.get(self.config.objective_metric)
        step = metrics.get("iteration")
        if number is None or not _finite(value) or not isinstance(step, (int, float)):
            return
        self.storage.set_trial_intermediate_value(number, int(step), float(value))

    def on_trial_end(self, result: HPOResult) -> None:
        self._guarded(f"trial {result.trial_id}'s end", lambda: self._end(result))

    def _end(self, result: HPOResult) -> None:
        from optuna.trial import TrialState

        number = self.trials.pop(result.trial_id, None)
        if number is None:
            return
        attrs = {"stopped_by": result.stopped_by, "stop_reason": result.stop_reason,
                 "error": result.error[-2000:] if result.error else None, "training_time_s": result.training_time,
                 **{f"cost:{k}": v for k, v in result.cost.items()}}
        for key, value in attrs.items():
            if value is not None:
                self.storage.set_trial_user_attr(number, key, value)
        state = TrialState[_STATES[result.status]]
        values = None
        if state is TrialState.COMPLETE:
            metrics = self.config.objective_metrics or [self.config.objective_metric]
            values = [result.best_metric] if len(metrics) == 1 else [result.metrics.get(m) for m in metrics]
            if not all(_finite(v) for v in values):  # a success without its objective cannot be COMPLETE
                state, values = TrialState.FAIL, None
                self.storage.set_trial_user_attr(number, "error", "the trial reported no finite objective")
        self.storage.set_trial_state_values(number, state, values)


def _fits(distribution, value) -> bool:
    try:
        return distribution._contains(distribution.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
