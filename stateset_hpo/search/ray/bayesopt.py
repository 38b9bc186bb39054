"""A Ray Tune searcher on bayesian-optimization 3.x that handles mixed spaces.

Ray's own BayesOptSearch calls `bayes_opt.UtilityFunction`, removed in bayesian-optimization
2.0, and rejects integer and categorical dimensions (Ray issue 49845), so the `full` space
could not use it. This searcher keeps bayes_opt's optimizer and only translates points
(`BayesOptSpace`): bayesian-optimization 3.x itself accepts ``(low, high)`` floats,
``(low, high, int)`` integers and tuples of string categories, so we add only what it lacks:
log scales (searched in log space) and categories that are not strings (searched by label).
"""

from __future__ import annotations

import math
import pickle
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ray.tune.search import Searcher

from ...space.dimension import SearchDimension, SearchSpaceType


def _labels(dim: SearchDimension) -> Tuple[str, ...]:
    labels = tuple(str(c) for c in dim.choices)
    if len(set(labels)) != len(labels):  # e.g. "1" and 1 among the choices
        labels = tuple(f"#{i}" for i in range(len(dim.choices)))
    return labels


class BayesOptSpace:
    """``pbounds`` for bayes_opt plus the mapping between its points and our params.

    A categorical with a single choice is not searched (bayes_opt needs two categories);
    `decode` fills it in.
    """

    def __init__(self, space) -> None:
        space.check_unconditional("search_alg bayesopt (a Gaussian process over a fixed box)")
        self.space = space
        self.pbounds: Dict[str, Any] = {}
        self.fixed: Dict[str, Any] = {}
        for dim in space:
            if dim.is_range and dim.is_log:
                self.pbounds[dim.name] = (math.log(dim.low), math.log(dim.high))
            elif dim.type is SearchSpaceType.INT:
                self.pbounds[dim.name] = (dim.low, dim.high, int)
            elif dim.is_range:
                self.pbounds[dim.name] = (dim.low, dim.high)
            elif len(dim.choices) == 1:
                self.fixed[dim.name] = dim.choices[0]
            else:
                self.pbounds[dim.name] = _labels(dim)

    def decode(self, point: Mapping[str, Any]) -> Dict[str, Any]:
        """A bayes_opt point -> our params, with each dimension's own type and bounds."""
        params: Dict[str, Any] = {}
        for dim in self.space:
            if dim.name in self.fixed:
                params[dim.name] = self.fixed[dim.name]
                continue
            raw = point[dim.name]
            if not dim.is_range:
                params[dim.name] = dim.choices[_labels(dim).index(raw)]
                continue
            value = math.exp(float(raw)) if dim.is_log else float(raw)
            value = min(dim.high, max(dim.low, value))
            params[dim.name] = int(round(value)) if dim.type is SearchSpaceType.INT else value
        return params

    def encode(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        """Our params -> a bayes_opt point (to register known results such as the baseline)."""
        point: Dict[str, Any] = {}
        for dim in self.space:
            if dim.name in self.fixed:
                continue
            value = params[dim.name]
            if not dim.is_range:
                point[dim.name] = _labels(dim)[dim.choice_index(value)]
            elif dim.is_log:
                point[dim.name] = math.log(value)
            else:
                point[dim.name] = value
        return point


class MixedBayesOptSearch(Searcher):
    def __init__(self, space, metric: Optional[str] = None, mode: Optional[str] = None,
                 points_to_evaluate: Optional[List[Dict]] = None, random_state: Optional[int] = None,
                 told: Sequence[Tuple[Dict, float]] = ()) -> None:
        """``told``: earlier (params, score) pairs, registered as observations before the first
        proposal (a comparable warm start, warm_start.py)."""
        super().__init__(metric=metric, mode=mode)
        from bayes_opt import BayesianOptimization

        self._space = space
        self._compiled = BayesOptSpace(space)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Non-float parameters are experimental"
            self._optimizer = BayesianOptimization(f=None, pbounds=self._compiled.pbounds, random_state=random_state,
                                                   verbose=0, allow_duplicate_points=True)
        self._queued = list(points_to_evaluate or [])
        self._live: Dict[str, dict] = {}
        for params, value in told:
            self._optimizer.register(params=self._compiled.encode(params), target=value if mode == "max" else -value)

    def suggest(self, trial_id: str) -> Optional[Dict]:
        if self._queued:
            params = self._queued.pop(0)
            self._live[trial_id] = self._compiled.encode(params)
            return dict(params)
        point = self._optimizer.suggest()
        self._live[trial_id] = point
        return self._compiled.decode(point)

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        point = self._live.pop(trial_id, None)
        if point is None or error or not result or result.get(self.metric) is None:
            return
        value = float(result[self.metric])
        self._optimizer.register(params=point, target=value if self.mode == "max" else -value)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
