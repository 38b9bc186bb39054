"""What a study produces: one `HPOResult` per trial and the `HPOSummary` over them.

Results are plain data assembled on the driver. They round-trip through strict JSON: a
non-finite number is not a measurement, so NaN and infinities become None (JSON null)
when a result is built, and the file never holds NaN/Infinity tokens.
"""

from __future__ import annotations

import json
import math
import numbers
import sys
from dataclasses import InitVar, asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO, Tuple, Union

from .atomic import write_atomically
from .comparison import BETTER
from .constraints import Constraints, feasible
from .cost import per_unit, total
from .trial_status import TrialStatus


class StudyInterrupted(RuntimeError):
    """The study stopped before its end (e.g. Ctrl+C) with its state saved for a resume."""


def direction_sign(direction: str) -> float:
    """+1 where higher is better (maximize), -1 where lower is: ``sign * value`` ranks up."""
    return 1.0 if direction == "maximize" else -1.0


def is_better(value: float, than: Optional[float], direction: str) -> bool:
    """Is ``value`` strictly better than ``than`` (None: nothing yet) in ``direction``?"""
    return than is None or direction_sign(direction) * value > direction_sign(direction) * than


def ranked(results: List["HPOResult"], direction: str, constraints: Optional[Constraints] = None) -> List["HPOResult"]:
    """The successful trials with an objective value that meet the study's constraints, best
    first (ties keep their order)."""
    scored = [r for r in results if r.status is TrialStatus.SUCCESS and r.best_metric is not None
              and feasible(r.metrics, constraints)]
    return sorted(scored, key=lambda r: -direction_sign(direction) * r.best_metric)


def by_metric(results: List["HPOResult"], direction: str) -> List["HPOResult"]:
    """Every trial for display, best objective first, those without one last."""
    return sorted(results, key=lambda r: (r.best_metric is None, -direction_sign(direction) * (r.best_metric or 0.0)))


def json_safe(value: Any) -> Any:
    """JSON-safe copy: non-finite floats -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return str(value)


@dataclass
class HPOResult:
    """One trial: its parameters, final metrics, per-iteration history and outcome.

    ``best_metric`` is the trial's value of the study's objective (None when it produced
    none, e.g. it failed before its first report). A pruned trial says what stopped it:
    ``stopped_by`` is a health rule's name (see health.py), "pruner" (Optuna's pruner, a W&B
    sweep's early termination), "scheduler" (Ray Tune's) or "timeout", and ``stop_reason``
    says why in words.
    """

    # the first five in the replaced system's order: HPOResult(trial_id, params, metrics,
    # best_metric, training_time) built positionally keeps working
    trial_id: str
    params: Dict[str, Any]
    metrics: Dict[str, Any] = field(default_factory=dict)
    best_metric: Optional[float] = None
    training_time: float = 0.0
    history: List[Dict[str, Any]] = field(default_factory=list)
    status: TrialStatus = TrialStatus.SUCCESS
    error: Optional[str] = None
    checkpoint_path: Optional[str] = None
    stopped_by: Optional[str] = None
    stop_reason: Optional[str] = None
    cost: Dict[str, float] = field(default_factory=dict)  # what the trial consumed (see cost.py)
    # a run scored on the test split (validation): a few of its greedy conversations (transcripts.py)
    transcripts: List[Dict[str, Any]] = field(default_factory=list)
    # a run whose settings changed as it trained (a PBT trial): [{iteration, params}], each stretch from
    # that iteration on, its donors' stretches included; params then holds the last stretch's settings
    schedule: List[Dict[str, Any]] = field(default_factory=list)
    # seconds from the study's start until the driver saw the trial end (None: a trial of an
    # earlier run of a resumed study); the optimisation history against wall time reads it.
    # A reading of the driver's clock, not part of what the trial was: equality ignores it.
    ended_at: Optional[float] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.trial_id = str(self.trial_id)
        self.status = TrialStatus(self.status)
        self.params = json_safe(dict(self.params))
        self.metrics = json_safe(dict(self.metrics))
        self.history = [json_safe(dict(step)) for step in self.history]
        self.best_metric = json_safe(self.best_metric)
        self.training_time = float(self.training_time)
        self.cost = json_safe(dict(self.cost))
        self.transcripts = json_safe(list(self.transcripts))
        self.schedule = json_safe(list(self.schedule))
        if self.checkpoint_path is not None:
            self.checkpoint_path = str(self.checkpoint_path)

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "HPOResult":
        return cls(**data)

    def save(self, path: Union[str, Path]) -> Path:
        """This trial as strict JSON (``HPOResult.load`` reads it back)."""
        return write_atomically(Path(path), json.dumps(self.to_dict(), indent=2, allow_nan=False))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "HPOResult":
        from .records import read_json

        return cls.from_dict(read_json(path, "trial"))


@dataclass
class HPOSummary:
    """The study: every trial, the best one by the objective, and totals by status.

    The best trial is chosen among successful trials only (as Optuna does): a pruned
    trial's metric comes from a run cut short and is not comparable; with ``constraints``
    (see constraints.py) only among those that meet them. A multi-objective study
    (``objective_metrics``/``directions``) also has a Pareto front; ``best_*`` then refer to
    its first objective.
    """

    objective_metric: str
    direction: str
    all_results: List[HPOResult] = field(default_factory=list)
    total_time: float = 0.0
    search_space_name: Optional[str] = None
    baseline_trial_id: Optional[str] = None  # the trial that ran the space's defaults (the search's first)
    objective_metrics: Optional[List[str]] = None
    directions: Optional[List[str]] = None
    validation: Optional[Dict[str, Any]] = None  # see stateset_hpo.validation
    constraints: Optional[Constraints] = None
    ended_by: Optional[str] = None  # why the search ended before n_trials (the budget, patience), or None
    racing: Optional[Dict[str, Any]] = None  # the top candidates run again on more seeds (see racing.py)
    warm_start: Optional[Dict[str, Any]] = None  # what an earlier study gave this one (see warm_start.py)
    # the replaced system's counts, accepted when building a summary and checked against
    # all_results (they are computed from it: n_trials, n_successful; read back as properties)
    total_trials: InitVar[Optional[int]] = None
    successful_trials: InitVar[Optional[int]] = None

    def __post_init__(self, total_trials: Optional[int], successful_trials: Optional[int]) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {self.direction!r}")
        self.all_results = [r if isinstance(r, HPOResult) else HPOResult.from_dict(r) for r in self.all_results]
        self.total_time = float(self.total_time)
        for name, given, counted in (("total_trials", total_trials, self.n_trials),
                                     ("successful_trials", successful_trials, self.n_successful)):
            if given is not None and given != counted:
                raise ValueError(f"HPOSummary: {name}={given!r} does not match all_results, which holds {counted} "
                                 "(the counts are computed from the trials)")

    # -- derived -----------------------------------------------------------------------------
    @property
    def best_result(self) -> Optional[HPOResult]:
        best = self.ranked()
        return best[0] if best else None

    def ranked(self) -> List[HPOResult]:
        """The successful trials with an objective value, best first: the only trials the
        study compares (a pruned trial's value comes from a run cut short). Trials that were
        raced (racing.py) come first, by their mean over every run, any with a failed run last
        among them."""
        scored = ranked(self.all_results, self.direction, self.constraints)
        raced = (self.racing or {}).get("trials", {})
        if not raced:
            return scored
        sign = direction_sign(self.direction)
        first = sorted((r for r in scored if r.trial_id in raced),
                       key=lambda r: (raced[r.trial_id]["failed"] > 0, -sign * raced[r.trial_id]["mean"]))
        return first + [r for r in scored if r.trial_id not in raced]

    @property
    def best_params(self) -> Dict[str, Any]:
        best = self.best_result
        return dict(best.params) if best else {}

    @property
    def best_metric(self) -> Optional[float]:
        best = self.best_result
        return best.best_metric if best else None

    @property
    def best_trial_id(self) -> Optional[str]:
        best = self.best_result
        return best.trial_id if best else None

    @property
    def pareto_front(self) -> List[str]:
        """Ids of the successful trials that no other successful trial beats on every objective
        (at least as good on all, better on one); for one objective, the best trial(s)."""
        metrics = self.objective_metrics or [self.objective_metric]
        signs = [direction_sign(d) for d in (self.directions or [self.direction])]
        points = {}
        for r in self.all_results:
            values = [r.metrics.get(m) for m in metrics]
            if r.status is TrialStatus.SUCCESS and all(v is not None for v in values) and \
                    feasible(r.metrics, self.constraints):
                points[r.trial_id] = [s * v for s, v in zip(signs, values)]

        def dominated(p):
            return any(all(a >= b for a, b in zip(q, p)) and any(a > b for a, b in zip(q, p))
                       for q in points.values())
        return [trial_id for trial_id, p in points.items() if not dominated(p)]

    def _count(self, status: TrialStatus) -> int:
        return sum(r.status is status for r in self.all_results)

    @property
    def n_trials(self) -> int:
        return len(self.all_results)

    @property
    def n_successful(self) -> int:
        return self._count(TrialStatus.SUCCESS)

    @property
    def n_failed(self) -> int:
        return self._count(TrialStatus.FAILED)

    @property
    def n_pruned(self) -> int:
        return self._count(TrialStatus.PRUNED)

    @property
    def stopped_by(self) -> Dict[str, int]:
        """How many trials each health rule, pruner, scheduler or the timeout stopped."""
        counts: Dict[str, int] = {}
        for r in self.all_results:
            if r.status is TrialStatus.PRUNED:
                key = r.stopped_by or "unknown"
                counts[key] = counts.get(key, 0) + 1
        return counts

    @property
    def cost(self) -> Dict[str, float]:
        """What every trial of the search consumed, added up (see cost.py), with the racing runs."""
        return total([r.cost for r in self.all_results] + [(self.racing or {}).get("cost", {})])

    @property
    def cost_to_recommendation(self) -> Optional[Dict[str, float]]:
        """What the search spent until it had the recommended trial: every trial created up to
        and including it (trials started before it count even if they ended after it)."""
        best = self.best_result
        if best is None:
            return None
        upto = self.all_results[:self.all_results.index(best) + 1]
        return total([r.cost for r in upto] + [(self.racing or {}).get("cost", {})])  # (racing named it)

    @property
    def gain(self) -> Optional[Tuple[float, str]]:
        """(improvement over the baseline, what it is) when the validation found the
        recommendation significantly better than the baseline on the test scenarios, else None:
        a gain within noise (or the search's own, unvalidated) is no unit to price compute in,
        and dividing by one near 0 gives huge, meaningless costs."""
        comparison = (self.validation or {}).get("comparison") or {}
        if comparison.get("verdict") != BETTER:
            return None
        return float(comparison["gain"]), f"validated gain on {self.validation['metric']}"

    @property
    def cost_per_gain(self) -> Optional[Dict[str, float]]:
        """The search's total cost per unit of `gain` (None without a significant gain)."""
        gain = self.gain
        return per_unit(self.cost, gain[0] if gain else None)

    @property
    def baseline_metric(self) -> Optional[float]:
        for r in self.all_results:
            if r.trial_id == self.baseline_trial_id:
                return r.best_metric
        return None

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Stored fields plus the derived totals and best trial, for readers of the file."""
        return {
            "objective_metric": self.objective_metric,
            "direction": self.direction,
            "search_space_name": self.search_space_name,
            "baseline_trial_id": self.baseline_trial_id,
            "objective_metrics": self.objective_metrics,
            "directions": self.directions,
            "validation": json_safe(self.validation),
            "constraints": self.constraints,
            "ended_by": self.ended_by,
            "racing": json_safe(self.racing),
            "warm_start": json_safe(self.warm_start),
            "total_time": self.total_time,
            "n_trials": self.n_trials,
            "n_successful": self.n_successful,
            "n_failed": self.n_failed,
            "n_pruned": self.n_pruned,
            "stopped_by": self.stopped_by,
            "cost": self.cost,
            "cost_to_recommendation": self.cost_to_recommendation,
            "cost_per_gain": self.cost_per_gain,
            "gain": self.gain,
            "best_trial_id": self.best_trial_id,
            "best_metric": self.best_metric,
            "best_params": self.best_params,
            "pareto_front": self.pareto_front,
            "all_results": [r.to_dict() for r in self.all_results],
        }

    _DERIVED = ("n_trials", "n_successful", "n_failed", "n_pruned", "stopped_by", "cost", "cost_to_recommendation",
                "cost_per_gain", "gain", "best_trial_id", "best_metric", "best_params", "pareto_front")

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "HPOSummary":
        stored = {k: v for k, v in data.items() if k not in cls._DERIVED}
        return cls(**stored)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save(self, path: Union[str, Path]) -> Path:
        path = Path(path)
        return write_atomically(path, self.to_json())

    def write(self, output_dir: Union[str, Path]) -> None:
        """The study's records in ``output_dir``: summary.json (strict JSON, `load` reads it
        back) and trials.csv (see records.py)."""
        from .records import write_records

        write_records(self, Path(output_dir))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "HPOSummary":
        from .records import read_json

        return cls.from_dict(read_json(path, "summary"))

    # -- display (summary_text.py) -----------------------------------------------------------
    def format_summary(self, max_rows: int = 20) -> str:
        """A plain-text report: totals, the best trial, and the trials ranked by metric."""
        from .summary_text import format_summary

        return format_summary(self, max_rows)

    def print_summary(self, file: Optional[TextIO] = None) -> None:
        print(self.format_summary(), file=file or sys.stdout)


# The replaced system's names for the counts (the InitVars' class defaults would read None)
HPOSummary.total_trials = property(lambda self: self.n_trials, doc="n_trials (the replaced system's name)")
HPOSummary.successful_trials = property(lambda self: self.n_successful, doc="n_successful (the replaced system's name)")
