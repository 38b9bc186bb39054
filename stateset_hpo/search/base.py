"""What a search backend is, and the registry of backends by name.

A backend turns (config, spec, space) into finished trials (`HPOResult`s). Its entry here says
everything the rest of the project needs to know about it without importing it: its settings
section of `HPOConfig` with defaults and checks, its command-line flags, the line it prints at
start, how it compiles the space for a dry run. The code that runs trials (Ray, Optuna, W&B) is
imported only when a study runs, so HPOConfig and the CLI's checks stay fast.

Adding a backend is one package under ``search/`` whose ``__init__`` defines ``BACKEND``, plus
its line in ``_PACKAGES`` (and, if it has settings, its section field on HPOConfig).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:  # (config.py imports this module)
    from ..config import HPOConfig
    from ..results import HPOResult
    from ..space import SearchSpace
    from ..study_monitor import StudyControl
    from ..trial import TrialSpec

# key: (default, check). Defaults are what the backend uses when a key is left out.
Settings = Dict[str, Tuple[Any, Callable[[Any], Any]]]


@dataclass(frozen=True)
class Flag:
    """A command-line flag (``--name`` with dashes) that sets ``key`` of a settings section:
    the backend's own, or ``section`` (e.g. Ray's ``--sampler`` sets optuna_config's sampler,
    which its Optuna searcher uses)."""

    name: str
    key: str
    help: str
    choices: Optional[Sequence[str]] = None
    type: Optional[Callable[[str], Any]] = None
    switch: bool = False  # a flag without a value (store_true)
    section: Optional[str] = None
    # (config) -> why this study would not use the flag's value (the CLI refuses it), or None
    unused: Optional[Callable[["HPOConfig"], Optional[str]]] = None


def check_grid_fits(config: "HPOConfig") -> None:
    """A grid search runs every point of the grid: one larger than n_trials is an error when
    the study is configured."""
    size = config.resolve_search_space().grid_size(config.grid_points)
    if size > config.n_trials:
        raise ValueError(f"the grid has {size} points but n_trials is {config.n_trials}; raise n_trials or lower "
                         "grid_points (--grid-points)")


def _no_cross_checks(config: "HPOConfig", given: Mapping[str, Any]) -> None:
    return None


def _never(config: "HPOConfig") -> bool:
    return False


def _nowhere(config: "HPOConfig") -> Optional[str]:
    return None


@dataclass(frozen=True)
class Backend:
    """One search backend, as the driver, HPOConfig and the CLI see it.

    ``run(config, spec, space, callbacks, control, resume)`` runs the study's trials and returns
    their HPOResults, firing ``callbacks`` as trials start, report and end, and asking
    ``control`` (a `study_monitor.StudyControl`) whether to stop or start no new trial; ``retrain(config, spec, points)`` trains exactly those configurations, each to
    its end with nothing pruned and no study callbacks (the validation and racing re-runs), where
    the search ran them (Ray Tune: as Tune trials with the study's resources; the in-process
    backends: here, one after another).
    """

    name: str
    section: str  # the HPOConfig field that holds its settings
    settings: Settings
    runner: str  # "module:function" that runs the search, imported on first use
    describe: Callable[["HPOConfig"], str]  # the start-up line: the settings that matter
    compiled: Callable[["HPOConfig", "SearchSpace"], str]  # a dry run: compile the space, say what it became
    flags: Tuple[Flag, ...] = ()
    # cross-checks of the filled settings when HPOConfig is built; ``given`` is the section as
    # the user wrote it (before defaults), to tell "left unset" from "set to the default"
    check: Callable[["HPOConfig", Mapping[str, Any]], None] = _no_cross_checks
    multi_objective: bool = False
    # a searcher that proposes its first trials at random before it models (random_start.py's
    # RandomStart: its name and the library's number), else None
    random_start: Callable[["HPOConfig"], Optional[Any]] = _nowhere
    # whether this study's searcher can be told a comparable warm start's earlier results as
    # observations before its first proposal; else they order its first trials (warm_start.py)
    takes_observations: Callable[["HPOConfig"], bool] = _never
    # True: finished trials' checkpoints may still be read by running ones (PBT), so the
    # study's keep_best_n retention waits for the end
    defers_retention: Callable[["HPOConfig"], bool] = _never
    # where a copy of the results goes besides output_dir (a cluster's shared storage), or None
    shared_results: Callable[["HPOConfig"], Optional[str]] = _nowhere
    # the Optuna storage (URL or journal path) in which the backend itself keeps the study, or
    # None: the dashboard opens it directly, and an interrupted study continues from it
    optuna_storage: Callable[["HPOConfig"], Optional[str]] = _nowhere
    # why this study could not be resumed (checked before any work, dry runs too), or None
    cannot_resume: Callable[["HPOConfig"], Optional[str]] = _nowhere
    # "module:function" that runs the re-runs (config, spec, points); in this process by default
    retrainer: str = "stateset_hpo.search.trial_runner:run_points"
    # "module:function" (config, spec, space) raising ValueError for what this backend cannot do
    # with this study's trials (checked before any work, dry runs too); "" when it can do all
    spec_checker: str = ""

    def run(self, config: "HPOConfig", spec: "TrialSpec", space: "SearchSpace", callbacks: Sequence[Any],
            control: "StudyControl", resume: bool = False) -> List["HPOResult"]:
        return _imported(self.runner)(config, spec, space, callbacks, control, resume=resume)

    def check_spec(self, config: "HPOConfig", spec: "TrialSpec", space: "SearchSpace") -> None:
        if self.spec_checker:
            _imported(self.spec_checker)(config, spec, space)

    def retrain(self, config: "HPOConfig", spec: "TrialSpec", points: List[Dict[str, Any]]) -> List["HPOResult"]:
        return _imported(self.retrainer)(config, spec, points)


def _imported(target: str) -> Callable[..., Any]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


_PACKAGES = {
    "optuna": "stateset_hpo.search.optuna",
    "ray_tune": "stateset_hpo.search.ray",
    "wandb": "stateset_hpo.search.wandb",
}


def backend_names() -> Tuple[str, ...]:
    return tuple(_PACKAGES)


def get_backend(name: str) -> Backend:
    if name not in _PACKAGES:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(_PACKAGES)}")
    return importlib.import_module(_PACKAGES[name]).BACKEND


def all_backends() -> List[Backend]:
    return [get_backend(name) for name in _PACKAGES]
