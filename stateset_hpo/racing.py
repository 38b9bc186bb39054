"""Racing: the search's top candidates run again on more seeds before one is named.

A search trains each configuration once, with one seed, and ranks them on a selection score
whose noise per trial is as large as the gaps it ranks (with 10 selection conversations a
standard error of about 0.037 per run; 20 now, and still one run cannot show the seed-to-seed
spread). So before the
recommendation is named, the top ``race_top_k`` distinct configurations are trained again with
``race_seeds`` fresh seeds each, on the same selection split, and ranked by their mean over all
their runs (as SMAC's intensification re-evaluates its incumbent before trusting it). The test
split is still untouched: the recommendation is named before it is tested. A candidate with a
failed race run ranks behind every candidate without one. The runs' cost is the study's too
(``HPOSummary.cost``).
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import TYPE_CHECKING, Any, Dict, Optional

from .cost import total
from .results import HPOSummary, TrialStatus
from .search.base import get_backend

if TYPE_CHECKING:
    from .config import HPOConfig
    from .space import SearchSpace
    from .trial import TrialSpec

RACE_OFFSET = 20_000  # race seeds: base seed + 20000 + i, apart from the search's and validation's


def race(config: "HPOConfig", spec: "TrialSpec", space: "SearchSpace", summary: HPOSummary) -> Optional[Dict[str, Any]]:
    """The racing block of the summary (None when off or fewer than two candidates)."""
    if not config.race_seeds:
        return None
    contenders = []
    for r in summary.ranked():
        if len(contenders) == config.race_top_k:
            break
        if all(r.params != c.params for c in contenders):
            contenders.append(r)
    if len(contenders) < 2:
        return None
    base = spec.base_config.seed
    points = [{**r.params, "seed": base + RACE_OFFSET + i} for r in contenders for i in range(config.race_seeds)]
    if config.verbose:
        print(f"racing: trials {', '.join(r.trial_id for r in contenders)} again with {config.race_seeds} fresh "
              f"seed(s) each ({len(points)} runs) on the selection scenarios", flush=True)
    race_spec = dataclasses.replace(spec, test_at_end=False, health=None)  # each run trains to its end
    finished = get_backend(config.backend).retrain(config, race_spec, points)
    trials = {}
    for r in contenders:
        runs = [f for f in finished if {k: v for k, v in f.params.items() if k != "seed"} == r.params]
        good = [f.best_metric for f in runs if f.status is TrialStatus.SUCCESS and f.best_metric is not None]
        scores = [r.best_metric] + good
        trials[r.trial_id] = {"scores": scores, "mean": statistics.fmean(scores),
                              "failed": config.race_seeds - len(good)}
    return {"seeds": config.race_seeds, "trials": trials, "cost": total([f.cost for f in finished])}
