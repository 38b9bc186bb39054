"""A trustworthy answer: test the recommendation, named before it is tested, against the baseline.

A study's best trial is the maximum of many noisy runs on the selection scenarios, so its
score flatters. After the search:

1. the recommendation is fixed from the search alone: the best successful trial on the
   selection score (``eval_*``). The next ``validation_top_k - 1`` may be validated too,
   labelled as not the recommendation;
2. the baseline is what the user would run without HPO: the base training configuration
   (TrainingConfig defaults plus ``--set`` / ``base_training_config``), whatever the space's
   per-dimension defaults are (those only seed the search, as its first trial);
3. each is retrained with the same ``validation_seeds`` fresh seeds (never used by the search)
   at one equal budget (``validation_episodes``, default the largest budget among them) and
   scored on the test scenarios, which nothing else touches (``test_*``, one score per
   conversation); a recommendation whose settings changed as it trained (PBT) is retrained
   following its schedule, as it was found;
4. the gain is the paired difference recommended - baseline, with a 95% confidence interval
   (`stateset_hpo.comparison`); it may be negative or "no significant difference".

The runs go through the study's backend (``Backend.retrain``): on Ray Tune they
are Tune trials with the study's resources (GPUs on a cluster); the in-process backends run
them here.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .comparison import BETTER, NO_DIFFERENCE, UNSTABLE, UNTESTED, interval, paired_gain, seed_scores, sentence
from .config import HPOConfig
from .diagnosis import error_line
from .results import HPOResult, HPOSummary, TrialStatus, direction_sign
from .search.base import get_backend
from .space import SearchSpace
from .trial import SCHEDULE_KEY, TrialSpec, split_schedule

BASELINE = "baseline"
SEED_OFFSET = 10_000  # validation seeds: base seed + 10000 + i, far from any searched seed


def baseline_point(spec: TrialSpec, space: SearchSpace) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(the baseline as a point of the space, {name: space default} where the two differ).

    Each dimension takes the base training config's value; a dimension that is no training
    parameter (a custom objective's own) keeps the space's default."""
    fields = {f.name for f in dataclasses.fields(spec.base_config)}
    defaults = space.baseline()
    point = {name: getattr(spec.base_config, name) if name in fields else defaults[name] for name in space.names}
    differ = {name: defaults[name] for name in space.names if point[name] != defaults[name]}
    return point, differ


def candidates(summary: HPOSummary, baseline: Dict[str, Any], top_k: int) -> List[Tuple[str, str, Dict[str, Any]]]:
    """[(label, role, params)]: the recommendation (the search's best), the next distinct
    successful configurations up to ``top_k``, then the baseline point. A trial whose settings
    changed as it trained (PBT) is its schedule (``SCHEDULE_KEY``), which its re-runs replay;
    then every point carries the key (a fixed configuration's is empty), as Tune needs one set
    of keys for all points."""
    out: List[Tuple[str, str, Dict[str, Any]]] = []
    for r in summary.ranked():  # the first is summary.best_result
        if len(out) == top_k:
            break
        point = {**r.params, SCHEDULE_KEY: json.dumps(r.schedule)} if r.schedule else dict(r.params)
        if all(point != params for _, _, params in out):
            out.append((f"trial {r.trial_id}", "recommended" if not out else "other", point))
    out.append((BASELINE, "baseline", baseline))
    if any(SCHEDULE_KEY in params for _, _, params in out):
        out = [(label, role, {SCHEDULE_KEY: "", **params}) for label, role, params in out]
    return out


def validation_budget(config: HPOConfig, spec: TrialSpec, points: Sequence[Dict[str, Any]]) -> int:
    """Episodes every validated configuration trains on: ``validation_episodes``, else the
    largest budget among them (so no configuration wins by training longer)."""
    if config.validation_episodes is not None:
        return config.validation_episodes
    return max(int(p.get("num_episodes", spec.base_config.num_episodes)) for p in points)


def seeded_points(spec: TrialSpec, points, budget: Optional[int], seeds: range):
    """[(label, params with the equal budget and a fresh seed)], one per point and seed index,
    the same seeds for every point (the comparison is paired by seed)."""
    base = spec.base_config.seed
    fixed = {} if budget is None else {"num_episodes": budget}
    return [(label, {**params, **fixed, "seed": base + SEED_OFFSET + i}) for label, _, params in points for i in seeds]


def decided(comparison: Dict, min_effect: Optional[float]) -> bool:
    """Whether a sequential validation can stop: the verdict is clear, or the interval rules
    out every gain of ``min_effect`` or more (no gain worth having is left to find)."""
    if comparison.get("gain") is None:  # no seed finished for both: more seeds will not help
        return True
    if comparison["verdict"] == UNTESTED:  # one seed so far
        return False
    if comparison["verdict"] != NO_DIFFERENCE:  # better, worse, or failing in some seeds
        return True
    return min_effect is not None and interval(comparison)[1] < min_effect


def test_metric(objective: str, metrics: Dict[str, Any]) -> Tuple[str, bool]:
    """(the metric validation scores, whether it is a test-split score): ``test_x`` for an
    objective ``eval_x`` or ``x`` when the run reports it, else the objective itself."""
    name = "test_" + (objective[len("eval_"):] if objective.startswith("eval_") else objective)
    return (name, True) if name in metrics else (objective, False)


def run_validation(config: HPOConfig, spec: TrialSpec, space: SearchSpace, summary: HPOSummary) -> Optional[Dict]:
    """The validation block of the summary (None when off or nothing succeeded)."""
    if not config.validation_top_k or summary.best_result is None:
        return None
    baseline, space_defaults_differ = baseline_point(spec, space)
    points = candidates(summary, baseline, config.validation_top_k)
    budget = None if spec.objective is not None else validation_budget(config, spec, [p for _, _, p in points])
    max_seeds = config.validation_max_seeds or config.validation_seeds
    looks = max_seeds - config.validation_seeds + 1  # planned: one more seed per look
    test_spec = dataclasses.replace(spec, test_at_end=True, health=None)  # each run trains to its end
    # the test conversations' topics: conversations of one topic are not independent evidence
    # ("fixed": the claim is about these very topics; their conversations are then the units)
    topics = spec.test_topics if spec.objective is not None else spec.trl.test_topics if spec.trl is not None \
        else [s.topic for s in spec.environment.test_scenarios]
    topics = topics if config.validation_topics == "random" else None
    finished: List[HPOResult] = []
    done, seeds = 0, config.validation_seeds
    while True:
        unique = []  # a recommendation equal to the baseline is trained once per seed, not twice
        for _, params in seeded_points(spec, points, budget, range(done, seeds)):
            if params not in unique:
                unique.append(params)
        if config.verbose:  # (these runs fire no study callbacks: the progress view is the search's)
            print(f"validating: {', '.join(label for label, _, _ in points)} retrained with "
                  + (f"{seeds - done} fresh seed(s) each" if done else f"{seeds} fresh seeds each")
                  + (f" at {budget} episodes" if budget else "")
                  + f" ({len(unique)} runs), scored on the test scenarios", flush=True)
        # through the study's backend: on Ray they are Tune trials with the study's resources
        finished += get_backend(config.backend).retrain(config, test_spec, unique)
        runs = seeded_points(spec, points, budget, range(seeds))
        block = summarise(config.objective_metric, config.direction, points, runs, finished, topics, looks)
        if seeds >= max_seeds or decided(block["comparison"], config.min_effect):
            break
        done, seeds = seeds, seeds + 1
    block["budget_episodes"] = budget
    block["space_defaults_differ"] = space_defaults_differ
    if looks > 1:
        block["sequential"] = {"max_seeds": max_seeds, "seeds_used": seeds, "min_effect": config.min_effect}
    return block


def per_conversation(metric: str, metrics: Dict[str, Any]) -> List[float]:
    """The run's score per test conversation (``metric[i]``), or its one mean score."""
    items = sorted((int(k[len(metric) + 1:-1]), v) for k, v in metrics.items()
                   if k.startswith(metric + "[") and k.endswith("]"))
    return [v for _, v in items] if items else [metrics[metric]]


def summarise(objective: str, direction: str, points, runs, finished: List[HPOResult],
              topics: Optional[Sequence[str]] = None, looks: int = 1) -> Dict:
    """Group the finished runs by configuration, then compare the recommendation with the
    baseline (paired by seed and conversation; with ``topics``, by seed and topic)."""
    roles = {label: role for label, role, _ in points}
    by_label: Dict[str, Dict] = {}
    rows: Dict[str, Dict[int, List[float]]] = {}
    metric, held_out = None, False
    for (label, params), result in zip(runs, _match(runs, finished)):
        fixed, schedule = split_schedule({k: v for k, v in params.items() if k != "seed"})
        entry = by_label.setdefault(label, {"label": label, "role": roles[label], "seeds": [], "scores": [],
                                            "errors": [], "transcripts": [], "transcripts_seed": None,
                                            "params": fixed, "schedule": schedule})
        entry["seeds"].append(params["seed"])
        if result is None or result.status is not TrialStatus.SUCCESS or not result.metrics:
            # a run stopped before its end has no test score: its last metrics are not one
            entry["errors"].append("did not run" if result is None else result.error or result.stop_reason
                                   or f"ended {result.status.value}")
            continue
        if metric is None:
            metric, held_out = test_metric(objective, result.metrics)
        if result.metrics.get(metric) is None:
            entry["errors"].append(f"the run reported no {metric!r}")
            continue
        rows.setdefault(label, {})[params["seed"]] = per_conversation(metric, result.metrics)
        if entry["transcripts_seed"] is None and result.transcripts:  # what it says, at its first seed that finished
            entry["transcripts"], entry["transcripts_seed"] = list(result.transcripts), params["seed"]
    for label, entry in by_label.items():
        entry["scores"] = seed_scores(rows.get(label, {}))
        entry["mean"] = statistics.fmean(entry["scores"]) if entry["scores"] else None
        entry["std"] = statistics.stdev(entry["scores"]) if len(entry["scores"]) > 1 else (0.0 if entry["scores"] else None)
    recommended = next(label for label, role, _ in points if role == "recommended")
    comparison = paired_gain(rows.get(recommended, {}), rows.get(BASELINE, {}), direction_sign(direction),
                             groups=topics if held_out else None, looks=looks)
    # the data the interval rests on, so it can be recomputed from summary.json
    comparison["scores_by_seed"] = {role: {str(seed): row for seed, row in rows.get(label, {}).items()}
                                    for role, label in (("recommended", recommended), ("baseline", BASELINE))}
    comparison["failed_runs"] = {role: len(by_label[label]["errors"])
                                 for role, label in (("recommended", recommended), ("baseline", BASELINE))}
    if comparison["failed_runs"]["recommended"] and comparison["verdict"] == BETTER:
        # the paired test only sees the seeds where both finished: a configuration that fails in
        # some seeds is compared where it survived, so it is never called better
        comparison["verdict"] = UNSTABLE
    said = sentence(recommended, comparison, metric or objective)
    same = ("params", "schedule")
    if [by_label[recommended][k] for k in same] == [by_label[BASELINE][k] for k in same]:
        said = f"{recommended} is the baseline configuration itself: the search found nothing else to recommend"
    else:
        said = failures_said(by_label[recommended], by_label[BASELINE]) + said
        if metric is not None and not held_out:
            said += (f"; note: {metric} is not a held-out score (the runs report no test_ version of it), "
                     "so it was measured on what the search saw")
    return {"metric": metric or objective, "held_out": held_out, "recommended": recommended,
            "configurations": list(by_label.values()), "comparison": comparison, "sentence": said}


def failures_said(recommended: Dict, baseline: Dict) -> str:
    """The start of the verdict when validation runs failed: how many, of which configuration, why."""
    parts = []
    for entry in (recommended, baseline):
        if entry["errors"]:
            reasons = sorted({error_line(str(e))[:120] or "no reason" for e in entry["errors"]})
            parts.append(f"{len(entry['errors'])} of {len(entry['seeds'])} runs of {entry['label']} failed "
                         f"({'; '.join(reasons)})")
    return (", ".join(parts) + ": ") if parts else ""


def _match(runs, finished: List[HPOResult]) -> List[Optional[HPOResult]]:
    """The finished result of each run, matched by parameters (a backend may reorder them;
    runs with equal parameters share one result)."""
    return [next((r for r in finished if r.params == params), None) for _, params in runs]
