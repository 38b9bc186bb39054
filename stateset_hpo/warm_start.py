"""Warm starts: an earlier study's trials start this one (``--warm-start``, HPOConfig.warm_start).

Teams tune the same agent again and again (a new model size, more data, a longer budget). The
earlier study's results go in two ways:

- **told** (``warm_start_comparable``: the user says the earlier trials were measured as this
  study measures, the same task, model, budget and yardstick): they are observations for the
  searcher before its first proposal (Optuna's ``add_trials``, standalone and in Ray's Optuna
  searcher's study; Ray's bayesopt and ax searchers register them in their models), so it starts
  where the earlier search left off; and the earlier best runs
  first after the baseline, once, under this study's seed. A model told a handful of noisy
  results still explores first (TPE's startup trials count them, but its proposals spread
  over the space), while the configuration the user came back for is the one to measure again
  at once: a study that reaches the earlier best does so in its second trial, not by chance late;
- **first** (the default, and for searchers that take no observations: Ray's random, hyperopt,
  bohb; W&B's engine): the earlier best
  configurations, in their earlier order, are this study's first trials after the baseline.
  Their old scores rank them and nothing more: a score from another budget or model is not a
  measurement of this study.

An earlier study whose trials all scored the same (on the tiny task: every configuration left the
untrained model's greedy held-out score where it was) ranks nothing, so nothing is transferred
and the summary says why: told to TPE, such ties still count as its startup trials and its
"good" group is an arbitrary pick among them, which narrowed a study's search onto configurations
known to do nothing (seen in seed 4 of bench/search_strategies.py's warm-start part, whose
source's 6 trials all scored 0.082). Likewise, where the earlier study ran this space's defaults
(its baseline), only configurations that scored better than they did are run first, and an
earlier study where none did found nothing to start from: nothing is told or run first. A
configuration that did no better than the defaults is no reason to spend a trial on it first
(seen in seed 16 of bench/warm_start.py --source half-episodes: four of the five run first had
tied with the source's baseline, a quarter of the warm study's budget).

Each earlier trial must fit this study's space: a parameter that is no longer searched is
dropped from it (reported), and a trial that lacks one of the space's dimensions or has a value
outside its range is not used at all (reported, never clipped). Only successful trials with a
finite score of this study's objective metric are used. The summary and report list what was
transferred and from where (``HPOSummary.warm_start``).

Sources: an earlier ``summary.json``, the folder that holds one, or an Optuna storage with a
study name, ``STORAGE#STUDY`` (``sqlite:///hpo.db#grpo_hpo``, ``hpo.journal#grpo_hpo``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .masking import masked
from .search.base import get_backend

FIRST = 5  # earlier configurations run first when they cannot be told (the earlier top 5)


@dataclass
class WarmStart:
    """What an earlier study gives this one (see the module docstring)."""

    source: str
    comparable: bool
    told: List[Tuple[Dict[str, Any], float]] = field(default_factory=list)  # (params, earlier score)
    first: List[Dict[str, Any]] = field(default_factory=list)  # run first, best first
    dropped: List[str] = field(default_factory=list)  # what was not transferred, and why

    def describe(self) -> str:
        if not self.told and not self.first:
            return (f"warm start from {masked(self.source)}: nothing transferred ({'; '.join(self.dropped[:2])}"
                    + (" ..." if len(self.dropped) > 2 else "") + ")")
        how = (f"{len(self.told)} earlier trials told to the searcher as observations, the earlier best run first"
               if self.told
               else f"the earlier best {len(self.first)} configurations run first (their scores order them only"
                    + ("; comparable, but this study's searcher takes no observations)" if self.comparable else ")"))
        return (f"warm start from {masked(self.source)}: {how}"
                + (f"; not transferred: {'; '.join(self.dropped[:5])}" + (" ..." if len(self.dropped) > 5 else "")
                   if self.dropped else ""))

    def ordering_only(self, baseline: Dict[str, Any]) -> "WarmStart":
        """For a searcher that takes no observations: the told trials' best FIRST that beat the
        earlier run of this space's defaults ``baseline`` run first instead, and nothing told."""
        ranked = [params for params, _ in above_baseline(self.told, baseline)]
        return WarmStart(self.source, self.comparable, [], ranked[:FIRST], self.dropped)

    def record(self) -> Dict[str, Any]:
        """The summary's ``warm_start`` block."""
        data = asdict(self)
        data["told"] = [{"params": p, "value": v} for p, v in self.told]
        return data


def earlier_trials(source: str, metric: str) -> List[Tuple[str, Dict[str, Any], float]]:
    """[(trial id, params, score)] of the earlier study's successful trials with a finite
    ``metric``; ValueError when the source cannot be read or never measured ``metric``."""
    path = _summary_path(source)
    if path is None:
        storage, _, study_name = source.rpartition("#")
        return _from_optuna(storage, study_name, metric)
    if not path.is_file():
        raise ValueError(f"--warm-start {source}: no summary.json there (give an earlier study's summary.json, its "
                         "folder, or STORAGE#STUDY for an Optuna storage)")
    from .results import HPOSummary

    try:
        summary = HPOSummary.load(path)
    except (ValueError, OSError, TypeError) as exc:
        raise ValueError(f"--warm-start {source}: cannot read {path}: {exc}"[:400]) from None
    if metric != summary.objective_metric and not any(metric in r.metrics for r in summary.all_results):
        raise ValueError(f"--warm-start {source}: the earlier study measured {summary.objective_metric!r}, not this "
                         f"study's objective {metric!r}")
    return [(r.trial_id, dict(r.params), float(r.metrics[metric])) for r in summary.all_results
            if r.status.value == "success" and _finite(r.metrics.get(metric))]


def _summary_path(source: str) -> Optional[Path]:
    """The summary.json a source names (the file, or the folder holding it); None for an
    Optuna ``STORAGE#STUDY``."""
    storage, sep, _ = source.rpartition("#")
    if sep and storage:
        return None
    path = Path(source).expanduser()
    try:
        return path / "summary.json" if path.is_dir() else path
    except OSError as exc:  # (a name too long for the file system, a path it refuses to look at)
        raise ValueError(f"--warm-start {source[:80]}{'...' if len(source) > 80 else ''}: not a path this machine "
                         f"can read ({exc.strerror})") from None


def _from_optuna(storage: str, study_name: str, metric: str) -> List[Tuple[str, Dict[str, Any], float]]:
    import optuna

    from .search.optuna.storage import open_storage

    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except (KeyError, ValueError) as exc:  # (no such study; a storage that cannot be opened)
        raise ValueError(f"--warm-start: no Optuna study {study_name!r} in {masked(storage)} ({exc})"[:400]) from None
    if len(study.directions) != 1:
        raise ValueError(f"--warm-start: Optuna study {study_name!r} has {len(study.directions)} objectives; a warm "
                         "start takes a single-objective study")
    return [(str(t.number), dict(t.params), float(t.value)) for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE and _finite(t.value)
            and not t.user_attrs.get("warm_start")]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def baseline_score(ranked: List[Tuple[Dict[str, Any], float]], baseline: Dict[str, Any]) -> Optional[float]:
    """The earlier score of the configuration ``baseline`` (this space's defaults), or None
    where the earlier study never ran it."""
    return next((value for params, value in ranked if params == baseline), None)


def above_baseline(ranked: List[Tuple[Dict[str, Any], float]], baseline: Dict[str, Any]):
    """The head of ``ranked`` ((params, score), best first) that scored better than the earlier
    run of ``baseline``; all of it where the earlier study never ran it."""
    reference = baseline_score(ranked, baseline)
    return ranked if reference is None else list(itertools.takewhile(lambda item: item[1] != reference, ranked))


def load(source: str, comparable: bool, space, metric: str, direction: str) -> WarmStart:
    """The warm start of a study over ``space`` optimising ``metric`` (``direction``)."""
    warm = WarmStart(source, comparable)
    unsearched: Dict[str, int] = {}
    fitting: List[Tuple[Dict[str, Any], float]] = []
    for trial_id, params, value in earlier_trials(source, metric):
        for name in params:
            if name not in space:
                unsearched[name] = unsearched.get(name, 0) + 1
        active = space.active(params)  # (a conditional dimension only where its parents make it searched)
        missing = [d.name for d in active if d.name not in params]
        outside = [f"{d.name}={params[d.name]!r}" for d in active if d.name in params and not d.contains(params[d.name])]
        if missing or outside:
            why = f"lacks {', '.join(missing)}" if missing else f"{', '.join(outside)} outside the space"
            warm.dropped.append(f"trial {trial_id} ({why})")
            continue
        fitting.append(({d.name: params[d.name] for d in active}, value))
    warm.dropped += [f"{name} (no longer searched; dropped from {n} trials)" for name, n in sorted(unsearched.items())]
    if not fitting:
        raise ValueError(f"--warm-start {source}: no earlier trial fits this study's space"
                         + (f" ({'; '.join(warm.dropped[:3])})" if warm.dropped else " (no successful trial with a "
                            f"finite {metric})"))
    fitting.sort(key=lambda item: item[1], reverse=direction == "maximize")
    if len(fitting) > 1 and len({value for _, value in fitting}) == 1:
        warm.dropped.insert(0, f"all {len(fitting)} fitting trials scored {fitting[0][1]:g}: they rank nothing")
        return warm
    promising = [params for params, _ in above_baseline(fitting, space.baseline())]
    if not promising:
        warm.dropped.insert(0, f"no fitting trial scored better than the earlier run of this space's defaults "
                               f"({baseline_score(fitting, space.baseline()):g}): it found nothing to start from")
        return warm
    if comparable:
        warm.told, warm.first = fitting, promising[:1]
    else:
        warm.first = promising[:FIRST]
    return warm


_LOADED: Dict[tuple, WarmStart] = {}  # of_study's: the checks, the backend and the summary each ask for it


def of_study(config, space) -> Optional[WarmStart]:
    """The study's warm start (HPOConfig.warm_start) as its searcher takes it, or None: told
    only where the backend's searcher takes observations (``Backend.takes_observations``), so
    what the study runs is what its start line, summary and report say. A summary file is read
    once while it stays unchanged (its size and modification time), so every part of a study
    sees the same earlier trials; an Optuna storage is read on each call."""
    if config.warm_start is None:
        return None
    warm = _loaded(config, space)
    if warm.told and not get_backend(config.backend).takes_observations(config):
        return warm.ordering_only(space.baseline())
    return warm


def _loaded(config, space) -> WarmStart:
    args = (config.warm_start, config.warm_start_comparable, space, config.objective_metric, config.direction)
    path = _summary_path(config.warm_start)
    if path is None or not path.is_file():
        return load(*args)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, space.to_json(), config.warm_start_comparable,
           config.objective_metric, config.direction)
    if key not in _LOADED:
        _LOADED.clear()  # (one study's at a time)
        _LOADED[key] = load(*args)
    return _LOADED[key]


def observations(config, space) -> List[Tuple[Dict[str, Any], float]]:
    """What a searcher that takes observations is told before its first proposal: the earlier
    (params, score) pairs of a comparable warm start, else none."""
    warm = of_study(config, space)
    return warm.told if warm else []


def first_points(config, space) -> List[Dict[str, Any]]:
    """The trials a search runs first: the space's defaults (the summary's baseline), then the
    warm start's earlier best (up to FIRST where its searcher is told nothing)."""
    warm = of_study(config, space)
    extra = [p for p in (warm.first if warm else []) if p != space.baseline()]
    return [space.baseline(), *extra][:config.n_trials]  # (Tune runs every point it is given, whatever its count)
