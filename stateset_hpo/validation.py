"""Trustworthy results: retrain the best configurations and the defaults with fresh seeds.

A study picks its best trial out of many noisy runs, so its best metric is optimistic. After
the search, the ``validation_top_k`` best distinct configurations and the space's defaults
are each trained again with ``validation_seeds`` seeds the search never used, and scored on
the held-out scenarios (``eval_<objective>`` when the engine reports one, e.g. eval_reward
for reward; the objective itself otherwise). The summary reports mean and std per
configuration and how much the best beat the defaults.

The runs go through the study's backend where it matters: on Ray Tune they are Tune trials
with the study's resources (GPUs on a cluster); elsewhere they run in this process.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .config import HPOConfig
from .results import HPOResult, HPOSummary, TrialStatus
from .space import SearchSpace
from .trial import TrialSpec, run_trial

DEFAULTS = "(defaults)"
SEED_OFFSET = 10_000  # validation seeds: base seed + 10000 + i, far from any searched seed


def candidates(summary: HPOSummary, space: SearchSpace, top_k: int) -> List[Tuple[str, Dict[str, Any]]]:
    """[(label, params)]: the top-k distinct successful configurations, then the defaults
    (unless they are among the top k: then that entry's label says so and it runs once)."""
    sign = -1.0 if summary.direction == "maximize" else 1.0
    ranked = sorted((r for r in summary.all_results if r.status is TrialStatus.SUCCESS and r.best_metric is not None),
                    key=lambda r: sign * r.best_metric)
    out: List[Tuple[str, Dict[str, Any]]] = []
    for r in ranked:
        if len(out) == top_k:
            break
        if all(r.params != params for _, params in out):
            out.append((f"trial {r.trial_id}", dict(r.params)))
    baseline = space.baseline()
    for i, (label, params) in enumerate(out):
        if params == baseline:
            out[i] = (f"{label} {DEFAULTS}", params)
            return out
    return out + [(DEFAULTS, baseline)]


def seeded_points(spec: TrialSpec, config: HPOConfig, points: Sequence[Tuple[str, Dict[str, Any]]]):
    """[(label, params with a fresh seed)], ``validation_seeds`` per point."""
    base = spec.base_config.seed
    return [(label, {**params, "seed": base + SEED_OFFSET + i})
            for label, params in points for i in range(config.validation_seeds)]


def held_out_metric(objective: str, metrics: Dict[str, Any]) -> str:
    if objective.startswith("eval_"):
        return objective
    return f"eval_{objective}" if f"eval_{objective}" in metrics else objective


def run_validation(config: HPOConfig, spec: TrialSpec, space: SearchSpace, summary: HPOSummary) -> Optional[Dict]:
    """The validation block of the summary (None when off or nothing succeeded)."""
    if not config.validation_top_k or summary.best_result is None:
        return None
    runs = seeded_points(spec, config, candidates(summary, space, config.validation_top_k))
    if config.backend == "ray_tune":
        from .search.ray_tune import run_ray_tune

        finished = run_ray_tune(config, spec, space, points=[params for _, params in runs])
    else:
        finished = [_in_process(spec, params) for _, params in runs]
    return summarise(config.objective_metric, config.direction, runs, finished)


def _in_process(spec: TrialSpec, params: Dict[str, Any]) -> HPOResult:
    try:
        metrics = run_trial(spec, params, lambda metrics, trainer: False)
        return HPOResult("validation", params, metrics=metrics)
    except Exception as exc:  # a config that fails under another seed is a finding, not a crash
        return HPOResult("validation", params, status=TrialStatus.FAILED, error=f"{type(exc).__name__}: {exc}")


def summarise(objective: str, direction: str, runs, finished: List[HPOResult]) -> Dict:
    """Group the finished runs back by configuration: scores, mean, std, and best vs defaults."""
    by_point: Dict[str, Dict] = {}
    metric = None
    for (label, params), result in zip(runs, _match(runs, finished)):
        entry = by_point.setdefault(label, {"label": label, "params": {k: v for k, v in params.items() if k != "seed"},
                                            "seeds": [], "scores": [], "errors": []})
        entry["seeds"].append(params["seed"])
        if result is None or result.status is TrialStatus.FAILED or not result.metrics:
            entry["errors"].append(result.error if result is not None else "did not run")
            continue
        metric = metric or held_out_metric(objective, result.metrics)
        entry["scores"].append(result.metrics.get(metric))
    for entry in by_point.values():
        scores = [s for s in entry["scores"] if s is not None]
        entry["mean"] = statistics.fmean(scores) if scores else None
        entry["std"] = statistics.stdev(scores) if len(scores) > 1 else (0.0 if scores else None)
    entries = list(by_point.values())
    defaults = next((e["mean"] for e in entries if e["label"].endswith(DEFAULTS)), None)
    pick = max if direction == "maximize" else min
    best = pick((e for e in entries if e["mean"] is not None), default=None, key=lambda e: e["mean"])
    return {"metric": metric, "configurations": entries,
            "best_label": best["label"] if best else None,
            # positive = the best configuration beat the defaults, whichever the direction
            "improvement_over_defaults": ((best["mean"] - defaults) * (1 if direction == "maximize" else -1)
                                          if best and defaults is not None else None)}


def _match(runs, finished: List[HPOResult]) -> List[Optional[HPOResult]]:
    """The finished result of each run, matched by parameters (a backend may reorder them)."""
    left = list(finished)
    out = []
    for _, params in runs:
        hit = next((r for r in left if r.params == params), None)
        if hit is not None:
            left.remove(hit)
        out.append(hit)
    return out
