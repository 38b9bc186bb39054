"""Compile a SearchSpace to Optuna distributions, through Ray's own Tune->Optuna converter, and
sample it define-by-run.

Using `OptunaSearch.convert_search_space` instead of a second hand-written converter keeps
the Ray and standalone Optuna backends on identical ranges (tests check the ranges). Sampling
goes dimension by dimension through the trial's suggest API (define-by-run), so a conditional
dimension (``when``) is asked for only once its parents have made it active: the same function
serves the standalone backend and Ray's OptunaSearch (``space=`` a define-by-run function).
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from ..ray.space import to_tune


def to_optuna(space) -> Dict[str, Any]:
    """Optuna distributions by name."""
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch.convert_search_space(to_tune(space))


class DefineByRun:
    """``(optuna trial) -> params``: suggests each active dimension in the space's order
    (parents before children) and skips the others. A class, not a closure, so a searcher
    that holds it can be pickled (Tune saves its searcher's state for a resume)."""

    def __init__(self, space) -> None:
        self.space = space
        self.distributions = to_optuna(space)

    def __call__(self, trial) -> Dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        params: Dict[str, Any] = {}
        for dim in self.space:
            if not dim.active_given(params):
                continue
            dist = self.distributions[dim.name]
            if isinstance(dist, FloatDistribution):
                params[dim.name] = trial.suggest_float(dim.name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, IntDistribution):
                params[dim.name] = trial.suggest_int(dim.name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, CategoricalDistribution):
                params[dim.name] = trial.suggest_categorical(dim.name, dist.choices)
            else:
                raise TypeError(f"{dim.name}: unsupported Optuna distribution {dist!r}")
        return params


def finished_trials(space, told: Sequence[Tuple[Dict[str, Any], float]], **attrs: Any) -> List[Any]:
    """Earlier results as finished Optuna trials (a warm start's observations), each with the
    distributions of the dimensions it sets only (a conditional space's inactive ones are absent)."""
    import optuna

    distributions = to_optuna(space)
    return [optuna.trial.create_trial(params=params, distributions={k: distributions[k] for k in params},
                                      value=value, user_attrs=attrs) for params, value in told]
