"""`HPOConfig`: what a study runs, validated when it is built, and the named profiles.

Every name and number is checked on construction, so a typo in a sampler or a negative
GPU count fails on the line that wrote it, before any trial or cluster starts. The
backend sections (`optuna_config`, `ray_config`, `wandb_config`) are filled with their
defaults, so the config shows exactly the settings a study will use. Only the section of
the chosen backend drives the search; `wandb_logging` names the W&B project that
`log_to_wandb` logs to. Nothing here touches the filesystem until `from_yaml`/`to_yaml`.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .checks import boolean, check_section, integer, number, one_of, optional_str, path_or_uri
from .constraints import check_constraints
from .cost import check_budget
from .health import SETTINGS as HEALTH_SETTINGS
from .search.base import all_backends, backend_names, get_backend
from .space import SearchSpace
from .space.presets import get_search_space, list_search_spaces
from .wandb_runs import LOGGING_SETTINGS as WANDB_LOGGING_SETTINGS

DIRECTIONS = ("maximize", "minimize")
ENGINES = ("grpo", "trl")  # what a trial trains with: our engine, or TRL's GRPOTrainer (trl_engine/)
# settings every backend shares: HPOConfig fields, never a backend section's keys (name: CLI flag)
SHARED = {"seed": "--seed", "grid_points": "--grid-points"}


@dataclass
class HPOConfig:
    """Everything a study needs. Field names and defaults follow the user guide, except:

    - ``gpu_per_trial`` / ``cpu_per_trial`` default to None, meaning "auto": one GPU per
      trial where the cluster has GPUs and none otherwise, and up to 4 CPUs as the cluster
      allows; so the same config runs on a laptop and on a GPU cluster.
    - ``warm_start`` / ``warm_start_comparable`` (not in the guide): an earlier study (its
      summary.json or folder, or ``STORAGE#STUDY``) whose trials start this one: its best
      configurations run first, or, when comparable, its trials are told to the searcher as
      observations (see warm_start.py).
    - ``engine`` (not in the guide): "grpo", our engine (default), or "trl", TRL's
      GRPOTrainer (trl_engine/: the space's names are then GRPOConfig fields, e.g. the
      predefined space ``trl``).
    - ``search_space`` wins over ``search_space_name`` when both are given (the guide's
      examples pass a space and leave the name at its default).
    - ``objective_metric`` defaults to ``eval_reward``, the greedy score on the held-out
      selection scenarios, not the guide's sampled training ``reward``: a lower sampling
      temperature raises the training reward without any learning.
    - ``validation_top_k`` / ``validation_seeds`` / ``validation_episodes`` (not in the guide):
      after the search, the recommended configuration (the search's best, named before it is
      tested), the next ``validation_top_k - 1`` and the baseline (the base training config)
      are retrained with ``validation_seeds`` fresh seeds at one equal budget
      (``validation_episodes``, default: the largest budget among them) and scored on the test
      scenarios; the gain over the baseline comes with a 95% confidence interval (see
      validation.py). ``validation_top_k=0`` turns it off. ``validation_max_seeds`` (default:
      ``validation_seeds``, a fixed design) makes it sequential: one more seed per
      configuration at a time, until the interval excludes 0, or rules out every gain of
      ``min_effect`` or more, or the seeds run out; each look's interval is widened so that
      the looks together keep the nominal error rate (Bonferroni over the planned looks).
    - ``validation_topics``: "random" (default) treats the test conversations' topics as a
      sample of the topics the agent will meet, so the verdict holds for new topics and a gain
      in only some of them is not called significant; "fixed" claims only new conversations of
      these same topics (conversations as independent, more power). See comparison.py.
    - ``race_seeds`` (default 0, off) / ``race_top_k`` (default 3): before the recommendation is
      named, the search's top ``race_top_k`` configurations are trained again with
      ``race_seeds`` fresh seeds each on the selection split and ranked by their mean
      (racing.py); their cost counts in the study's.
    - ``objective_metrics`` (with ``directions``, one per metric, default ``direction`` for
      each) makes a multi-objective study (backend "optuna"); the summary then holds the
      Pareto front. ``objective_metric``/``direction`` become the first of them, which is
      what ``best_*`` report and what a pruner or scheduler watches.
    - ``health_rules`` (not in the guide): the rules that stop a trial that cannot learn or has
      collapsed, recorded as pruned with the reason (see health.py); filled with the defaults,
      ``{"enabled": False}`` turns them off.
    - ``constraints`` (not in the guide): bounds on trials' final metrics, e.g.
      ``{"kl": {"max": 0.05}}`` (reward under a KL budget); a trial that breaks one is never
      the best (see constraints.py).
    - ``budget`` (not in the guide): ``{"gpu_hours": ..., "cpu_hours": ..., "tokens": ...,
      "episodes": ..., "wall_seconds": ...}``; no new trial starts once the next one would
      exceed it (running trials finish; ``timeout`` instead stops them), and the summary says
      the budget ended the study (see cost.py).
    - ``dashboard_storage`` (not in the guide): where optuna-dashboard can watch the study live,
      whatever its backend: "auto" (a journal file in output_dir, or the Optuna backend's own
      storage), a storage URL or journal path, or None (see dashboard.py).
    - ``checkpoint_freq`` (the guide's name, kept): how often, in finished trials, the study's
      results so far (summary.json, trials.csv) are saved; not model checkpoints, which every
      trial keeps (``keep_best_n`` prunes them). ``--save-every`` on the command line.
    - ``seed`` (not in the guide): the search's seed on every backend (Optuna's sampler, the Ray
      searcher, the offline W&B sweep engine); None: unseeded. ``grid_points``: values per range
      of a grid search (Ray's ``grid`` searcher, W&B's ``grid`` method). Both, and
      ``study_name``, are settings every backend shares, so they live here once, not in a
      backend section (a section that names seed or grid_points is refused, saying where they
      are; the guide's ``optuna_config["study_name"]`` is read as ``study_name``).
    - ``log_to_wandb`` logs every trial as a W&B run (offline without an API key) on any
      backend, to ``wandb_logging``'s project and entity (not in the guide; default project
      "stateset-hpo"); ``wandb_config`` configures the W&B sweep backend only, whose trials are
      runs of its sweep's project.
    - ``verbose`` shows the study's progress (progress.py: live on a terminal, a line per
      trial elsewhere); ``library_logs`` (not in the guide, off) also lets through what the
      libraries print about the same events: Optuna's per-trial log lines, Ray's raylet
      messages, transformers' weight-loading bars.
    """

    backend: str = "optuna"
    engine: str = "grpo"
    search_space: Optional[SearchSpace] = None
    search_space_name: str = "grpo"
    n_trials: int = 100
    timeout: Optional[float] = None
    objective_metric: str = "eval_reward"
    direction: str = "maximize"
    objective_metrics: Optional[List[str]] = None
    directions: Optional[List[str]] = None
    output_dir: Union[str, Path] = "./hpo_results"
    study_name: Optional[str] = None
    seed: Optional[int] = None
    grid_points: int = 3

    optuna_config: Dict[str, Any] = field(default_factory=dict)
    ray_config: Dict[str, Any] = field(default_factory=dict)
    wandb_config: Dict[str, Any] = field(default_factory=dict)
    health_rules: Dict[str, Any] = field(default_factory=dict)
    wandb_logging: Dict[str, Any] = field(default_factory=dict)
    constraints: Optional[Dict[str, Dict[str, float]]] = None
    budget: Optional[Dict[str, float]] = None
    dashboard_storage: Optional[str] = "auto"

    base_training_config: Any = None
    checkpoint_freq: Optional[int] = 10
    keep_best_n: Optional[int] = 5
    early_stopping_patience: Optional[int] = None
    warm_start: Optional[str] = None  # an earlier study this one starts from (warm_start.py)
    warm_start_comparable: bool = False  # its trials were measured as this study measures: tell them
    validation_top_k: int = 3
    validation_seeds: int = 3
    validation_episodes: Optional[int] = None
    validation_max_seeds: Optional[int] = None
    min_effect: Optional[float] = None
    race_seeds: int = 0
    race_top_k: int = 3
    validation_topics: str = "random"

    n_parallel_trials: int = 1
    gpu_per_trial: Optional[float] = None
    cpu_per_trial: Optional[float] = None

    verbose: bool = True
    library_logs: bool = False
    log_to_wandb: bool = False
    save_plots: bool = True

    def __post_init__(self) -> None:
        checks = {
            "backend": one_of(backend_names()),
            "engine": one_of(ENGINES),
            "n_trials": integer(1),
            "timeout": number(0.0, strict=True, optional=True),
            "direction": one_of(DIRECTIONS),
            "study_name": optional_str,
            "seed": integer(0, optional=True, maximum=2**32 - 1),  # what Optuna's and numpy's generators take
            "grid_points": integer(2),
            "dashboard_storage": lambda value: value if value == "auto" else path_or_uri(value),
            "checkpoint_freq": integer(1, optional=True),
            "keep_best_n": integer(1, optional=True),
            "early_stopping_patience": integer(1, optional=True),
            "warm_start": optional_str,
            "warm_start_comparable": boolean,
            "validation_top_k": integer(0),
            "validation_seeds": integer(1),
            "validation_episodes": integer(1, optional=True),
            "validation_max_seeds": integer(1, optional=True),
            "min_effect": number(0.0, strict=True, optional=True),
            "race_seeds": integer(0),
            "race_top_k": integer(2),
            "validation_topics": one_of(("random", "fixed")),
            "n_parallel_trials": integer(1),
            "gpu_per_trial": number(0.0, strict=False, optional=True),
            "cpu_per_trial": number(0.0, strict=True, optional=True),
            "verbose": boolean,
            "library_logs": boolean,
            "log_to_wandb": boolean,
            "save_plots": boolean,
            "constraints": check_constraints,
            "budget": check_budget,
        }
        for name, check in checks.items():
            try:
                setattr(self, name, check(getattr(self, name)))
            except ValueError as exc:  # "HPOConfig.budget['tokens'] must be ..." / "HPOConfig.n_trials must be ..."
                raise ValueError(f"HPOConfig.{name}{'' if str(exc)[:1] in '[:' else ' '}{exc}") from None
        if self.gpu_per_trial is not None and self.gpu_per_trial > 1 and not self.gpu_per_trial.is_integer():
            raise ValueError(f"HPOConfig.gpu_per_trial above 1 must be a whole number of GPUs, got {self.gpu_per_trial:g} "
                             "(a fraction below 1 packs several trials on one GPU)")
        if not isinstance(self.objective_metric, str) or not self.objective_metric.strip():
            raise ValueError(f"HPOConfig.objective_metric must be a non-empty string, got {self.objective_metric!r}")
        if self.validation_max_seeds is not None and self.validation_max_seeds < self.validation_seeds:
            raise ValueError(f"HPOConfig.validation_max_seeds ({self.validation_max_seeds}) must be at least "
                             f"validation_seeds ({self.validation_seeds})")
        if self.warm_start is not None and len(self.objectives) > 1:
            raise ValueError("HPOConfig.warm_start takes a single-objective study (an earlier study's trials are "
                             "ranked by one score)")
        if self.warm_start_comparable and self.warm_start is None:
            raise ValueError("HPOConfig.warm_start_comparable says how to use a warm start: set warm_start too")
        if not isinstance(self.output_dir, (str, Path)) or not str(self.output_dir).strip():
            raise ValueError(f"HPOConfig.output_dir must be a path, got {self.output_dir!r}")
        # (a TrainingConfig instance means its module is loaded: no need to import the engine here)
        engine_config = sys.modules.get("stateset_hpo.grpo.config")
        if self.base_training_config is not None and not isinstance(self.base_training_config, Mapping) and not (
                engine_config is not None and isinstance(self.base_training_config, engine_config.TrainingConfig)):
            raise ValueError(f"HPOConfig.base_training_config must be a TrainingConfig or a mapping of its fields "
                             f"(e.g. {{'num_episodes': 160}}), got {type(self.base_training_config).__name__}")
        if isinstance(self.search_space, Mapping):
            self.search_space = SearchSpace.from_dict(self.search_space)
        if self.search_space is not None and not isinstance(self.search_space, SearchSpace):
            raise ValueError(f"HPOConfig.search_space must be a SearchSpace, got {type(self.search_space).__name__}")
        if self.search_space is None and self.search_space_name not in list_search_spaces():
            raise ValueError(f"HPOConfig.search_space_name: unknown search space {self.search_space_name!r}; "
                             f"valid names: {', '.join(list_search_spaces())}")
        if self.search_space is not None and len(self.search_space) == 0:
            raise ValueError("HPOConfig.search_space is empty: a study needs at least one dimension")
        self._check_objectives()
        self.health_rules = check_section("HPOConfig.health_rules", self.health_rules, HEALTH_SETTINGS)
        self.wandb_logging = check_section("HPOConfig.wandb_logging", self.wandb_logging, WANDB_LOGGING_SETTINGS)
        self._settle_study_name()
        given = {}
        for backend in all_backends():  # every section is filled, so the config shows what a study will use
            given[backend.name] = getattr(self, backend.section)
            moved = sorted(set(SHARED) & set(given[backend.name])) if isinstance(given[backend.name], Mapping) else []
            if moved:
                raise ValueError(f"{backend.section}[{moved[0]!r}] is a setting every backend shares: set "
                                 f"HPOConfig.{moved[0]} ({SHARED[moved[0]]}) instead")
            setattr(self, backend.section, check_section(backend.section, given[backend.name], backend.settings))
        for backend in all_backends():
            backend.check(self, given[backend.name] if isinstance(given[backend.name], Mapping) else {})

    def _settle_study_name(self) -> None:
        """The guide names a persistent Optuna study in ``optuna_config["study_name"]``: it is
        the study's name on every backend, so it moves to ``study_name`` (both given must agree).
        It names folders under the storage, so it must be one plain path component."""
        section = self.optuna_config
        if isinstance(section, Mapping) and section.get("study_name") is not None:
            self._take_guide_study_name(section)
        name = self.study_name
        if name is not None and (name.strip() in ("", ".", "..") or any(c in name for c in "/\\")):
            raise ValueError(f"HPOConfig.study_name must be a plain name (it names folders under the storage), "
                             f"got {name!r}")

    def _take_guide_study_name(self, section: Mapping[str, Any]) -> None:
        try:
            name = optional_str(section["study_name"])
        except ValueError as exc:
            raise ValueError(f"optuna_config['study_name'] {exc}") from None
        if self.study_name is not None and self.study_name != name:
            raise ValueError(f"study_name {self.study_name!r} and optuna_config['study_name'] {name!r} differ; "
                             "set one of them")
        self.study_name = name
        self.optuna_config = {k: v for k, v in section.items() if k != "study_name"}

    def _check_objectives(self) -> None:
        if self.objective_metrics is None:
            if self.directions is not None:
                raise ValueError("HPOConfig.directions needs objective_metrics (one direction per metric)")
            return
        metrics = self.objective_metrics
        if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)) or not metrics or \
                not all(isinstance(m, str) and m.strip() for m in metrics) or len(set(metrics)) != len(metrics):
            raise ValueError(f"HPOConfig.objective_metrics must be a non-empty list of distinct metric names, "
                             f"got {metrics!r}")
        directions = self.directions if self.directions is not None else [self.direction] * len(metrics)
        if isinstance(directions, str) or not isinstance(directions, (list, tuple)) or \
                len(directions) != len(metrics):
            raise ValueError(f"HPOConfig.directions must list one direction per objective metric "
                             f"({len(metrics)}: {', '.join(metrics)}), got {directions!r}")
        for d in directions:
            if d not in DIRECTIONS:
                raise ValueError(f"HPOConfig.directions: unknown value {d!r}; valid values: {', '.join(DIRECTIONS)}")
        if len(metrics) > 1 and not get_backend(self.backend).multi_objective:
            able = " or ".join(repr(b.name) for b in all_backends() if b.multi_objective)
            raise ValueError(f"multi-objective search (objective_metrics={list(metrics)}) needs backend={able}; "
                             f"{self.backend} optimises one metric (combine them with TrialSpec.derived_metrics)")
        self.objective_metrics, self.directions = list(metrics), list(directions)
        self.objective_metric, self.direction = self.objective_metrics[0], self.directions[0]

    @property
    def objectives(self) -> List[Tuple[str, str]]:
        """[(metric, direction)] of the study: one pair, or several for a multi-objective study."""
        if self.objective_metrics is None:
            return [(self.objective_metric, self.direction)]
        return list(zip(self.objective_metrics, self.directions))

    # -- derived ----------------------------------------------------------------------------
    def resolve_search_space(self) -> SearchSpace:
        """The space this study searches: ``search_space`` if given, else the named one."""
        return self.search_space if self.search_space is not None else get_search_space(self.search_space_name)

    @property
    def resolved_study_name(self) -> str:
        """The study's name on every backend: ``study_name``, else "grpo_hpo"."""
        return self.study_name or "grpo_hpo"

    @property
    def max_concurrent_trials(self) -> int:
        return self.ray_config["max_concurrent"] or self.n_parallel_trials

    def get_backend_config(self) -> Dict[str, Any]:
        """A copy of the chosen backend's settings section (``optuna_config``, ``ray_config`` or
        ``wandb_config``), as filled and checked (the replaced system's name for it)."""
        return dict(getattr(self, get_backend(self.backend).section))

    def replace(self, **changes: Any) -> "HPOConfig":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["search_space"] = self.search_space.to_dict() if self.search_space is not None else None
        data["output_dir"] = str(self.output_dir)
        base = self.base_training_config
        if dataclasses.is_dataclass(base) and not isinstance(base, type):
            data["base_training_config"] = dataclasses.asdict(base)
        for backend in all_backends():
            data[backend.section] = dict(getattr(self, backend.section))
        data["health_rules"] = dict(self.health_rules)
        data["wandb_logging"] = dict(self.wandb_logging)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "HPOConfig":
        if not isinstance(data, Mapping):
            raise ValueError(f"an HPO config must be a mapping, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(k for k in data if k not in names)
        if unknown:
            raise ValueError(f"unknown HPOConfig keys {unknown}; valid keys: {', '.join(names)}")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "HPOConfig":
        import yaml

        from .yaml_io import load_yaml

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist or is not a file")
        try:
            data = load_yaml(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
            raise ValueError(f"config file {str(path)!r} is not readable YAML: {exc}") from None
        try:
            return cls.from_dict(data if data is not None else {})
        except ValueError as exc:
            raise ValueError(f"config file {str(path)!r}: {exc}") from None

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# -- profiles ------------------------------------------------------------------------------------
_PROFILES: Dict[str, Dict[str, Any]] = {
    "conservative": dict(backend="optuna", search_space_name="conservative", n_trials=50,
                         optuna_config={"sampler": "tpe", "pruner": "median"}),
    "aggressive": dict(backend="optuna", search_space_name="aggressive", n_trials=100,
                       optuna_config={"sampler": "tpe", "pruner": "hyperband"}),
    "quick": dict(backend="optuna", search_space_name="grpo", n_trials=20,
                  optuna_config={"sampler": "random", "pruner": "median"}),
    "distributed": dict(backend="ray_tune", search_space_name="full", n_trials=200, n_parallel_trials=8,
                        ray_config={"scheduler": "asha", "search_alg": "optuna", "max_concurrent": 8}),
}


def list_hpo_profiles() -> list:
    return list(_PROFILES)


def get_hpo_config(profile: str, **overrides: Any) -> HPOConfig:
    """A fresh HPOConfig for a named profile, with optional field overrides. Overrides of
    a backend section (e.g. ``optuna_config={"pruner": "none"}``) are merged into the profile's."""
    if profile not in _PROFILES:
        raise ValueError(f"unknown HPO profile {profile!r}; valid profiles: {', '.join(_PROFILES)}")
    settings = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _PROFILES[profile].items()}
    for key, value in overrides.items():
        if key in {b.section for b in all_backends()} and isinstance(value, Mapping):
            settings[key] = {**settings.get(key, {}), **value}
        else:
            settings[key] = value
    return HPOConfig(**settings)
