"""`HPOConfig`: what a study runs, validated when it is built, and the named profiles.

Every name and number is checked on construction, so a typo in a sampler or a negative
GPU count fails on the line that wrote it, before any trial or cluster starts. The
backend sections (`optuna_config`, `ray_config`, `wandb_config`) are filled with their
defaults, so the config shows exactly the settings a study will use. Only the section of
the chosen backend drives the search; `wandb_config` also names the W&B project that
`log_to_wandb` logs to. Nothing here touches the filesystem until `from_yaml`/`save_yaml`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from .checks import boolean, integer, number, one_of, optional_str
from .search_spaces import get_search_space, list_search_spaces
from .space import SearchSpace
from .space.to_wandb import WANDB_METHODS

BACKENDS = ("optuna", "ray_tune", "wandb")
DIRECTIONS = ("maximize", "minimize")
OPTUNA_SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "nsga2")
OPTUNA_PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "wilcoxon", "none")
RAY_SCHEDULERS = ("asha", "hyperband", "pbt", "pb2", "median", "fifo")
RAY_SEARCH_ALGS = ("optuna", "hyperopt", "bayesopt", "random", "grid")
WANDB_EARLY_TERMINATE = ("hyperband",)
# URI schemes pyarrow's filesystems (which Ray Tune's storage uses) understand.
STORAGE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs", "file")


def _storage_path(value: Any) -> Optional[str]:
    """A local path, or a URI with a scheme Ray Tune can write to (s3://, gs://, ...)."""
    value = optional_str(value)
    if value is not None and "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in STORAGE_SCHEMES:
            raise ValueError(f"URI scheme {scheme!r} is not one Ray Tune can write to; use one of "
                             f"{', '.join(s + '://' for s in STORAGE_SCHEMES)} or a local path, got {value!r}")
    return value


def _early_terminate(value: Any) -> Optional[Dict[str, Any]]:
    """W&B's early_terminate block: {type: hyperband, min_iter, eta} (min_iter/eta optional)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a mapping such as {{'type': 'hyperband', 'min_iter': 3}}, got {value!r}")
    out = dict(_check_section("early_terminate", value, _EARLY_TERMINATE_SPEC, fill_defaults=False))
    if "type" not in out:
        raise ValueError("needs a 'type' (hyperband)")
    return out


_EARLY_TERMINATE_SPEC = {
    "type": (None, one_of(WANDB_EARLY_TERMINATE)),
    "min_iter": (None, integer(1)),
    "max_iter": (None, integer(1)),
    "eta": (None, integer(2)),
    "s": (None, integer(1)),
}

# key: (default, check). Defaults are what the backends use when a key is left out.
OPTUNA_SPEC: Dict[str, Tuple[Any, Callable]] = {
    "sampler": ("tpe", one_of(OPTUNA_SAMPLERS)),
    # A multi-objective study defaults to "none": Optuna prunes single-objective studies only.
    "pruner": ("median", one_of(OPTUNA_PRUNERS)),
    "seed": (None, integer(0, optional=True)),
    "n_startup_trials": (10, integer(0)),
    "pruner_startup_trials": (5, integer(0)),
    # steps are episodes (see search/optuna_samplers.py); None: two / one iterations of the baseline
    "n_warmup_steps": (None, integer(0, optional=True)),
    "interval_steps": (1, integer(1)),
    "percentile": (25.0, number(0.0, strict=True, maximum=100.0)),
    "p_threshold": (0.1, number(0.0, strict=True, maximum=1.0)),
    "min_resource": (None, integer(1, optional=True)),
    "reduction_factor": (3, integer(2)),
    "storage": (None, optional_str),
    "study_name": (None, optional_str),
    "load_if_exists": (True, boolean),
}
RAY_SPEC: Dict[str, Tuple[Any, Callable]] = {
    "scheduler": ("asha", one_of(RAY_SCHEDULERS)),
    "search_alg": ("optuna", one_of(RAY_SEARCH_ALGS)),
    "max_concurrent": (None, integer(1, optional=True)),
    # in episodes (see search/schedulers.py); None: derived from one iteration of the first trial
    "grace_period": (None, integer(1, optional=True)),
    "reduction_factor": (3, integer(2)),
    "max_t": (None, integer(1, optional=True)),
    "perturbation_interval": (None, integer(1, optional=True)),
    "grid_points": (3, integer(2)),
    "seed": (None, integer(0, optional=True)),
    "workers_per_trial": (1, integer(1)),
    "execution": ("train", one_of(("train", "direct"))),
    "storage_path": (None, _storage_path),
    "max_failures": (0, integer(0)),
    "address": (None, optional_str),
    # The cluster adds nodes on demand (cluster launcher / KubeRay autoscaling): resources that
    # are not running yet are no error (trials wait for the autoscaler).
    "autoscaling": (False, boolean),
}
WANDB_SPEC: Dict[str, Tuple[Any, Callable]] = {
    "method": ("bayes", one_of(WANDB_METHODS)),
    "project": ("stateset-hpo", optional_str),
    "entity": (None, optional_str),
    "early_terminate": (None, _early_terminate),
    "grid_points": (3, integer(2)),
}


def _check_section(section: str, values: Any, spec: Dict[str, Tuple[Any, Callable]],
                   fill_defaults: bool = True) -> Dict[str, Any]:
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ValueError(f"{section} must be a mapping, got {type(values).__name__}")
    unknown = sorted(k for k in values if k not in spec)
    if unknown:
        raise ValueError(f"{section}: unknown keys {unknown}; valid keys: {', '.join(spec)}")
    out = {k: default for k, (default, _) in spec.items()} if fill_defaults else {}
    for key, value in values.items():
        try:
            out[key] = spec[key][1](value)
        except ValueError as exc:
            raise ValueError(f"{section}[{key!r}] {exc}") from None
    return out


@dataclass
class HPOConfig:
    """Everything a study needs. Field names and defaults follow the user guide, except:

    - ``gpu_per_trial`` / ``cpu_per_trial`` default to None, meaning "auto": one GPU per
      trial where the cluster has GPUs and none otherwise, and up to 4 CPUs as the cluster
      allows; so the same config runs on a laptop and on a GPU cluster.
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
      validation.py). ``validation_top_k=0`` turns it off.
    - ``objective_metrics`` (with ``directions``, one per metric, default ``direction`` for
      each) makes a multi-objective study (backend "optuna"); the summary then holds the
      Pareto front. ``objective_metric``/``direction`` become the first of them, which is
      what ``best_*`` report and what a pruner or scheduler watches.
    """

    backend: str = "optuna"
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

    optuna_config: Dict[str, Any] = field(default_factory=dict)
    ray_config: Dict[str, Any] = field(default_factory=dict)
    wandb_config: Dict[str, Any] = field(default_factory=dict)

    base_training_config: Any = None
    checkpoint_freq: Optional[int] = 10
    keep_best_n: Optional[int] = 5
    early_stopping_patience: Optional[int] = None
    validation_top_k: int = 3
    validation_seeds: int = 3
    validation_episodes: Optional[int] = None

    n_parallel_trials: int = 1
    gpu_per_trial: Optional[float] = None
    cpu_per_trial: Optional[float] = None

    verbose: bool = True
    log_to_wandb: bool = False
    save_plots: bool = True

    def __post_init__(self) -> None:
        checks = {
            "backend": one_of(BACKENDS),
            "n_trials": integer(1),
            "timeout": number(0.0, strict=True, optional=True),
            "direction": one_of(DIRECTIONS),
            "study_name": optional_str,
            "checkpoint_freq": integer(1, optional=True),
            "keep_best_n": integer(1, optional=True),
            "early_stopping_patience": integer(1, optional=True),
            "validation_top_k": integer(0),
            "validation_seeds": integer(1),
            "validation_episodes": integer(1, optional=True),
            "n_parallel_trials": integer(1),
            "gpu_per_trial": number(0.0, strict=False, optional=True),
            "cpu_per_trial": number(0.0, strict=True, optional=True),
            "verbose": boolean,
            "log_to_wandb": boolean,
            "save_plots": boolean,
        }
        for name, check in checks.items():
            try:
                setattr(self, name, check(getattr(self, name)))
            except ValueError as exc:
                raise ValueError(f"HPOConfig.{name} {exc}") from None
        if not isinstance(self.objective_metric, str) or not self.objective_metric.strip():
            raise ValueError(f"HPOConfig.objective_metric must be a non-empty string, got {self.objective_metric!r}")
        if not isinstance(self.output_dir, (str, Path)) or not str(self.output_dir).strip():
            raise ValueError(f"HPOConfig.output_dir must be a path, got {self.output_dir!r}")
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
        pruner_given = isinstance(self.optuna_config, Mapping) and "pruner" in self.optuna_config
        self.optuna_config = _check_section("optuna_config", self.optuna_config, OPTUNA_SPEC)
        if len(self.objectives) > 1:
            self._check_multi_objective_pruner(pruner_given)
        self.ray_config = _check_section("ray_config", self.ray_config, RAY_SPEC)
        self.wandb_config = _check_section("wandb_config", self.wandb_config, WANDB_SPEC)
        self._check_agreement()

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
        if len(metrics) > 1 and self.backend != "optuna":
            raise ValueError(f"multi-objective search (objective_metrics={list(metrics)}) needs backend='optuna'; "
                             f"{self.backend} optimises one metric (combine them with TrialSpec.derived_metrics)")
        self.objective_metrics, self.directions = list(metrics), list(directions)
        self.objective_metric, self.direction = self.objective_metrics[0], self.directions[0]

    def _check_multi_objective_pruner(self, given: bool) -> None:
        """A multi-objective study prunes nothing: the pruner defaults to "none" there, and
        any other pruner the user asked for is an error rather than silently ignored."""
        pruner = self.optuna_config["pruner"] if given else "none"
        if pruner != "none":
            raise ValueError(f"optuna_config['pruner']={pruner!r} needs a single objective (Optuna cannot prune "
                             "multi-objective studies); set it to 'none' or leave it unset")
        self.optuna_config["pruner"] = "none"

    @property
    def objectives(self) -> List[Tuple[str, str]]:
        """[(metric, direction)] of the study: one pair, or several for a multi-objective study."""
        if self.objective_metrics is None:
            return [(self.objective_metric, self.direction)]
        return list(zip(self.objective_metrics, self.directions))

    def _check_agreement(self) -> None:
        """Settings given twice must agree, rather than one silently winning."""
        inner = self.optuna_config["study_name"]
        if inner is not None and self.study_name is not None and inner != self.study_name:
            raise ValueError(f"study_name {self.study_name!r} and optuna_config['study_name'] {inner!r} differ; "
                             "set one of them")
        concurrent = self.ray_config["max_concurrent"]
        if concurrent is not None and concurrent != self.n_parallel_trials and self.n_parallel_trials != 1:
            raise ValueError(f"n_parallel_trials={self.n_parallel_trials} and ray_config['max_concurrent']="
                             f"{concurrent} differ; set one of them")
        if self.ray_config["autoscaling"] and (self.gpu_per_trial is None or self.cpu_per_trial is None):
            # "auto" reads the resources running now; the nodes that would provide them may not exist yet
            raise ValueError("ray_config['autoscaling'] needs gpu_per_trial and cpu_per_trial set explicitly "
                             "(e.g. --gpu-per-trial 1 --cpu-per-trial 4): the nodes that provide them may not be "
                             "running yet")

    # -- derived ----------------------------------------------------------------------------
    def resolve_search_space(self) -> SearchSpace:
        """The space this study searches: ``search_space`` if given, else the named one."""
        return self.search_space if self.search_space is not None else get_search_space(self.search_space_name)

    @property
    def resolved_study_name(self) -> str:
        """The study's name on every backend: ``study_name`` or optuna_config's (they must
        agree), else "grpo_hpo"."""
        return self.study_name or self.optuna_config["study_name"] or "grpo_hpo"

    @property
    def max_concurrent_trials(self) -> int:
        return self.ray_config["max_concurrent"] or self.n_parallel_trials

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
        data["optuna_config"] = dict(self.optuna_config)
        data["ray_config"] = dict(self.ray_config)
        data["wandb_config"] = dict(self.wandb_config)
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

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist or is not a file")
        try:
            data = yaml.safe_load(path.read_text())
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
    a backend section (e.g. ``optuna_config={"seed": 0}``) are merged into the profile's."""
    if profile not in _PROFILES:
        raise ValueError(f"unknown HPO profile {profile!r}; valid profiles: {', '.join(_PROFILES)}")
    settings = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _PROFILES[profile].items()}
    for key, value in overrides.items():
        if key in ("optuna_config", "ray_config", "wandb_config") and isinstance(value, Mapping):
            settings[key] = {**settings.get(key, {}), **value}
        else:
            settings[key] = value
    return HPOConfig(**settings)
